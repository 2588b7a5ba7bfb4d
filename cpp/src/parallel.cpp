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

int all_cores() {
#ifdef CURATA_HAVE_OPENMP
  const int procs = omp_get_num_procs();
#else
  const int procs = static_cast<int>(std::thread::hardware_concurrency());
#endif
  return std::clamp(procs, 1, kMaxThreads);
}

// Read once: set_num_threads(0) restores the count the process started with, whatever the
// environment says later.
int default_threads() {
  static const int value = [] {
    const int n = parse_thread_count(std::getenv("CURATA_NUM_THREADS"));
    return n >= 1 ? n : all_cores();
  }();
  return value;
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> value{default_threads()};
  return value;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

int parse_thread_count(const char* text) {
  if (text == nullptr) return 0;
  const char* p = text;
  while (is_space(*p)) ++p;
  if (*p == '+') ++p;
  int64_t value = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; ++p, ++digits) {
    value = value * 10 + (*p - '0');
    if (value > kMaxThreads) return 0;  // also keeps the accumulator far from overflow
  }
  while (is_space(*p)) ++p;
  if (digits == 0 || *p != '\0' || value < 1) return 0;
  return static_cast<int>(value);
}

int num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  thread_setting().store(n >= 1 ? std::min(n, kMaxThreads) : default_threads(), std::memory_order_relaxed);
}

int threads_for(int64_t work, int64_t min_per_thread) {
  const int64_t useful = std::max<int64_t>(1, work / std::max<int64_t>(1, min_per_thread));
  return static_cast<int>(std::min<int64_t>(num_threads(), useful));
}

}  // namespace curata
