// Per-row formulas of the uncertainty scores, shared by the CPU library and CUDA code.
//
// Why a hand-written log and exp: glibc's scalar logf costs ~2 ns per call and GCC only
// vectorises libm calls under -ffast-math, which the project forbids (results must not depend on
// the optimiser). The functions below are branch-free arithmetic on the IEEE bit patterns, so the
// kLanes-wide row loops in this file vectorise with any instruction set, and every lane performs
// the same operations in the same order: results are identical for any ISA, thread count or row
// order (checked by hashing outputs built for x86-64, x86-64-v3, x86-64-v4 and at -O0).
//
// Accuracy, measured against glibc over 2e6 points spanning the normal and subnormal range:
// log_positive <= 1.0 ulp (float64) / 0.83 ulp (float32); exp_nonpositive <= 1.0 ulp (float64) /
// 1.15 ulp (float32). The series coefficients are exact Taylor coefficients, not fitted ones.
//
// Row reductions use kLanes independent accumulators combined in a fixed order (no reassociation
// by the compiler, hence deterministic), which is also what lets them vectorise without
// -ffast-math. 16 lanes fill one AVX-512 register of floats.
#pragma once

#include <cstdint>
#include <cstring>

#include "curata/hd.hpp"

namespace curata {
namespace score_math {

constexpr int kLanes = 16;

template <class T> struct FloatTraits;

template <> struct FloatTraits<float> {
  using Bits = uint32_t;
  static constexpr int kMantissa = 23;
  static constexpr Bits kBias = 127;
  static constexpr Bits kMantissaMask = 0x007fffffu;
  static constexpr Bits kOneBits = 0x3f800000u;
  static constexpr Bits kSqrtHalfBits = 0x3f3504f3u;  // sqrt(1/2) rounded to float
  static constexpr float kMinNormal = 0x1p-126f;
  static constexpr float kSubnormalScale = 0x1p25f;
  static constexpr int kSubnormalShift = 25;
  // ln 2 = kLn2Hi + kLn2Lo, kLn2Hi with 16 significant bits so k * kLn2Hi is exact for |k| < 2^8.
  static constexpr float kLn2Hi = 0x1.62e4p-1f;
  static constexpr float kLn2Lo = 0x1.7f7d1cp-20f;
  static constexpr float kLog2e = 0x1.715476p+0f;
  // Adding 1.5 * 2^23 rounds |v| < 2^22 to an integer held in the low mantissa bits.
  static constexpr float kRoundShifter = 0x1.8p23f;
  // exp(y) rounds to 0 below this (smallest subnormal is 2^-149 = e^-103.28).
  static constexpr float kExpUnderflow = -104.0f;
  static constexpr float kInfinity = __builtin_huge_valf();
};

template <> struct FloatTraits<double> {
  using Bits = uint64_t;
  static constexpr int kMantissa = 52;
  static constexpr Bits kBias = 1023;
  static constexpr Bits kMantissaMask = 0x000fffffffffffffull;
  static constexpr Bits kOneBits = 0x3ff0000000000000ull;
  static constexpr Bits kSqrtHalfBits = 0x3fe6a09e667f3bcdull;
  static constexpr double kMinNormal = 0x1p-1022;
  static constexpr double kSubnormalScale = 0x1p54;
  static constexpr int kSubnormalShift = 54;
  // kLn2Hi has 42 significant bits: k * kLn2Hi is exact for |k| < 2^11.
  static constexpr double kLn2Hi = 0x1.62e42fefa38p-1;
  static constexpr double kLn2Lo = 0x1.ef35793c7673p-45;
  static constexpr double kLog2e = 0x1.71547652b82fep+0;
  static constexpr double kRoundShifter = 0x1.8p52;
  static constexpr double kExpUnderflow = -746.0;  // smallest subnormal is 2^-1074 = e^-744.44
  static constexpr double kInfinity = __builtin_huge_val();
};

template <class T> CURATA_HD typename FloatTraits<T>::Bits to_bits(T x) {
  typename FloatTraits<T>::Bits u;
  memcpy(&u, &x, sizeof(T));
  return u;
}

template <class T> CURATA_HD T from_bits(typename FloatTraits<T>::Bits u) {
  T x;
  memcpy(&x, &u, sizeof(T));
  return x;
}

// Horner evaluation of the series terms below; the coefficients are exact Taylor coefficients
// (2/(2j+1) for atanh, 1/j! for exp), the degree chosen so truncation stays below half an ulp.
template <class T> struct LogSeries;
template <> struct LogSeries<float> {
  // R(z) = sum_{j=1..4} 2 z^j / (2j+1); truncation z^5/11 < 2e-9 for |s| <= 0.1716.
  static CURATA_HD float eval(float z) {
    return z * (2.0f / 3 + z * (2.0f / 5 + z * (2.0f / 7 + z * (2.0f / 9))));
  }
};
template <> struct LogSeries<double> {
  // j = 1..9; truncation z^10/21 < 3e-17.
  static CURATA_HD double eval(double z) {
    return z * (2.0 / 3 + z * (2.0 / 5 + z * (2.0 / 7 + z * (2.0 / 9 + z * (2.0 / 11 + z * (2.0 / 13 +
           z * (2.0 / 15 + z * (2.0 / 17 + z * (2.0 / 19)))))))));
  }
};

template <class T> struct ExpSeries;
template <> struct ExpSeries<float> {
  // exp(r) for |r| <= ln2/2 up to r^7/7!; truncation r^8/8! < 6e-9.
  static CURATA_HD float eval(float r) {
    return 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
           r * (1.0f / 720 + r * (1.0f / 5040)))))));
  }
};
template <> struct ExpSeries<double> {
  // up to r^13/13!; truncation r^14/14! < 5e-18.
  static CURATA_HD double eval(double r) {
    return 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 +
           r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 +
           r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))))))))))));
  }
};

