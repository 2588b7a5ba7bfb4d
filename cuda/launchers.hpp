// Host-callable entry points of the CUDA kernels. Plain C++ (no CUDA headers) so the pybind11
// glue compiles with the host compiler. Pointers are device pointers; `stream` is a cudaStream_t
// passed as an integer (0 = the legacy default stream). Errors throw std::runtime_error with the
// CUDA error string, or std::invalid_argument for bad input.
#pragma once

#include <cstdint>
#include <string>

namespace curata::cuda {

struct DeviceReport {
  int count = 0;
  std::string reason;  // why count is 0 ("" when devices exist)
};

// Never throws: no driver or no device is reported as count 0 with the reason.
DeviceReport device_report();
std::string device_name(int device);
int runtime_version();
int driver_version();

}  // namespace curata::cuda
