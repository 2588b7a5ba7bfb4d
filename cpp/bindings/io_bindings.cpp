// pybind11 glue for curata's file formats (python/curata/_index.py): CRC-32C over any
// C-contiguous buffer, disk preallocation and early writeback. The GIL is released around the work.
#include <pybind11/pybind11.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "curata/checksum.hpp"
#include "curata/file_io.hpp"

namespace py = pybind11;

namespace {

// A contiguous read-only view of any buffer-protocol object (bytes, memoryview, numpy array);
// a non-contiguous one raises BufferError from the exporter.
class ByteView {
 public:
  explicit ByteView(const py::object& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
  }
  ~ByteView() { PyBuffer_Release(&view_); }
  ByteView(const ByteView&) = delete;
  ByteView& operator=(const ByteView&) = delete;
  const void* data() const { return view_.buf; }
  size_t size() const { return static_cast<size_t>(view_.len); }

 private:
  Py_buffer view_{};
};

uint32_t crc32c(const py::object& data, uint32_t crc, bool allow_hardware) {
  ByteView view(data);
  py::gil_scoped_release release;
  return curata::checksum::crc32c(view.data(), view.size(), crc, allow_hardware);
}

bool preallocate(int fd, int64_t size) {
  if (size < 0) throw std::invalid_argument("size must be >= 0, got " + std::to_string(size));
  int status;
  {
    py::gil_scoped_release release;
    status = curata::fileio::preallocate(fd, size);
  }
  if (status > 0) {
    errno = status;
    PyErr_SetFromErrno(PyExc_OSError);
    throw py::error_already_set();
  }
  return status == 0;
}

bool start_writeback(int fd, int64_t offset, int64_t size) {
  py::gil_scoped_release release;
  return curata::fileio::start_writeback(fd, offset, size) == 0;
}

}  // namespace

namespace curata_py {
void bind_io(py::module_& m) {
  m.def("crc32c", &crc32c, py::arg("data"), py::arg("crc") = 0, py::arg("allow_hardware") = true,
        "CRC-32C of a C-contiguous buffer, continuing from crc (0 to start).");
  m.def("has_hardware_crc32c", &curata::checksum::has_hardware_crc32c,
        "True when CRC-32C runs on the SSE4.2 crc32 instruction on this CPU.");
  m.def("preallocate", &preallocate, py::arg("fd"), py::arg("size"),
        "Reserve disk for an open file (Linux fallocate); False when unsupported, OSError on ENOSPC etc.");
  m.def("start_writeback", &start_writeback, py::arg("fd"), py::arg("offset"), py::arg("size"),
        "Start writing a byte range of an open file to disk without waiting (a hint; False when unsupported).");
}
}  // namespace curata_py
