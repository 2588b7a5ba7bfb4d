// Uncertainty scores: one fused pass per row computes the score and the numbers its validation
// needs (row sum, row minimum); only when a row fails does a slow serial scan find the first
// offending entry to build the error message.
#include "curata/scores.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "curata/parallel.hpp"
#include "curata/score_math.hpp"

// The row kernels are compiled for AVX-512, AVX2 and the baseline and picked at load time.
// `flatten` inlines the score_math helpers into each clone before it is optimised for its ISA
// (without it GCC vectorises the clones for the baseline only). All clones run the same
// operations per lane in the same order (no FMA contraction: -ffp-contract=off), so they return
// identical bits; checked by hashing results built for x86-64, -v3, -v4 and at -O0.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CURATA_ROW_KERNEL __attribute__((flatten, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CURATA_ROW_KERNEL
#endif

namespace curata {
namespace {

using score_math::RowCheck;

// Elements per thread below which another thread costs more than it saves.
constexpr int64_t kMinPerThread = 1 << 15;
constexpr int64_t kBlockElements = 1 << 14;

template <class T> std::string show(T v) {
  std::ostringstream s;
  s.precision(std::numeric_limits<T>::max_digits10);
  s << v;
  return s.str();
}

// Finds the first entry or row of p that breaks the rules of `check` and throws. Returns without
// throwing when nothing is wrong (the fast path's flag was only a hint, e.g. a float32 row sum
// overflowing on huge but finite values with checks off). `row_note` follows the row number.
template <class T>
void throw_first_bad_row(const T* p, int64_t rows, int64_t cols, const ProbabilityCheck& check,
                         const std::string& row_note = "") {
  const std::string name = check.name;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = p + r * cols;
    const std::string at_row = "row " + std::to_string(r) + row_note;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      const T v = row[c];
      const std::string at = " at " + at_row + ", column " + std::to_string(c);
      if (std::isnan(v)) throw std::invalid_argument(name + " must not contain NaN, got nan" + at);
      if (std::isinf(v)) throw std::invalid_argument(name + " must be finite probabilities, got " + show(v) + at);
      if (check.check && v < T(0))
        throw std::invalid_argument(name + " must be non-negative probabilities, got " + show(v) + at +
                                    " (pass check=False to skip this check)");
      sum += static_cast<double>(v);
    }
    if (check.check && !(std::fabs(sum - 1.0) <= check.tolerance))
      throw std::invalid_argument(name + " rows must sum to 1 within " + show(check.tolerance) + ", got " +
                                  show(sum) + " at " + at_row +
                                  " (are these logits? apply softmax first, or pass check=False)");
  }
}

template <class T> T tolerance_of(const ProbabilityCheck& check) { return static_cast<T>(check.tolerance); }

// Row kernels: each handles rows [lo, hi) serially and returns 0 when every row passed its fast
// check (softmax: a SoftmaxStatus bit set). OpenMP lives outside them (parallel_blocks) because
// an outlined parallel region would not inherit the clone's instruction set.
template <class T>
CURATA_ROW_KERNEL int entropy_range(const T* p, T* out, int64_t lo, int64_t hi, int64_t cols, bool check, T tol) {
  int bad = 0;
  for (int64_t r = lo; r < hi; ++r) {
    RowCheck<T> rc;
    out[r] = T(0) - score_math::row_plogp(p + r * cols, cols, rc);  // +0, not -0, for one-hot rows
    bad |= !score_math::row_ok(rc, check, tol);
  }
  return bad;
}

template <class T>
CURATA_ROW_KERNEL int least_confidence_range(const T* p, T* out, int64_t lo, int64_t hi, int64_t cols, bool check,
                                             T tol) {
  int bad = 0;
  for (int64_t r = lo; r < hi; ++r) {
    RowCheck<T> rc;
    out[r] = T(1) - score_math::row_max(p + r * cols, cols, rc);
    bad |= !score_math::row_ok(rc, check, tol);
  }
  return bad;
}

template <class T>
CURATA_ROW_KERNEL int margin_range(const T* p, T* out, int64_t lo, int64_t hi, int64_t cols, bool check, T tol) {
  int bad = 0;
  for (int64_t r = lo; r < hi; ++r) {
    RowCheck<T> rc;
    T first, second;
    score_math::row_top2(p + r * cols, cols, first, second, rc);
    if (cols == 1) second = T(0);  // one class: as if a second class had probability 0
    out[r] = T(1) - (first - second);
    bad |= !score_math::row_ok(rc, check, tol);
  }
  return bad;
}

