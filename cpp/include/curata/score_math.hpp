// Per-row formulas of the uncertainty scores, shared by the CPU library and CUDA code. log and
// exp come from fast_math.hpp (vectorisable, identical bits on every machine).
//
// Row reductions use kLanes independent accumulators combined in a fixed order (no reassociation
// by the compiler, hence deterministic), which is also what lets them vectorise without
// -ffast-math. 16 lanes fill one AVX-512 register of floats.
#pragma once

#include <cstdint>
#include <cstring>

#include "curata/fast_math.hpp"
#include "curata/hd.hpp"

namespace curata {
namespace score_math {

constexpr int kLanes = 16;

using fast_math::exp_nonpositive;
using fast_math::FloatTraits;
using fast_math::from_bits;
using fast_math::log_positive;
using fast_math::to_bits;

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
