// Runtime dispatch of hot loops to the widest vector unit of the running CPU.
//
// A function marked CURATA_SIMD_CLONES is compiled once per listed x86-64 level (AVX-512, AVX2,
// baseline) and the loader picks the best copy, so a portable wheel still runs the inner loops at
// full width. Loops inside are written branch-free (selects, fixed trip counts) so the compiler
// vectorises them; the build uses -ffp-contract=off so no copy fuses a multiply-add and every copy
// produces the same bits.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CURATA_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CURATA_SIMD_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CURATA_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define CURATA_ALWAYS_INLINE inline
#endif

#include <cstdint>
#include <cstring>

namespace curata::simd {

// Loads a GNU vector type V from any address: memcpy carries no alignment or aliasing assumption
// and compiles to one unaligned vector move.
template <class V> CURATA_ALWAYS_INLINE V load_unaligned(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Largest of v[0..m) (m >= 1, no NaN), from 8 independent lanes so the loop vectorises; for use
// inside CURATA_SIMD_CLONES functions (inlined into every clone).
template <class T> CURATA_ALWAYS_INLINE T max_value(const T* v, int64_t m) {
  constexpr int64_t L = 8;
  T mx = v[0];
  int64_t i = 0;
  if (m >= L) {
    T lane[L];
    for (int64_t l = 0; l < L; ++l) lane[l] = v[l];
    for (i = L; i + L <= m; i += L)
      for (int64_t l = 0; l < L; ++l) lane[l] = v[i + l] > lane[l] ? v[i + l] : lane[l];
    for (int64_t l = 0; l < L; ++l) mx = lane[l] > mx ? lane[l] : mx;
  }
  for (; i < m; ++i) mx = v[i] > mx ? v[i] : mx;
  return mx;
}

}  // namespace curata::simd

namespace curata::simd {

// Whether hand-written kernels may run: kernels written for one instruction set (intrinsics, or
// a reordered loop under a target attribute) that have a portable twin computing the same bits.
// Tests switch them off to run the twins on the same machine and compare the two bit for bit.
bool hand_kernels();
// hand_kernels() and the CPU has AVX-512F: the hand-written AVX-512 loops may run.
bool hand_avx512();
// Switches the hand-written kernels off (false) or back on; returns the previous setting. Not for
// use while another thread runs curata.
bool set_hand_kernels(bool enabled);

}  // namespace curata::simd
