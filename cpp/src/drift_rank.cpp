// Rank tests per column: Cramér-von Mises and Mann-Whitney U, with their exact null distributions.
//
// Method choice follows scipy.stats: cramervonmises_2samp is exact when max(n1, n2) <= 20;
// mannwhitneyu is asymptotic when both samples exceed 8 or when the pooled sample has ties, exact
// otherwise. Exact distributions are built once per distinct pair of sizes and shared by columns.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "curata/drift.hpp"
#include "curata/drift_math.hpp"
#include "curata/parallel.hpp"
#include "drift_internal.hpp"

namespace curata {
namespace drift {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double clip01(double p) { return std::isnan(p) ? p : std::min(1.0, std::max(0.0, p)); }

long double log_binom(int64_t a, int64_t b) {
  return std::lgamma(static_cast<long double>(a) + 1) - std::lgamma(static_cast<long double>(b) + 1) -
         std::lgamma(static_cast<long double>(a - b) + 1);
}

// Floor division of doubles with Python/numpy semantics (fmod-based, exact for representable
// quotients), so a threshold computed this way matches a numpy `//`.
double float_floor_divide(double a, double b) {
  if (b == 0) return a / b;
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) div -= 1.0;
  }
  if (div != 0) {
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    return floordiv;
  }
  return std::copysign(0.0, a / b);
}

// Ratio of two 128-bit counts as the nearest double (via long double for totals beyond 2^64).
double count_ratio(uint128 num, uint128 den) {
  if (den < (static_cast<uint128>(1) << 64)) return static_cast<double>(num) / static_cast<double>(den);
  return static_cast<double>(static_cast<long double>(num) / static_cast<long double>(den));
}

}  // namespace

// ------------------------------------------------------------------ Cramér-von Mises exact null
struct CvmExactNull::Impl {
  int64_t m = 0, n = 0, lcm = 0;
  std::vector<uint64_t> values;   // attainable path sums, ascending
  std::vector<uint128> tail;      // tail[i] = number of paths with value >= values[i]
  uint128 total = 0;
};

CvmExactNull::CvmExactNull(int64_t m, int64_t n) : impl_(std::make_unique<Impl>()) {
  if (m < 1 || n < 1) throw std::invalid_argument("cramervonmises exact null needs sizes >= 1");
  if (log_binom(m + n, m) > 126 * std::log(2.0L))
    throw std::invalid_argument("method='exact' for cramervonmises supports samples with C(n_ref + n_cur, n_ref) < 2^126, got sizes " +
                                std::to_string(m) + " and " + std::to_string(n) + "; use method='asymptotic'");
  Impl& s = *impl_;
  s.m = m;
  s.n = n;
  s.lcm = std::lcm(m, n);
  const int64_t a = s.lcm / m, b = s.lcm / n;
  // Frequency tables g(u, v) of the path sums of (a v - b u)^2 over lattice paths to (u, v)
  // (Xiao, Gordon & Yakovlev 2006), kept one row of u at a time as sorted (value, count) runs.
  using Table = std::vector<std::pair<uint64_t, uint128>>;
  std::vector<Table> row(static_cast<size_t>(m + 1));
  row[0].emplace_back(0, 1);
  Table merged;
  for (int64_t u = 0; u <= n; ++u) {
    Table run;  // g(u, v - 1) while walking v
    for (int64_t v = 0; v <= m; ++v) {
      const Table& up = row[v];  // g(u - 1, v)
      merged.clear();
      merged.reserve(run.size() + up.size());
      size_t i = 0, k = 0;
      while (i < run.size() || k < up.size()) {
        if (k >= up.size() || (i < run.size() && run[i].first < up[k].first)) {
          merged.push_back(run[i++]);
        } else if (i >= run.size() || up[k].first < run[i].first) {
          merged.push_back(up[k++]);
        } else {
          merged.emplace_back(run[i].first, run[i].second + up[k].second);
          ++i;
          ++k;
        }
      }
      const int64_t diff = a * v - b * u;
      const uint64_t magnitude = static_cast<uint64_t>(diff < 0 ? -diff : diff);
      const uint64_t shift = magnitude * magnitude;
      for (auto& e : merged) e.first += shift;
      run.swap(merged);
      row[v] = run;
    }
  }
  const Table& last = row[m];
  s.values.resize(last.size());
  s.tail.resize(last.size());
  uint128 acc = 0;
  for (size_t i = last.size(); i-- > 0;) {
    acc += last[i].second;
    s.values[i] = last[i].first;
    s.tail[i] = acc;
  }
  s.total = acc;
}

CvmExactNull::~CvmExactNull() = default;

