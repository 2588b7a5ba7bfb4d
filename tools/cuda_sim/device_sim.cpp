// Host stand-in for cuda/device.cu: one simulated device.
#include <string>
#include "launchers.hpp"
namespace curata::cuda {
DeviceReport device_report() { DeviceReport r; r.count = 1; return r; }
std::string device_name(int) { return "simulated"; }
int runtime_version() { return 13000; }
int driver_version() { return 13000; }
}