// Sample-major over the block: each sample's rows [lo, hi) are read as one contiguous stretch
// (better streaming than hopping between S distant rows per item); per item the additions still
// run in sample order, so results do not depend on the block size.
template <class T>
CURATA_ROW_KERNEL int bald_range(const T* p, T* out, int64_t samples, int64_t rows, int64_t lo, int64_t hi,
                                 int64_t cols, bool check, T tol) {
  int bad = 0;
  const int64_t stride = rows * cols;
  const int64_t n = hi - lo;
  std::vector<T> mean(static_cast<size_t>(n * cols), T(0));
  std::vector<T> sum_plogp(static_cast<size_t>(n), T(0));
  for (int64_t s = 0; s < samples; ++s) {
    const T* block = p + s * stride + lo * cols;
    for (int64_t i = 0; i < n; ++i) {
      const T* row = block + i * cols;
      RowCheck<T> rc;
      sum_plogp[i] += score_math::row_plogp(row, cols, rc);
      bad |= !score_math::row_ok(rc, check, tol);
      T* m = mean.data() + i * cols;
      for (int64_t c = 0; c < cols; ++c) m[c] += row[c];
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    T* m = mean.data() + i * cols;
    for (int64_t c = 0; c < cols; ++c) m[c] = m[c] / static_cast<T>(samples);
    RowCheck<T> ignored;
    const T entropy_of_mean = T(0) - score_math::row_plogp(m, cols, ignored);
    const T mean_entropy = T(0) - sum_plogp[i] / static_cast<T>(samples);
    const T score = entropy_of_mean - mean_entropy;
    // Jensen: the true value is >= 0; only rounding can make it negative.
    out[lo + i] = score > T(0) ? score : T(0);
  }
  return bad;
}

template <class T> CURATA_ROW_KERNEL int softmax_range(const T* x, T* out, int64_t lo, int64_t hi, int64_t cols) {
  int status = 0;
  for (int64_t r = lo; r < hi; ++r)
    status |= static_cast<int>(score_math::softmax_row(x + r * cols, out + r * cols, cols));
  return status;
}

template <class T> CURATA_ROW_KERNEL int sigmoid_range(const T* x, T* out, int64_t lo, int64_t hi) {
  T nan = T(0);
  for (int64_t i = lo; i < hi; ++i) {
    const T v = x[i];
    out[i] = score_math::sigmoid(v);
    nan += v != v ? T(1) : T(0);
  }
  return nan != T(0);
}

// Splits [0, rows) into blocks of about kBlockElements elements and runs fn(lo, hi) on them in
// parallel; returns the OR of the results.
template <class F> int parallel_blocks(int64_t rows, int64_t elements_per_row, F&& fn) {
  const int64_t per_row = elements_per_row > 0 ? elements_per_row : 1;
  const int64_t block_rows = std::max<int64_t>(1, kBlockElements / per_row);
  const int64_t blocks = (rows + block_rows - 1) / block_rows;
  const int threads = threads_for(rows * per_row, kMinPerThread);
  int flags = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(| : flags)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * block_rows;
    flags |= fn(lo, std::min(rows, lo + block_rows));
  }
  return flags;
}

}  // namespace

template <class T> void softmax(const T* x, T* out, int64_t rows, int64_t cols, const char* name) {
  const int status =
      parallel_blocks(rows, cols, [&](int64_t lo, int64_t hi) { return softmax_range(x, out, lo, hi, cols); });
  if (status == 0) return;
  const std::string n = name;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    bool all_negative_infinity = true;
    for (int64_t c = 0; c < cols; ++c) {
      if (std::isnan(row[c]))
        throw std::invalid_argument(n + " must not contain NaN, got nan at row " + std::to_string(r) + ", column " +
                                    std::to_string(c));
      all_negative_infinity &= row[c] == -std::numeric_limits<T>::infinity();
    }
    if (all_negative_infinity)
      throw std::invalid_argument(n + " row " + std::to_string(r) +
                                  " is all -inf: softmax is undefined (every class masked out)");
  }
}

template <class T> void sigmoid(const T* x, T* out, int64_t n, const char* name) {
  if (parallel_blocks(n, 1, [&](int64_t lo, int64_t hi) { return sigmoid_range(x, out, lo, hi); }) == 0) return;
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(x[i]))
      throw std::invalid_argument(std::string(name) + " must not contain NaN, got nan at flat index " +
                                  std::to_string(i));
}

