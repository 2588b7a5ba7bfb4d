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
