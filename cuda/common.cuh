// Host-side plumbing shared by every CUDA launcher: checked calls, the device guard, stream-ordered
// workspace and launch-size helpers. Every launcher follows the same shape:
//
//   DeviceGuard guard(device);            // cudaSetDevice(device), restored on exit
//   Workspace ws(stream);                 // cudaMallocAsync on the caller's stream, freed on exit
//   ... kernels and CUB calls on `stream` ...
//
// so an exception anywhere (bad input found at a sync, out of memory) frees the workspace in stream
// order and restores the caller's device.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#define CURATA_CUDA_CHECK(expr) ::curata::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
// After a <<<...>>> launch: configuration errors surface here, execution errors at the next sync.
#define CURATA_CUDA_CHECK_LAUNCH() ::curata::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

namespace curata::cuda {

inline void check_cuda(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return;
  // Non-sticky errors (e.g. an allocation failure) stay readable through cudaGetLastError and would
  // be reported again by the next launch check; clear it now that it is being reported.
  cudaGetLastError();
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
                           " (in " + what + " at " + file + ":" + std::to_string(line) + ")");
}

inline cudaStream_t as_stream(std::uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

// Makes `device` current for the lifetime of the guard, restoring the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    // Clears a stale non-sticky error left by earlier runtime calls of this thread, so that our own
    // launch checks report only our own failures.
    cudaGetLastError();
    CURATA_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) {
      CURATA_CUDA_CHECK(cudaSetDevice(device));
      restore_ = true;
    }
  }
  ~DeviceGuard() {
    if (restore_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

// Stream-ordered temporary memory (cudaMallocAsync from the device's default pool). Everything still
// held is released with cudaFreeAsync on the same stream when the workspace goes out of scope, so
// kernels already queued keep valid memory even when the host leaves early with an exception.
class Workspace {
 public:
  explicit Workspace(cudaStream_t stream) : stream_(stream) {}
  ~Workspace() {
    for (void* p : blocks_) cudaFreeAsync(p, stream_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  template <class U> U* alloc(std::size_t count, const char* what = "workspace") {
    if (count > SIZE_MAX / sizeof(U)) throw std::runtime_error(std::string("curata: ") + what + " size overflows");
    const std::size_t bytes = (count == 0 ? 1 : count) * sizeof(U);
    void* p = nullptr;
    const cudaError_t err = cudaMallocAsync(&p, bytes, stream_);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error(std::string("curata: could not allocate ") + std::to_string(bytes) +
                               " bytes of GPU memory for the " + what + ": " + cudaGetErrorString(err));
    }
    blocks_.push_back(p);
    return static_cast<U*>(p);
  }

  // Releases one block early (stream-ordered), e.g. CUB temp storage right after its call.
  void release(void* p) {
    for (std::size_t k = 0; k < blocks_.size(); ++k) {
      if (blocks_[k] == p) {
        CURATA_CUDA_CHECK(cudaFreeAsync(p, stream_));
        blocks_[k] = blocks_.back();
        blocks_.pop_back();
        return;
      }
    }
  }

  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_;
  std::vector<void*> blocks_;
};

// Every host wait of curata's launchers goes through here, so tests can count them
// (curata._cuda.host_sync_count(): the sync-free paths must leave it unchanged).
inline std::atomic<long long>& host_sync_counter() {
  static std::atomic<long long> count{0};
  return count;
}
inline void stream_sync(cudaStream_t s) {
  ++host_sync_counter();
  CURATA_CUDA_CHECK(cudaStreamSynchronize(s));
}

// Copies device memory to a host vector and waits for the stream: the only way results and error
// flags reach the host, so every call of it is one host sync.
template <class U> void copy_to_host_and_wait(std::vector<U>& host, const U* device, std::size_t count, cudaStream_t s) {
  host.resize(count);
  if (count) CURATA_CUDA_CHECK(cudaMemcpyAsync(host.data(), device, count * sizeof(U), cudaMemcpyDeviceToHost, s));
  stream_sync(s);
}

template <class U> U copy_value_and_wait(const U* device, cudaStream_t s) {
  U value;
  CURATA_CUDA_CHECK(cudaMemcpyAsync(&value, device, sizeof(U), cudaMemcpyDeviceToHost, s));
  stream_sync(s);
  return value;
}

// Blocks for a one-thread-per-item launch (n < 2^31 everywhere in curata, so it fits a grid).
inline unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>(n <= 0 ? 1 : (n + threads - 1) / threads);
}

inline int multiprocessor_count(int device) {
  int sms = 0;
  CURATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms > 0 ? sms : 1;
}

// Number of bits needed to hold every value in [0, max_value] (at least 1): the end_bit of a radix
// sort whose keys are known to be small.
inline int bits_for(uint64_t max_value) {
  int bits = 1;
  while (bits < 64 && (max_value >> bits) != 0) ++bits;
  return bits;
}

}  // namespace curata::cuda
