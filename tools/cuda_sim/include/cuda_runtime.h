// Host simulation of the tiny CUDA subset curata's kernels use: every block runs with one OS
// thread per CUDA thread, barriers are std::barrier. For logic checks only.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define __restrict__

using std::isnan;
using std::min;
using std::max;

typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaMemcpyDeviceToHost = 2, cudaMemcpyHostToDevice = 1, cudaDevAttrMultiProcessorCount = 16 };
inline const char* cudaGetErrorString(cudaError_t) { return "sim error"; }
inline const char* cudaGetErrorName(cudaError_t) { return "simError"; }
inline cudaError_t cudaGetLastError() { return 0; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return 0; }
inline cudaError_t cudaSetDevice(int) { return 0; }
inline cudaError_t cudaDeviceGetAttribute(int* v, int, int) { *v = 1; return 0; }
inline std::atomic<long> g_live_allocs{0};
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  // poison so uninitialised reads show up as garbage
  *p = std::malloc(bytes); std::memset(*p, 0xA5, bytes); ++g_live_allocs; return 0; }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); --g_live_allocs; return 0; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return 0; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, int, cudaStream_t) { std::memcpy(d, s, n); return 0; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }

namespace sim {
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline uint64_t warp_slots[32][32];
inline std::atomic<int> count_acc{0};
inline std::mutex atomic_mutex;
inline long launches = 0;

template <class F> void launch(dim3 grid, dim3 block, F&& f) {
  ++launches;
  gridDim = grid; blockDim = block;
  const unsigned nt = block.x;
  for (unsigned b = 0; b < grid.x; ++b) {
    std::barrier<> bar(nt);
    block_barrier = &bar;
    warp_barriers.clear();
    for (unsigned w = 0; w < (nt + 31) / 32; ++w) warp_barriers.emplace_back(new std::barrier<>(std::min(32u, nt - 32 * w)));
    std::vector<std::thread> threads;
    threads.reserve(nt);
    for (unsigned t = 0; t < nt; ++t) {
      threads.emplace_back([&, t, b] {
        threadIdx = dim3(t); blockIdx = dim3(b);
        f();
        // a thread that returns early no longer takes part in barriers
        bar.arrive_and_drop();
      });
    }
    for (auto& th : threads) th.join();
  }
}
}  // namespace sim

inline void __syncthreads() { sim::block_barrier->arrive_and_wait(); }
inline int __syncthreads_count(int p) {
  sim::block_barrier->arrive_and_wait();
  sim::count_acc += p ? 1 : 0;
  sim::block_barrier->arrive_and_wait();
  const int r = sim::count_acc.load();
  sim::block_barrier->arrive_and_wait();
  if (threadIdx.x == 0) sim::count_acc = 0;
  sim::block_barrier->arrive_and_wait();
  return r;
}
template <class T> T __shfl_sync(unsigned, T v, int src) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  sim::warp_slots[w][l] = static_cast<uint64_t>(v);
  sim::warp_barriers[w]->arrive_and_wait();
  const T r = static_cast<T>(sim::warp_slots[w][src]);
  sim::warp_barriers[w]->arrive_and_wait();
  return r;
}
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
template <class T, class U> T atomicMin(T* p, U v) { std::lock_guard<std::mutex> g(sim::atomic_mutex); T old = *p; if (T(v) < old) *p = T(v); return old; }
template <class T, class U> T atomicAdd(T* p, U v) { std::lock_guard<std::mutex> g(sim::atomic_mutex); T old = *p; *p = old + T(v); return old; }
