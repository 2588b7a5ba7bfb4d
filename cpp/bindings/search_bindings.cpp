// pybind11 glue for curata.search: C-contiguous float32 (n, d) arrays in, (distances, indices) out.
// Shapes and dtypes are checked by python/curata/search.py; non-finite rows come back as the last
// two tuple items (row or -1) and python/curata/search.py raises.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "curata/search.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;

namespace {

py::tuple knn(const carray<float>& base, const carray<float>& queries, int64_t k, int metric, bool exclude_self) {
  if (base.ndim() != 2 || queries.ndim() != 2 || base.shape(1) != queries.shape(1))
    throw std::invalid_argument("base and queries must be 2-D with the same number of columns");
  const int64_t n = base.shape(0), m = queries.shape(0), d = base.shape(1);
  py::array_t<float> distances({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(k)});
  py::array_t<int64_t> indices({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(k)});
  const float* pb = base.data();
  const float* pq = exclude_self ? pb : queries.data();
  float* pd = distances.mutable_data();
  int64_t* pi = indices.mutable_data();
  curata::search::KnnStatus status;
  {
    py::gil_scoped_release release;
    status = curata::search::knn(pb, n, pq, m, d, k, static_cast<curata::search::Metric>(metric), exclude_self, pd, pi);
  }
  return py::make_tuple(distances, indices, status.nonfinite_base_row, status.nonfinite_query_row);
}

}  // namespace

namespace curata_py {
void bind_search(py::module_& m) {
  m.def("knn", &knn, py::arg("base"), py::arg("queries"), py::arg("k"), py::arg("metric"),
        py::arg("exclude_self") = false);
}
}  // namespace curata_py
