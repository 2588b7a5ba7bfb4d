// Run-time switch for the hand-written kernels (see curata/simd.hpp).
#include "curata/simd.hpp"

#include <atomic>

namespace curata::simd {
namespace {

bool cpu_has_avx512() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
#else
  return false;
#endif
}

std::atomic<bool> allowed{true};

}  // namespace

bool hand_kernels() { return allowed.load(std::memory_order_relaxed); }

bool hand_avx512() { return hand_kernels() && cpu_has_avx512(); }

bool set_hand_kernels(bool enabled) { return allowed.exchange(enabled, std::memory_order_relaxed); }

}  // namespace curata::simd