// Natural log of a finite x > 0 (normal or subnormal). Other inputs give an unspecified value
// (callers select around them). x = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1,
// s = f / (2 + f), log(m) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R(s^2))), which keeps the
// exact f as the leading term.
template <class T> CURATA_HD T log_positive(T x) {
  using F = FloatTraits<T>;
  using Bits = typename F::Bits;
  const bool subnormal = x < F::kMinNormal;
  // Selects pick between values, never guard an operation: GCC keeps guarded FP operations as
  // branches (-ftrapping-math), and a branch stops vectorisation.
  const T xs = x * (subnormal ? F::kSubnormalScale : T(1));
  Bits u = to_bits(xs) + (F::kOneBits - F::kSqrtHalfBits);
  // (u >> kMantissa) is the biased exponent of the rescaled value, in [1, 2 * bias]; converting
  // it through the signed type keeps the subtraction exact.
  const T k = T(static_cast<int32_t>(u >> F::kMantissa)) - T(static_cast<int32_t>(F::kBias)) -
              (subnormal ? T(F::kSubnormalShift) : T(0));
  u = (u & F::kMantissaMask) + F::kSqrtHalfBits;
  const T f = from_bits<T>(u) - T(1);
  const T s = f / (T(2) + f);
  const T hfsq = T(0.5) * f * f;
  const T r = LogSeries<T>::eval(s * s);
  return k * F::kLn2Hi + (f - (hfsq - (s * (hfsq + r) + k * F::kLn2Lo)));
}

// exp(y) for y <= 0, including -inf (-> 0). y = k ln2 + r, |r| <= ln2/2 (Cody-Waite), and 2^k
// is applied as two exact powers of two so results in the subnormal range round only once.
template <class T> CURATA_HD T exp_nonpositive(T y) {
  using F = FloatTraits<T>;
  using Bits = typename F::Bits;
  const bool underflow = y < F::kExpUnderflow;
  const T yc = underflow ? T(0) : y;
  const T t = yc * F::kLog2e + F::kRoundShifter;
  const T k = t - F::kRoundShifter;  // round(yc / ln2), an integer in [-1076, 0]
  // -k as an integer straight from the bits of t (avoids float->int conversions, which lack
  // 64-bit vector forms before AVX-512).
  const Bits minus_k = to_bits(F::kRoundShifter) - to_bits(t);
  const Bits half = minus_k >> 1;
  const Bits rest = minus_k - half;
  const T scale_a = from_bits<T>((F::kBias - half) << F::kMantissa);
  const T scale_b = from_bits<T>((F::kBias - rest) << F::kMantissa);
  const T r = (yc - k * F::kLn2Hi) - k * F::kLn2Lo;
  const T e = (ExpSeries<T>::eval(r) * scale_a) * scale_b;
  return underflow ? T(0) : e;
}