double CvmExactNull::sf(double u) const {
  const Impl& s = *impl_;
  const int64_t mn = s.m * s.n;
  // The statistic as an attainable path sum: lcm^2 (m + n) (6U - mn(4mn - 1)) / (6 (mn)^2).
  const double scale = static_cast<double>(s.lcm * s.lcm * (s.m + s.n));
  const double zeta = float_floor_divide(scale * (6 * u - static_cast<double>(mn * (4 * mn - 1))),
                                         static_cast<double>(6 * mn * mn));
  const auto it = std::lower_bound(s.values.begin(), s.values.end(), zeta,
                                   [](uint64_t value, double z) { return static_cast<double>(value) < z; });
  if (it == s.values.end()) return 0.0;
  return count_ratio(s.tail[static_cast<size_t>(it - s.values.begin())], s.total);
}

// ------------------------------------------------------------------ Mann-Whitney exact null
// Counts of U = u for sizes (n1, n2) are the coefficients of the Gaussian binomial
// prod_{i=1}^{n1} (1 - q^(n2+i)) / (1 - q^i). Each factor is a division (a strided prefix sum)
// and a multiplication (a strided difference); in 128-bit modular arithmetic the truncated
// series is exact as long as the total C(n1 + n2, n1) fits, whatever the intermediate signs.
MwuExactNull::MwuExactNull(int64_t n1, int64_t n2, int64_t max_u) {
  if (n1 > n2) std::swap(n1, n2);
  n1_ = n1;
  n2_ = n2;
  max_u = std::max<int64_t>(0, std::min(max_u, n1 * n2));
  const size_t len = static_cast<size_t>(max_u + 1);
  std::vector<double> counts(len);
  double total;
  if (log_binom(n1 + n2, n1) < 126 * std::log(2.0L)) {
    std::vector<uint128> c(len, 0);
    c[0] = 1;
    for (int64_t i = 1; i <= n1; ++i) {
      for (int64_t u = i; u <= max_u; ++u) c[u] += c[u - i];
      for (int64_t u = max_u; u >= n2 + i; --u) c[u] -= c[u - n2 - i];
    }
    uint128 t = 1;  // C(n1 + n2, n1), exact
    for (int64_t i = 1; i <= n1; ++i) t = t * static_cast<uint128>(n2 + i) / static_cast<uint128>(i);
    total = static_cast<double>(t);
    for (size_t u = 0; u < len; ++u) counts[u] = static_cast<double>(c[u]);
  } else {
    std::vector<long double> c(len, 0.0L);
    c[0] = 1.0L;
    for (int64_t i = 1; i <= n1; ++i) {
      for (int64_t u = i; u <= max_u; ++u) c[u] += c[u - i];
      for (int64_t u = max_u; u >= n2 + i; --u) c[u] -= c[u - n2 - i];
    }
    long double t = 1.0L;
    for (int64_t i = 1; i <= n1; ++i) t = t * static_cast<long double>(n2 + i) / static_cast<long double>(i);
    total = static_cast<double>(t);
    for (size_t u = 0; u < len; ++u) counts[u] = static_cast<double>(c[u]);
  }
  pmf_.resize(len);
  cdf_.resize(len);
  double acc = 0.0;
  for (size_t u = 0; u < len; ++u) {
    pmf_[u] = counts[u] / total;
    acc += pmf_[u];
    cdf_[u] = acc;
  }
}

double MwuExactNull::sf(int64_t u) const {
  // P(U >= u), summed from the nearer tail: the distribution is symmetric about n1 n2 / 2.
  const int64_t uc = n1_ * n2_ - u;
  if (u < uc) return 1.0 - cdf_[u] + pmf_[u];
  return cdf_[uc];
}

// ------------------------------------------------------------------ drivers
template <class T>
TestResult cvm_2samp(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns, PMethod method,
                     NanPolicy nan_policy) {
  return cvm_from_summaries(summarize(ref, n_ref, cur, n_cur, columns, kCvm, nan_policy, 2, "cramervonmises"),
                            method);
}

