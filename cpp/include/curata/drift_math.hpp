// Per-column two-sample formulas shared by the CPU core and the CUDA kernels (CURATA_HD).
//
// Every two-sample statistic of curata.drift is computed from one walk over the two sorted
// columns, one tie group (a run of equal values in the pooled sample) at a time. The quantities
// below are what each group contributes; the walk itself and the p-values live in cpp/src/drift_*.
//
// The arithmetic is written so that the floating-point results are the ones of the usual
// searchsorted/rankdata formulation (as scipy.stats computes them): ECDF values are count / size
// divisions, ranks are half-integers carried exactly as integers, and sums of squared rank
// differences are exact integers converted to double once (the Cramér-von Mises T is formed from
// them in exact integer arithmetic and rounded once).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "curata/hd.hpp"
#include "curata/sort_keys.hpp"

namespace curata {
namespace drift {

using int128 = __int128;
using uint128 = unsigned __int128;

// Unsigned key whose order is the numeric (ascending) order of non-NaN values: the complement
// of the shared descending score key. -0.0 and +0.0 share a key, so equal values (in the ==
// sense) always form one tie group. float32 columns get 32-bit keys: float -> double is exact and
// monotone, so the 32-bit keys of a column sort, tie and decode (key_value) exactly as the 64-bit
// keys of the same values would, with half the bytes to move.
CURATA_HD uint64_t order_key(double v) { return ~descending_score_key(v); }
CURATA_HD uint32_t order_key(float v) { return ~descending_score_key(v); }

// The sort key type of a column of T: uint32_t for float, uint64_t for double.
template <class T> using column_key_t = decltype(order_key(T{}));

// Inverse of order_key (-0.0 comes back as +0.0), as a double for either key width.
CURATA_HD double key_value(uint64_t k) {
  const uint64_t u = (k & 0x8000000000000000ull) ? (k & 0x7fffffffffffffffull) : ~k;
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
#endif
}

CURATA_HD double key_value(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
#if defined(__CUDA_ARCH__)
  return static_cast<double>(__uint_as_float(u));
#else
  float v;
  std::memcpy(&v, &u, sizeof v);
  return static_cast<double>(v);
#endif
}

// F_ref(v) - F_cur(v) once `c_ref` of `n_ref` and `c_cur` of `n_cur` values are <= v.
CURATA_HD double ecdf_gap(int64_t c_ref, int64_t n_ref, int64_t c_cur, int64_t n_cur) {
  return static_cast<double>(c_ref) / static_cast<double>(n_ref) -
         static_cast<double>(c_cur) / static_cast<double>(n_cur);
}

// A tie group: `below` pooled values are smaller, it holds `size` values, `mine` of them from the
// sample at hand, which has `seen` values below the group. Pooled midrank (1-based) of the group,
// doubled so it is an integer: 2 * below + size + 1.
CURATA_HD int128 doubled_midrank(int64_t below, int64_t size) {
  return static_cast<int128>(2) * below + size + 1;
}

// 4 * sum over the group's members from this sample of (pooled midrank - rank within the sample)^2.
// Member k (1..mine) has rank seen + k, so the terms are (c - 2k)^2 with c = 2*midrank - 2*seen;
// summed in closed form: mine*c^2 - 2*c*mine*(mine+1) + 2*mine*(mine+1)*(2*mine+1)/3.
CURATA_HD int128 cvm_group_term(int64_t below, int64_t size, int64_t mine, int64_t seen) {
  if (mine == 0) return 0;
  const int128 c = doubled_midrank(below, size) - static_cast<int128>(2) * seen;
  const int128 a = mine;
  return a * c * c - 2 * c * a * (a + 1) + (2 * a * (a + 1) * (2 * a + 1)) / 3;
}

// Tie correction term t^3 - t of one group (0 for a value seen once).
CURATA_HD int128 tie_term(int64_t size) {
  const int128 t = size;
  return t * t * t - t;
}

// The double nearest to num / den (ties to even), for den > 0 and |num|, den < 2^126: the integer
// quotient, then remainder bits by long division until the significand holds at least 64 bits
// (11 below the double's 53), with a sticky bit for a non-zero remainder, so the one rounding of
// the uint128 -> double conversion is the rounding of the exact ratio. Host only; up to ~190 steps
// once per column, taken only when num or den exceed 2^53 (columns of >~ 50k values, whose sort costs
// far more).
inline double nearest_ratio(int128 num, int128 den) {
  constexpr int128 kExact = static_cast<int128>(1) << 53;
  if (num > -kExact && num < kExact && den < kExact) {
    // Both convert exactly and IEEE division rounds once: already the nearest double.
    return static_cast<double>(static_cast<int64_t>(num)) / static_cast<double>(static_cast<int64_t>(den));
  }
  const bool negative = num < 0;
  const uint128 d = static_cast<uint128>(den);
  uint128 sig = negative ? static_cast<uint128>(-num) : static_cast<uint128>(num);
  uint128 rem = sig % d;
  sig /= d;
  int exponent = 0;
  while (sig >> 64 == 0) {
    rem <<= 1;
    sig <<= 1;
    --exponent;
    if (rem >= d) {
      rem -= d;
      sig |= 1;
    }
  }
  if (rem != 0) sig |= 1;
  const double v = std::ldexp(static_cast<double>(sig), exponent);
  return negative ? -v : v;
}

// Cramér-von Mises T (Anderson 1962, eq. 9) from u4 = 4 U, U = n1 * sum (r_i - i)^2 +
// n2 * sum (s_j - j)^2, an exact integer (ranks are half-integers):
//   T = U / (n1 n2 N) - (4 n1 n2 - 1) / (6 N) = (6 u4 - 4 k (4 k - 1)) / (24 k N),  k = n1 n2.
// The two terms nearly cancel (at n1 = n2 = 10^6 both are ~3.3e5 while T is ~0.1-1), so the
// numerator is formed exactly in 128-bit integers and divided once: T is the nearest double.
// Needs k <= 2^60 (then u4 <= 8 k^2 <= 2^123 and every intermediate fits).
inline double cvm_statistic(uint128 u4, int64_t n1, int64_t n2) {
  const int128 k = static_cast<int128>(n1) * n2, total = static_cast<int128>(n1) + n2;
  const int128 numerator = 6 * static_cast<int128>(u4) - 4 * k * (4 * k - 1);
  return nearest_ratio(numerator, 24 * k * total);
}

// Standard normal survival function P(Z > z), evaluated through erf/erfc on z / sqrt(2) with the
// branch point the Cephes ndtr uses, so small and tail values keep full relative accuracy.
CURATA_HD double normal_sf(double z) {
  const double x = -z * 0.70710678118654752440;  // M_SQRT1_2
  const double ax = x < 0 ? -x : x;
  if (ax < 1.0) return 0.5 + 0.5 * erf(x);
  const double y = 0.5 * erfc(ax);
  return x > 0 ? 1.0 - y : y;
}

// Normal approximation of the Mann-Whitney U statistic with the tie correction
// sigma^2 = n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))) and an optional continuity
// correction of -0.5 (the p-value is always a survival function, so the correction is one-sided).
CURATA_HD double mwu_z(double u, int64_t n1, int64_t n2, double tie_sum, bool continuity) {
  const int64_t n = n1 + n2;
  const double mu = static_cast<double>(n1 * n2) / 2.0;
  const double s = sqrt(static_cast<double>(n1 * n2) / 12.0 *
                        (static_cast<double>(n + 1) - tie_sum / static_cast<double>(n * (n - 1))));
  double numerator = u - mu;
  if (continuity) numerator -= 0.5;
  return numerator / s;
}

}  // namespace drift
}  // namespace curata