// p log p with 0 log 0 = 0; entries <= 0 contribute 0 (only reachable with checks disabled).
template <class T> CURATA_HD T xlogx(T p) {
  const bool positive = p > T(0);
  const T v = p * log_positive(positive ? p : T(1));
  return positive ? v : T(0);
}

// Logistic function, never overflowing: exp is only evaluated at -|x|. sigmoid(+inf) = 1,
// sigmoid(-inf) = 0; NaN gives an unspecified value (callers reject NaN).
template <class T> CURATA_HD T sigmoid(T x) {
  const bool nonnegative = x >= T(0);
  const T e = exp_nonpositive(nonnegative ? -x : x);
  const T d = T(1) + e;
  return (nonnegative ? T(1) : e) / d;
}

// Sum and minimum of a probability row, kept with every score so checks cost no extra pass.
// A non-finite entry makes `sum` non-finite.
template <class T> struct RowCheck {
  T sum;
  T min;
};

template <class T> CURATA_HD bool row_ok(const RowCheck<T>& c, bool check, T tolerance) {
  if (!check) return c.sum - c.sum == T(0);  // finite (necessary, not sufficient: see callers)
  const T dev = c.sum - T(1);
  return c.min >= T(0) && dev <= tolerance && -dev <= tolerance;
}

template <class T> CURATA_HD T lanes_sum(const T (&v)[kLanes]) {
  T s = v[0];
  for (int j = 1; j < kLanes; ++j) s += v[j];
  return s;
}

template <class T> CURATA_HD T lanes_min(const T (&v)[kLanes]) {
  T s = v[0];
  for (int j = 1; j < kLanes; ++j) s = v[j] < s ? v[j] : s;
  return s;
}

template <class T> CURATA_HD T lanes_max(const T (&v)[kLanes]) {
  T s = v[0];
  for (int j = 1; j < kLanes; ++j) s = v[j] > s ? v[j] : s;
  return s;
}

// sum_c p_c log p_c of one row of length c, plus its RowCheck, in one pass.
template <class T> CURATA_HD T row_plogp(const T* p, int64_t c, RowCheck<T>& check) {
  T acc[kLanes], sum[kLanes], mn[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    acc[j] = T(0);
    sum[j] = T(0);
    mn[j] = FloatTraits<T>::kInfinity;
  }
  int64_t i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T v = p[i + j];
      acc[j] += xlogx(v);
      sum[j] += v;
      mn[j] = v < mn[j] ? v : mn[j];
    }
  }
  for (int j = 0; i < c; ++i, ++j) {
    const T v = p[i];
    acc[j] += xlogx(v);
    sum[j] += v;
    mn[j] = v < mn[j] ? v : mn[j];
  }
  check.sum = lanes_sum(sum);
  check.min = lanes_min(mn);
  return lanes_sum(acc);
}

// Largest entry of one row, plus its RowCheck.
template <class T> CURATA_HD T row_max(const T* p, int64_t c, RowCheck<T>& check) {
  T mx[kLanes], sum[kLanes], mn[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    mx[j] = -FloatTraits<T>::kInfinity;
    sum[j] = T(0);
    mn[j] = FloatTraits<T>::kInfinity;
  }
  int64_t i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T v = p[i + j];
      mx[j] = v > mx[j] ? v : mx[j];
      sum[j] += v;
      mn[j] = v < mn[j] ? v : mn[j];
    }
  }
  for (int j = 0; i < c; ++i, ++j) {
    const T v = p[i];
    mx[j] = v > mx[j] ? v : mx[j];
    sum[j] += v;
    mn[j] = v < mn[j] ? v : mn[j];
  }
  check.sum = lanes_sum(sum);
  check.min = lanes_min(mn);
  return lanes_max(mx);
}