TestResult cvm_from_summaries(ColumnSummaries summaries, PMethod method) {
  TestResult r;
  r.summaries = std::move(summaries);
  const ColumnSummaries& s = r.summaries;
  const size_t D = static_cast<size_t>(s.columns);
  r.statistic.assign(D, 0.0);
  r.pvalue.assign(D, kNaN);
  r.exact.assign(D, 0);
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> exact_groups;
  for (size_t j = 0; j < D; ++j) {
    const int64_t nx = s.n_ref[j], ny = s.n_cur[j];
    if (static_cast<int128>(nx) * ny > (static_cast<int128>(1) << 60))
      throw std::invalid_argument("cramervonmises supports n_ref * n_cur <= 2^60, got column " + std::to_string(j) +
                                  " with sizes " + std::to_string(nx) + " and " + std::to_string(ny));
    const uint128 u4 = (static_cast<uint128>(s.cvm_u4_hi[j]) << 64) | s.cvm_u4_lo[j];
    r.statistic[j] = cvm_statistic(u4, nx, ny);
    const bool exact = method == PMethod::kExact || (method == PMethod::kAuto && std::max(nx, ny) <= 20);
    if (exact) {
      r.exact[j] = 1;
      exact_groups[{nx, ny}].push_back(static_cast<int64_t>(j));
    }
  }
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<int64_t>>> groups(exact_groups.begin(),
                                                                                   exact_groups.end());
  const int64_t n_groups = static_cast<int64_t>(groups.size());
  detail::ErrorSlot error;
  int64_t work = 0;  // the frequency tables grow roughly like (m n)^2
  for (const auto& g : groups) work += g.first.first * g.first.first * g.first.second * g.first.second;
  const int threads = threads_for(work, int64_t(1) << 17);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t g = 0; g < n_groups; ++g) {
    try {
      const CvmExactNull null(groups[g].first.first, groups[g].first.second);
      for (int64_t j : groups[g].second) r.pvalue[j] = null.sf(s.cvm_u[j]);
    } catch (const std::exception& e) {
      error.offer(groups[g].second.front(), e.what());
    }
  }
  error.raise();
  return r;
}

template <class T>
TestResult mannwhitneyu(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                        Alternative alternative, PMethod method, bool continuity, NanPolicy nan_policy) {
  return mwu_from_summaries(summarize(ref, n_ref, cur, n_cur, columns, kMwu, nan_policy, 1, "mannwhitneyu"),
                            alternative, method, continuity);
}

TestResult mwu_from_summaries(ColumnSummaries summaries, Alternative alternative, PMethod method, bool continuity) {
  TestResult r;
  r.summaries = std::move(summaries);
  const ColumnSummaries& s = r.summaries;
  const size_t D = static_cast<size_t>(s.columns);
  r.statistic.assign(D, 0.0);
  r.pvalue.assign(D, kNaN);
  r.exact.assign(D, 0);
  const double factor = alternative == Alternative::kTwoSided ? 2.0 : 1.0;
  std::vector<double> u_test(D);
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> exact_groups;
  for (size_t j = 0; j < D; ++j) {
    const int64_t n1 = s.n_ref[j], n2 = s.n_cur[j];
    const double u1 = s.mwu_u1[j];
    const double u2 = static_cast<double>(n1 * n2) - u1;
    r.statistic[j] = u1;
    u_test[j] = alternative == Alternative::kGreater ? u1 : alternative == Alternative::kLess ? u2 : std::max(u1, u2);
    bool exact;
    if (method == PMethod::kAuto) {
      exact = !(n1 > 8 && n2 > 8) && !s.mwu_ties[j];
    } else {
      exact = method == PMethod::kExact;
    }
    if (exact) {
      r.exact[j] = 1;
      exact_groups[{std::min(n1, n2), std::max(n1, n2)}].push_back(static_cast<int64_t>(j));
    } else {
      const double z = mwu_z(u_test[j], n1, n2, s.mwu_tie_sum[j], continuity);
      r.pvalue[j] = clip01(normal_sf(z) * factor);
    }
  }
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<int64_t>>> groups(exact_groups.begin(),
                                                                                   exact_groups.end());
  const int64_t n_groups = static_cast<int64_t>(groups.size());
  int64_t work = 0;  // O(min(n1, n2) * n1 * n2) per distinct pair of sizes
  for (const auto& g : groups) work += g.first.first * g.first.first * g.first.second;
  const int threads = threads_for(work, int64_t(1) << 17);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t a = groups[g].first.first, b = groups[g].first.second;
    int64_t need = 0;
    for (int64_t j : groups[g].second) {
      const int64_t u = static_cast<int64_t>(u_test[j]);  // truncates a tied half-integer U
      need = std::max(need, std::min(u, a * b - u));
    }
    const MwuExactNull null(a, b, need);
    for (int64_t j : groups[g].second) r.pvalue[j] = clip01(null.sf(static_cast<int64_t>(u_test[j])) * factor);
  }
  return r;
}

template TestResult cvm_2samp<float>(const float*, int64_t, const float*, int64_t, int64_t, PMethod, NanPolicy);
template TestResult cvm_2samp<double>(const double*, int64_t, const double*, int64_t, int64_t, PMethod, NanPolicy);
template TestResult mannwhitneyu<float>(const float*, int64_t, const float*, int64_t, int64_t, Alternative, PMethod,
                                        bool, NanPolicy);
template TestResult mannwhitneyu<double>(const double*, int64_t, const double*, int64_t, int64_t, Alternative,
                                         PMethod, bool, NanPolicy);

}  // namespace drift
}  // namespace curata
