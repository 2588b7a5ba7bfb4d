// Radix-sortable keys shared by the CPU sorts (sort.cpp) and the CUDA radix sorts, so both order
// scores and integer ids identically: ascending key order = descending score, ties resolved by
// the (stable) sort to the lower input position.
#pragma once

#include <cstdint>
#include <cstring>

#include "curata/hd.hpp"

namespace curata {

// Ascending order of the key is the descending order of s. -0.0 and +0.0 get the same key.
// Scores must not be NaN (callers reject them); a NaN gets some key, never undefined behaviour.
CURATA_HD uint32_t descending_score_key(float s) {
  if (s == 0.0f) s = 0.0f;  // fold -0.0 into +0.0
#if defined(__CUDA_ARCH__)
  uint32_t u = __float_as_uint(s);
#else
  uint32_t u;
  std::memcpy(&u, &s, sizeof u);
#endif
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending order of s
  return ~u;
}

CURATA_HD uint64_t descending_score_key(double s) {
  if (s == 0.0) s = 0.0;
#if defined(__CUDA_ARCH__)
  uint64_t u = static_cast<uint64_t>(__double_as_longlong(s));
#else
  uint64_t u;
  std::memcpy(&u, &s, sizeof u);
#endif
  u = (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
  return ~u;
}

// The key type of a score type: uint32_t for float, uint64_t for double.
template <class T> using score_key_t = decltype(descending_score_key(T{}));

// Ascending order of the key is the ascending order of the signed id; a non-negative id keeps its
// value in the low 63 bits, so a radix sort restricted to the low bits orders small ids correctly.
CURATA_HD uint64_t ascending_id_key(int64_t v) { return static_cast<uint64_t>(v) ^ 0x8000000000000000ull; }

}  // namespace curata
