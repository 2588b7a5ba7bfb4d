// Per-column two-sample summaries: gather, sort, one merged walk over the two sorted samples.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "curata/drift.hpp"
#include "curata/drift_math.hpp"
#include "curata/parallel.hpp"
#include "drift_internal.hpp"

namespace curata {
namespace drift {
namespace {

using detail::kBlock;

struct Walk {
  // KS: extremes over groups holding ref values (1) and cur values (2), with first locations.
  double max1 = -std::numeric_limits<double>::infinity(), max2 = max1;
  double min1 = std::numeric_limits<double>::infinity(), min2 = min1;
  double at_max1 = 0, at_max2 = 0, at_min1 = 0, at_min2 = 0;
  int128 cvm_ref = 0, cvm_cur = 0;  // 4 * sum (midrank - rank within sample)^2
  int128 rank_sum_x2 = 0;           // 2 * sum of the pooled midranks of ref values
  int128 ties = 0;                  // sum of t^3 - t
  bool any_tie = false;
  long double w_sum = 0, e_sum = 0;  // sum |gap| * dv and gap^2 * dv
};

// One pass over the two sorted runs, a tie group at a time. `What` is a compile-time set of
// Summary bits so each combination gets a loop without the unused bookkeeping; accumulators are
// locals (registers), written to `w` once at the end.
template <unsigned What, class Key>
void walk(const Key* a, int64_t n1, const Key* b, int64_t n2, Walk& w) {
  constexpr bool want_ks = What & kKs, want_cvm = What & kCvm, want_mwu = What & kMwu;
  constexpr bool want_w = What & kWasserstein, want_e = What & kEnergy, want_dist = want_w || want_e;
  double max1 = w.max1, max2 = w.max2, min1 = w.min1, min2 = w.min2;
  double at_max1 = 0, at_max2 = 0, at_min1 = 0, at_min2 = 0;
  int128 cvm_ref = 0, cvm_cur = 0, rank_sum_x2 = 0, ties = 0;
  bool any_tie = false;
  long double w_sum = 0, e_sum = 0;
  int64_t i = 0, k = 0;
  bool have_prev = false;
  double prev_v = 0, prev_gap = 0;
  // Which sample holds the next value is a coin toss for similar samples: the merge takes the
  // smaller head without a branch on it (all-ones is no value's key, so it ends an exhausted run),
  // and the tie loops start past the head, so they almost always exit at once, predictably.
  constexpr Key kEnd = ~Key(0);
  while (i < n1 || k < n2) {
    const Key head_a = i < n1 ? a[i] : kEnd, head_b = k < n2 ? b[k] : kEnd;
    const Key key = std::min(head_a, head_b);
    int64_t ca = head_a == key, cb = head_b == key;
    while (i + ca < n1 && a[i + ca] == key) ++ca;
    while (k + cb < n2 && b[k + cb] == key) ++cb;
    const int64_t below = i + k, size = ca + cb;
    const double v = key_value(key);
    if (want_dist && have_prev) {
      // numpy's formulation: |F_u - F_v| at each pooled value times the gap to the next one.
      const double dv = v - prev_v;
      if (want_w) w_sum += std::fabs(prev_gap) * dv;
      if (want_e) e_sum += prev_gap * prev_gap * dv;
    }
    if (want_cvm) {
      if (size == 1) {
        // cvm_group_term of a lone value, (2 (below - seen))^2, added to its sample's sum without
        // a branch on which sample that is
        const int128 d = 2 * static_cast<int128>(below - (ca ? i : k)), term = d * d;
        cvm_ref += ca * term;
        cvm_cur += cb * term;
      } else {
        cvm_ref += cvm_group_term(below, size, ca, i);
        cvm_cur += cvm_group_term(below, size, cb, k);
      }
    }
    if (want_mwu) {
      rank_sum_x2 += static_cast<int128>(ca) * doubled_midrank(below, size);
      if (size > 1) {
        ties += tie_term(size);
        any_tie = true;
      }
    }
    i += ca;
    k += cb;
    const double gap = ecdf_gap(i, n1, k, n2);
    if (want_ks) {
      // & rather than &&: one rarely taken branch per extreme instead of one on ca > 0
      if ((ca > 0) & (gap > max1)) { max1 = gap; at_max1 = v; }
      if ((ca > 0) & (gap < min1)) { min1 = gap; at_min1 = v; }
      if ((cb > 0) & (gap > max2)) { max2 = gap; at_max2 = v; }
      if ((cb > 0) & (gap < min2)) { min2 = gap; at_min2 = v; }
    }
    if (want_dist) {
      if (size > 1) {
        // Equal neighbours contribute |gap| * (v - v): zero, or NaN for a repeated infinity.
        const double same = v - v;
        if (want_w) w_sum += std::fabs(gap) * same;
        if (want_e) e_sum += gap * gap * same;
      }
      prev_v = v;
      prev_gap = gap;
      have_prev = true;
    }
  }
  w.max1 = max1; w.max2 = max2; w.min1 = min1; w.min2 = min2;
  w.at_max1 = at_max1; w.at_max2 = at_max2; w.at_min1 = at_min1; w.at_min2 = at_min2;
  w.cvm_ref = cvm_ref; w.cvm_cur = cvm_cur; w.rank_sum_x2 = rank_sum_x2; w.ties = ties; w.any_tie = any_tie;
  w.w_sum = w_sum; w.e_sum = e_sum;
}

template <unsigned What = 31, class Key>
void walk_any(const Key* a, int64_t n1, const Key* b, int64_t n2, unsigned what, Walk& w) {
  switch (what) {
    case kKs: return walk<kKs>(a, n1, b, n2, w);
    case kCvm: return walk<kCvm>(a, n1, b, n2, w);
    case kMwu: return walk<kMwu>(a, n1, b, n2, w);
    case kWasserstein: return walk<kWasserstein>(a, n1, b, n2, w);
    case kEnergy: return walk<kEnergy>(a, n1, b, n2, w);
    default: return walk<What>(a, n1, b, n2, w);
  }
}

void store(const Walk& w, unsigned what, int64_t n1, int64_t n2, int64_t j, ColumnSummaries& out) {
  if (what & kKs) {
    // argmax over concat(sorted ref, sorted cur): a ref value attaining the extreme comes first.
    const bool ref_max = w.max1 >= w.max2, ref_min = w.min1 <= w.min2;
    out.gap_max[j] = ref_max ? w.max1 : w.max2;
    out.gap_max_at[j] = ref_max ? w.at_max1 : w.at_max2;
    out.gap_min[j] = ref_min ? w.min1 : w.min2;
    out.gap_min_at[j] = ref_min ? w.at_min1 : w.at_min2;
  }
  if (what & kCvm) {
    // 4U = n1 * 4 sum (r - i)^2 + n2 * 4 sum (s - j)^2, exact (<= 8 (n1 n2)^2); the statistic is
    // formed from it in cvm_from_summaries.
    const uint128 u4 = static_cast<uint128>(n1 * w.cvm_ref + n2 * w.cvm_cur);
    out.cvm_u4_hi[j] = static_cast<uint64_t>(u4 >> 64);
    out.cvm_u4_lo[j] = static_cast<uint64_t>(u4);
    out.cvm_u[j] = static_cast<double>(u4) / 4.0;
  }
  if (what & kMwu) {
    const double r1 = static_cast<double>(w.rank_sum_x2) / 2.0;
    out.mwu_u1[j] = r1 - static_cast<double>(static_cast<int128>(n1) * (n1 + 1)) / 2.0;
    out.mwu_tie_sum[j] = static_cast<double>(w.ties);
    out.mwu_ties[j] = w.any_tie ? 1 : 0;
  }
  if (what & kWasserstein) out.wasserstein[j] = static_cast<double>(w.w_sum);
  if (what & kEnergy) out.energy[j] = std::sqrt(2.0) * std::sqrt(static_cast<double>(w.e_sum));
}

std::string count_message(const char* sample, int64_t column, int64_t have, int64_t nan, int64_t need,
                          const char* test) {
  std::string msg = std::string(sample) + " column " + std::to_string(column) + " has " + std::to_string(have) +
                    " value" + (have == 1 ? "" : "s");
  if (nan > 0) msg += " after omitting " + std::to_string(nan) + " NaN";
  return msg + "; " + test + " needs at least " + std::to_string(need) + " per column";
}

ColumnSummaries allocate(int64_t columns, unsigned what) {
  ColumnSummaries out;
  out.columns = columns;
  const size_t d = static_cast<size_t>(columns);
  out.n_ref.assign(d, 0);
  out.n_cur.assign(d, 0);
  out.nan_ref.assign(d, 0);
  out.nan_cur.assign(d, 0);
  if (what & kKs) {
    out.gap_max.assign(d, 0);
    out.gap_min.assign(d, 0);
    out.gap_max_at.assign(d, 0);
    out.gap_min_at.assign(d, 0);
  }
  if (what & kCvm) {
    out.cvm_u4_hi.assign(d, 0);
    out.cvm_u4_lo.assign(d, 0);
    out.cvm_u.assign(d, 0);
  }
  if (what & kMwu) {
    out.mwu_u1.assign(d, 0);
    out.mwu_tie_sum.assign(d, 0);
    out.mwu_ties.assign(d, 0);
  }
  if (what & kWasserstein) out.wasserstein.assign(d, 0);
  if (what & kEnergy) out.energy.assign(d, 0);
  return out;
}

}  // namespace

template <class T>
ColumnSummaries summarize(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                          unsigned what, NanPolicy nan_policy, int64_t min_size, const char* test) {
  if (n_ref < 0 || n_cur < 0 || columns < 0) throw std::invalid_argument("sizes must be non-negative");
  ColumnSummaries out = allocate(columns, what);
  if (columns == 0) return out;

  const int64_t blocks = (columns + kBlock - 1) / kBlock;
  const int threads = detail::column_threads(columns, n_ref, n_cur);
  detail::ErrorSlot error;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<column_key_t<T>> ref_keys, cur_keys, scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      detail::PairBlock pb;
      detail::gather_pair_block(ref, n_ref, cur, n_cur, columns, blk * kBlock, nan_policy, ref_keys, cur_keys, pb, out,
                                error);
      const int64_t j0 = pb.j0, width = pb.width;
      const int64_t *cnt_ref = pb.n_ref, *cnt_cur = pb.n_cur, *nan_ref = pb.nan_ref, *nan_cur = pb.nan_cur;
      for (int64_t c = 0; c < width; ++c) {
        const int64_t j = j0 + c;
        if (!pb.usable[c]) continue;
        if (cnt_ref[c] < min_size || cnt_cur[c] < min_size) {
          const bool bad_ref = cnt_ref[c] < min_size;
          error.offer(j, count_message(bad_ref ? "ref" : "cur", j, bad_ref ? cnt_ref[c] : cnt_cur[c],
                                       bad_ref ? nan_ref[c] : nan_cur[c], min_size, test));
          continue;
        }
        column_key_t<T>* a = ref_keys.data() + c * n_ref;
        column_key_t<T>* b = cur_keys.data() + c * n_cur;
        detail::sort_keys(a, cnt_ref[c], scratch);
        detail::sort_keys(b, cnt_cur[c], scratch);
        Walk w;
        walk_any(a, cnt_ref[c], b, cnt_cur[c], what, w);
        store(w, what, cnt_ref[c], cnt_cur[c], j, out);
      }
    }
  }
  error.raise();
  return out;
}

