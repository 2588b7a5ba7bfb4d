// Array helpers for the pybind11 glue: hand std::vector results to numpy without copying.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <utility>
#include <vector>

namespace curata_py {
namespace py = pybind11;

template <class T> using carray = py::array_t<T, py::array::c_style>;

// Moves `values` into a numpy array of `shape` that owns it.
template <class T> py::array_t<T> vector_to_numpy(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), free_when_done);
}

template <class T> const T* optional_data(const std::optional<carray<T>>& a) {
  return a ? a->data() : nullptr;
}

}  // namespace curata_py
