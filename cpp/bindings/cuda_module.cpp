// pybind11 glue for curata._cuda: device queries and the kernel launchers. Array pointers arrive
// as integers from the Python layer (DLPack / __cuda_array_interface__), with the caller's stream.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "launchers.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "curata CUDA kernels";
  m.def("device_count", [] { return curata::cuda::device_report().count; });
  m.def("device_report", [] {
    const auto r = curata::cuda::device_report();
    return py::make_tuple(r.count, r.reason);
  });
  m.def("device_name", &curata::cuda::device_name, py::arg("device"));
  m.def("runtime_version", &curata::cuda::runtime_version);
  m.def("driver_version", &curata::cuda::driver_version);
  m.attr("cuda_version") = CURATA_CUDA_VERSION_STR;
  m.attr("archs") = CURATA_CUDA_ARCHS_STR;
}
