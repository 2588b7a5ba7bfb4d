#include "curata/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#ifdef CURATA_HAVE_OPENMP
#include <omp.h>
#endif

namespace curata {
namespace {

int default_threads() {
  if (const char* env = std::getenv("CURATA_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
#ifdef CURATA_HAVE_OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> value{default_threads()};
  return value;
}

}  // namespace

int num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  thread_setting().store(n >= 1 ? n : default_threads(), std::memory_order_relaxed);
}

int threads_for(int64_t work, int64_t min_per_thread) {
  const int64_t useful = std::max<int64_t>(1, work / std::max<int64_t>(1, min_per_thread));
  return static_cast<int>(std::min<int64_t>(num_threads(), useful));
}

}  // namespace curata