template <class T>
void entropy(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check) {
  const T tol = tolerance_of<T>(check);
  if (parallel_blocks(rows, cols, [&](int64_t lo, int64_t hi) {
        return entropy_range(p, out, lo, hi, cols, check.check, tol);
      }) == 0)
    return;
  throw_first_bad_row(p, rows, cols, check);
}

template <class T>
void least_confidence(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check) {
  const T tol = tolerance_of<T>(check);
  if (parallel_blocks(rows, cols, [&](int64_t lo, int64_t hi) {
        return least_confidence_range(p, out, lo, hi, cols, check.check, tol);
      }) == 0)
    return;
  throw_first_bad_row(p, rows, cols, check);
}

template <class T> void margin(const T* p, T* out, int64_t rows, int64_t cols, const ProbabilityCheck& check) {
  const T tol = tolerance_of<T>(check);
  if (parallel_blocks(rows, cols, [&](int64_t lo, int64_t hi) {
        return margin_range(p, out, lo, hi, cols, check.check, tol);
      }) == 0)
    return;
  throw_first_bad_row(p, rows, cols, check);
}

template <class T>
void bald(const T* p, T* out, int64_t samples, int64_t rows, int64_t cols, const ProbabilityCheck& check) {
  if (samples < 1) throw std::invalid_argument(std::string(check.name) + " must hold at least one sample");
  const T tol = tolerance_of<T>(check);
  if (parallel_blocks(rows, samples * cols, [&](int64_t lo, int64_t hi) {
        return bald_range(p, out, samples, rows, lo, hi, cols, check.check, tol);
      }) == 0)
    return;
  for (int64_t s = 0; s < samples; ++s)
    throw_first_bad_row(p + s * rows * cols, rows, cols, check, " of sample " + std::to_string(s));
}

template <class T>
void aggregate(const T* values, const int64_t* groups, int64_t n, int64_t n_groups, Reduction how, T fill_value,
               T* out, int64_t* counts) {
  if (n_groups < 0) throw std::invalid_argument("n_groups must be >= 0, got " + std::to_string(n_groups));
  for (int64_t i = 0; i < n; ++i) {
    if (groups[i] < 0 || groups[i] >= n_groups)
      throw std::invalid_argument("groups must be in [0, n_groups) = [0, " + std::to_string(n_groups) + "), got " +
                                  std::to_string(groups[i]) + " at index " + std::to_string(i));
    if (std::isnan(values[i]))
      throw std::invalid_argument("values must not contain NaN, got nan at index " + std::to_string(i));
  }
  for (int64_t g = 0; g < n_groups; ++g) counts[g] = 0;
  for (int64_t i = 0; i < n; ++i) ++counts[groups[i]];
  if (how == Reduction::max) {
    for (int64_t g = 0; g < n_groups; ++g) out[g] = -std::numeric_limits<T>::infinity();
    for (int64_t i = 0; i < n; ++i) {
      T& o = out[groups[i]];
      o = values[i] > o ? values[i] : o;
    }
  } else {
    // double accumulators: float32 sums of many boxes would otherwise lose digits.
    std::vector<double> acc(static_cast<size_t>(n_groups), 0.0);
    for (int64_t i = 0; i < n; ++i) acc[groups[i]] += static_cast<double>(values[i]);
    for (int64_t g = 0; g < n_groups; ++g)
      out[g] = static_cast<T>(how == Reduction::mean && counts[g] > 0 ? acc[g] / static_cast<double>(counts[g]) : acc[g]);
  }
  for (int64_t g = 0; g < n_groups; ++g)
    if (counts[g] == 0) out[g] = fill_value;
}

#define CURATA_INSTANTIATE(T)                                                                                \
  template void softmax<T>(const T*, T*, int64_t, int64_t, const char*);                                     \
  template void sigmoid<T>(const T*, T*, int64_t, const char*);                                              \
  template void entropy<T>(const T*, T*, int64_t, int64_t, const ProbabilityCheck&);                         \
  template void least_confidence<T>(const T*, T*, int64_t, int64_t, const ProbabilityCheck&);                \
  template void margin<T>(const T*, T*, int64_t, int64_t, const ProbabilityCheck&);                          \
  template void bald<T>(const T*, T*, int64_t, int64_t, int64_t, const ProbabilityCheck&);                   \
  template void aggregate<T>(const T*, const int64_t*, int64_t, int64_t, Reduction, T, T*, int64_t*);

CURATA_INSTANTIATE(float)
CURATA_INSTANTIATE(double)

}  // namespace curata
