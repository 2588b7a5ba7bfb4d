// Two-sample drift statistics, per column, for a reference sample (n_ref, D) and a current sample
// (n_cur, D), both row-major.
//
// One pass per column does the O(n log n) work: gather the column (float32 or float64, computed in
// float64), sort both samples (radix sort on order-preserving keys: 32-bit for float32 input,
// 64-bit for float64), and walk the two sorted runs once, tie group by tie group (formulas in
// curata/drift_math.hpp). Columns are processed in blocks of up to 8 adjacent columns by OpenMP
// threads.
//
// The statistics and p-values reproduce scipy.stats (ks_2samp, cramervonmises_2samp,
// mannwhitneyu, wasserstein_distance, energy_distance), including how scipy chooses between the
// exact and the asymptotic null distribution. The asymptotic Cramér-von Mises p-value needs a
// modified Bessel function and is finished by the caller (see cvm_2samp).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "curata/drift_math.hpp"

namespace curata {
namespace drift {

enum class NanPolicy : int { kRaise = 0, kOmit = 1 };
enum class Alternative : int { kTwoSided = 0, kLess = 1, kGreater = 2 };
enum class PMethod : int { kAuto = 0, kExact = 1, kAsymptotic = 2 };

// What summarize() computes per column.
enum Summary : unsigned { kKs = 1u, kCvm = 2u, kMwu = 4u, kWasserstein = 8u, kEnergy = 16u };

struct ColumnSummaries {
  int64_t columns = 0;
  std::vector<int64_t> n_ref, n_cur;      // values used (NaN omitted)
  std::vector<int64_t> nan_ref, nan_cur;  // NaN values dropped
  // kKs: extremes of F_ref - F_cur over the pooled values and the value where each occurs first
  // (first in ref order, then cur order: the value scipy.stats.ks_2samp reports).
  std::vector<double> gap_max, gap_min, gap_max_at, gap_min_at;
  // kCvm: U of Anderson (1962), exact: 4U (an integer, ranks being half-integers) as two 64-bit
  // limbs, 4U = cvm_u4_hi * 2^64 + cvm_u4_lo; cvm_u is U rounded to the nearest double.
  std::vector<uint64_t> cvm_u4_hi, cvm_u4_lo;
  std::vector<double> cvm_u;
  std::vector<double> mwu_u1, mwu_tie_sum;          // kMwu: U of ref, sum over ties of t^3 - t
  std::vector<uint8_t> mwu_ties;                    // kMwu: any tie group of size > 1
  std::vector<double> wasserstein, energy;          // kWasserstein, kEnergy
};

// Per-column summaries. Throws std::invalid_argument for NaN under NanPolicy::kRaise and for a
// column left with fewer than `min_size` values (message names `test` and the sample).
template <class T>
ColumnSummaries summarize(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                          unsigned what, NanPolicy nan_policy, int64_t min_size, const char* test);

// Columns of one sample sorted once, for comparing many samples with it (DriftMonitor's
// reference): column j holds n[j] ascending order keys (NaN dropped, counted in nan[j]) at
// keys[j * rows, j * rows + n[j]); Key is column_key_t<T> (uint32_t for float input).
template <class Key>
struct SortedColumns {
  int64_t rows = 0, columns = 0;
  std::vector<Key> keys;
  std::vector<int64_t> n, nan;
};

template <class T>
SortedColumns<column_key_t<T>> sort_columns(const T* x, int64_t rows, int64_t columns);

// summarize() with the reference already sorted by sort_columns(): only `cur` is gathered and
// sorted, then the same merged walk runs, so every summary is identical to summarize()'s on the
// unsorted reference (sorted keys are unique as a sequence). ref_keys is (columns, ref_rows)
// row-major, ref_n / ref_nan (columns,); errors and messages as summarize().
template <class T>
ColumnSummaries summarize_sorted(const column_key_t<T>* ref_keys, int64_t ref_rows, const int64_t* ref_n,
                                 const int64_t* ref_nan, const T* cur, int64_t n_cur, int64_t columns, unsigned what,
                                 NanPolicy nan_policy, int64_t min_size, const char* test);

struct TestResult {
  std::vector<double> statistic, pvalue;  // (D,)
  std::vector<uint8_t> exact;             // (D,) 1 where the exact null distribution was used
  std::vector<double> location;           // ks only: where the statistic is attained
  std::vector<int8_t> sign;               // ks only: +1 if F_ref - F_cur is the larger gap, else -1
  std::vector<uint8_t> fell_back;         // ks only: exact requested or chosen but not possible
  ColumnSummaries summaries;
};

template <class T>
TestResult ks_2samp(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                    Alternative alternative, PMethod method, NanPolicy nan_policy);

// p-values of columns using the asymptotic method are left NaN (exact == 0): the caller
// evaluates the limiting distribution, which needs K_{1/4}, from the statistic and sizes.
template <class T>
TestResult cvm_2samp(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                     PMethod method, NanPolicy nan_policy);

template <class T>
TestResult mannwhitneyu(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                        Alternative alternative, PMethod method, bool continuity, NanPolicy nan_policy);

// The p-value half of the three tests above, from summaries computed elsewhere (the torch device
// path of curata.drift computes the statistics on the GPU and finishes here, so CPU and GPU share
// one implementation of every null distribution). `summaries` must hold the counts and the fields
// of the test (kKs: gap_*; kCvm: cvm_u4_hi and cvm_u4_lo, cvm_u is recomputed from them; kMwu:
// mwu_*), one entry per column, sizes >= 1 (>= 2 for cvm).
TestResult ks_from_summaries(ColumnSummaries summaries, Alternative alternative, PMethod method);
TestResult cvm_from_summaries(ColumnSummaries summaries, PMethod method);
TestResult mwu_from_summaries(ColumnSummaries summaries, Alternative alternative, PMethod method, bool continuity);

// ---------------------------------------------------------------- null distributions
// Survival function P(D_n >= d) of the two-sided one-sample Kolmogorov-Smirnov statistic
// (scipy.stats.kstwo.sf), following Simard & L'Ecuyer (2011) for the choice of algorithm.
double kstwo_sf(int64_t n, double d);
// Survival function P(D+_n >= d) of the one-sided one-sample statistic (scipy.special.smirnov).
double smirnov_sf(int64_t n, double d);
// Exact P(D >= h / lcm(n1, n2)) for the two-sample statistic; false when the computation
// overflowed (the caller then uses the asymptotic distribution).
bool ks_2samp_exact_sf(int64_t n1, int64_t n2, int64_t h, Alternative alternative, double* p);

// Exact null distribution of the two-sample Cramér-von Mises U for sizes (m, n) (Xiao, Gordon &
// Yakovlev 2006): the frequency of every attainable value.
class CvmExactNull {
 public:
  CvmExactNull(int64_t m, int64_t n);
  ~CvmExactNull();
  double sf(double u) const;  // P(U >= u)
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Exact null distribution of the Mann-Whitney U for sizes (n1, n2), built up to max_u.
class MwuExactNull {
 public:
  MwuExactNull(int64_t n1, int64_t n2, int64_t max_u);
  double sf(int64_t u) const;  // P(U >= u); needs min(u, n1 n2 - u) <= max_u
 private:
  int64_t n1_, n2_;
  std::vector<double> pmf_, cdf_;
};

// ---------------------------------------------------------------- binned
struct BinnedCounts {
  int64_t columns = 0, bins = 0;
  std::vector<double> edges;                  // (D, bins - 1) inner edges, ascending
  std::vector<int64_t> ref_counts, cur_counts;  // (D, bins)
  std::vector<int64_t> n_ref, n_cur, nan_ref, nan_cur;
};

// Bins from the reference quantiles k / bins (k = 1..bins-1, numpy's default 'linear' quantile);
// bin b holds values in (edge[b-1], edge[b]] with edge[-1] = -inf and edge[bins-1] = +inf.
// Values must be finite (NaN handled by nan_policy).
template <class T>
BinnedCounts quantile_bin_counts(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                                 int64_t bins, NanPolicy nan_policy);

}  // namespace drift
}  // namespace curata