// Pushes v into a (first >= second) pair; equal values count twice, so a tie gives first == second.
template <class T> CURATA_HD void top2_push(T v, T& first, T& second) {
  const T lower = v < first ? v : first;
  second = lower > second ? lower : second;
  first = v > first ? v : first;
}

// The two largest entries of one row (second = -inf when c == 1), plus its RowCheck.
template <class T> CURATA_HD void row_top2(const T* p, int64_t c, T& first, T& second, RowCheck<T>& check) {
  T f1[kLanes], f2[kLanes], sum[kLanes], mn[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    f1[j] = -FloatTraits<T>::kInfinity;
    f2[j] = -FloatTraits<T>::kInfinity;
    sum[j] = T(0);
    mn[j] = FloatTraits<T>::kInfinity;
  }
  int64_t i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T v = p[i + j];
      top2_push(v, f1[j], f2[j]);
      sum[j] += v;
      mn[j] = v < mn[j] ? v : mn[j];
    }
  }
  for (int j = 0; i < c; ++i, ++j) {
    const T v = p[i];
    top2_push(v, f1[j], f2[j]);
    sum[j] += v;
    mn[j] = v < mn[j] ? v : mn[j];
  }
  first = -FloatTraits<T>::kInfinity;
  second = -FloatTraits<T>::kInfinity;
  for (int j = 0; j < kLanes; ++j) {
    top2_push(f1[j], first, second);
    top2_push(f2[j], first, second);
  }
  check.sum = lanes_sum(sum);
  check.min = lanes_min(mn);
}

enum class SoftmaxStatus : int { ok = 0, has_nan = 1, all_negative_infinity = 2 };

// Softmax of one row of finite or infinite logits: exp(x - max) / sum. Rows containing +inf share
// their mass equally among the +inf entries (the limit of those logits growing together); -inf
// entries get exactly 0. A NaN, or a row of only -inf, is reported and `out` is unspecified.
template <class T> CURATA_HD SoftmaxStatus softmax_row(const T* x, T* out, int64_t c) {
  using F = FloatTraits<T>;
  T mx[kLanes], nan[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    mx[j] = -F::kInfinity;
    nan[j] = T(0);
  }
  int64_t i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T v = x[i + j];
      mx[j] = v > mx[j] ? v : mx[j];
      nan[j] += v != v ? T(1) : T(0);
    }
  }
  for (int j = 0; i < c; ++i, ++j) {
    const T v = x[i];
    mx[j] = v > mx[j] ? v : mx[j];
    nan[j] += v != v ? T(1) : T(0);
  }
  if (lanes_sum(nan) != T(0)) return SoftmaxStatus::has_nan;
  const T m = lanes_max(mx);
  if (m == -F::kInfinity) return SoftmaxStatus::all_negative_infinity;
  if (m == F::kInfinity) {
    T count = T(0);
    for (int64_t k = 0; k < c; ++k) count += x[k] == F::kInfinity ? T(1) : T(0);
    const T share = T(1) / count;
    for (int64_t k = 0; k < c; ++k) out[k] = x[k] == F::kInfinity ? share : T(0);
    return SoftmaxStatus::ok;
  }
  T sum[kLanes];
  for (int j = 0; j < kLanes; ++j) sum[j] = T(0);
  i = 0;
  for (; i + kLanes <= c; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T e = exp_nonpositive(x[i + j] - m);
      out[i + j] = e;
      sum[j] += e;
    }
  }
  for (int j = 0; i < c; ++i, ++j) {
    const T e = exp_nonpositive(x[i] - m);
    out[i] = e;
    sum[j] += e;
  }
  const T total = lanes_sum(sum);  // >= 1: the maximum contributes exp(0) = 1
  for (int64_t k = 0; k < c; ++k) out[k] = out[k] / total;
  return SoftmaxStatus::ok;
}

}  // namespace score_math
}  // namespace curata