template <class T>
SortedColumns<column_key_t<T>> sort_columns(const T* x, int64_t rows, int64_t columns) {
  if (rows < 0 || columns < 0) throw std::invalid_argument("sizes must be non-negative");
  SortedColumns<column_key_t<T>> out;
  out.rows = rows;
  out.columns = columns;
  out.keys.resize(static_cast<size_t>(rows * columns));
  out.n.assign(static_cast<size_t>(columns), 0);
  out.nan.assign(static_cast<size_t>(columns), 0);
  if (columns == 0 || rows == 0) return out;
  const int64_t blocks = (columns + kBlock - 1) / kBlock;
  const int threads = detail::column_threads(columns, rows, 0);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<column_key_t<T>> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t j0 = blk * kBlock, width = std::min(kBlock, columns - j0);
      // column j lands at keys + j * rows: the block's layout is already the output's
      detail::gather_block(x, rows, columns, j0, width, out.keys.data() + j0 * rows, out.n.data() + j0,
                           out.nan.data() + j0);
      for (int64_t c = 0; c < width; ++c)
        detail::sort_keys(out.keys.data() + (j0 + c) * rows, out.n[static_cast<size_t>(j0 + c)], scratch);
    }
  }
  return out;
}

template <class T>
ColumnSummaries summarize_sorted(const column_key_t<T>* ref_keys, int64_t ref_rows, const int64_t* ref_n,
                                 const int64_t* ref_nan, const T* cur, int64_t n_cur, int64_t columns, unsigned what,
                                 NanPolicy nan_policy, int64_t min_size, const char* test) {
  if (ref_rows < 0 || n_cur < 0 || columns < 0) throw std::invalid_argument("sizes must be non-negative");
  for (int64_t j = 0; j < columns; ++j)
    if (ref_n[j] < 0 || ref_nan[j] < 0 || ref_n[j] + ref_nan[j] > ref_rows)
      throw std::invalid_argument("sorted reference counts of column " + std::to_string(j) +
                                  " do not fit its " + std::to_string(ref_rows) + " rows");
  ColumnSummaries out = allocate(columns, what);
  if (columns == 0) return out;
  const int64_t blocks = (columns + kBlock - 1) / kBlock;
  const int threads = detail::column_threads(columns, ref_rows, n_cur);
  detail::ErrorSlot error;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<column_key_t<T>> cur_keys, scratch;
    int64_t cnt_cur[kBlock], nan_cur[kBlock];
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t j0 = blk * kBlock, width = std::min(kBlock, columns - j0);
      cur_keys.resize(static_cast<size_t>(width * n_cur));
      detail::gather_block(cur, n_cur, columns, j0, width, cur_keys.data(), cnt_cur, nan_cur);
      for (int64_t c = 0; c < width; ++c) {
        const int64_t j = j0 + c;
        out.n_ref[j] = ref_n[j];
        out.n_cur[j] = cnt_cur[c];
        out.nan_ref[j] = ref_nan[j];
        out.nan_cur[j] = nan_cur[c];
        // the same checks, in the same order and with the same messages, as summarize()
        if (nan_policy == NanPolicy::kRaise && (ref_nan[j] > 0 || nan_cur[c] > 0)) {
          error.offer(j, std::string(ref_nan[j] > 0 ? "ref" : "cur") + " contains NaN (column " + std::to_string(j) +
                             "); pass nan_policy='omit' to drop NaN values per column");
          continue;
        }
        if (ref_n[j] < min_size || cnt_cur[c] < min_size) {
          const bool bad_ref = ref_n[j] < min_size;
          error.offer(j, count_message(bad_ref ? "ref" : "cur", j, bad_ref ? ref_n[j] : cnt_cur[c],
                                       bad_ref ? ref_nan[j] : nan_cur[c], min_size, test));
          continue;
        }
        column_key_t<T>* b = cur_keys.data() + c * n_cur;
        detail::sort_keys(b, cnt_cur[c], scratch);
        Walk w;
        walk_any(ref_keys + j * ref_rows, ref_n[j], b, cnt_cur[c], what, w);
        store(w, what, ref_n[j], cnt_cur[c], j, out);
      }
    }
  }
  error.raise();
  return out;
}

template SortedColumns<uint32_t> sort_columns<float>(const float*, int64_t, int64_t);
template SortedColumns<uint64_t> sort_columns<double>(const double*, int64_t, int64_t);
template ColumnSummaries summarize_sorted<float>(const uint32_t*, int64_t, const int64_t*, const int64_t*, const float*,
                                                 int64_t, int64_t, unsigned, NanPolicy, int64_t, const char*);
template ColumnSummaries summarize_sorted<double>(const uint64_t*, int64_t, const int64_t*, const int64_t*,
                                                  const double*, int64_t, int64_t, unsigned, NanPolicy, int64_t,
                                                  const char*);

template ColumnSummaries summarize<float>(const float*, int64_t, const float*, int64_t, int64_t, unsigned,
                                          NanPolicy, int64_t, const char*);
template ColumnSummaries summarize<double>(const double*, int64_t, const double*, int64_t, int64_t, unsigned,
                                           NanPolicy, int64_t, const char*);

}  // namespace drift
}  // namespace curata
