// Reference-quantile binning per column: the histograms behind psi, Jensen-Shannon, Hellinger,
// total variation and the chi-square test of numeric columns.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "curata/drift.hpp"
#include "curata/drift_math.hpp"
#include "curata/parallel.hpp"
#include "drift_internal.hpp"

namespace curata {
namespace drift {
namespace {

// numpy's linear interpolation between neighbours (accurate at both ends of [0, 1]).
double lerp(double a, double b, double t) {
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

}  // namespace

template <class T>
BinnedCounts quantile_bin_counts(const T* ref, int64_t n_ref, const T* cur, int64_t n_cur, int64_t columns,
                                 int64_t bins, NanPolicy nan_policy) {
  if (bins < 1) throw std::invalid_argument("n_bins must be >= 1, got " + std::to_string(bins));
  if (n_ref < 0 || n_cur < 0 || columns < 0) throw std::invalid_argument("sizes must be non-negative");
  BinnedCounts out;
  out.columns = columns;
  out.bins = bins;
  const size_t D = static_cast<size_t>(columns), B = static_cast<size_t>(bins);
  out.edges.assign(D * (B - 1), 0.0);
  out.ref_counts.assign(D * B, 0);
  out.cur_counts.assign(D * B, 0);
  out.n_ref.assign(D, 0);
  out.n_cur.assign(D, 0);
  out.nan_ref.assign(D, 0);
  out.nan_cur.assign(D, 0);
  if (columns == 0) return out;
  const int64_t blocks = (columns + detail::kBlock - 1) / detail::kBlock;
  const int threads = detail::column_threads(columns, n_ref, n_cur);
  detail::ErrorSlot error;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<column_key_t<T>> ref_keys, cur_keys, scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      detail::PairBlock pb;
      detail::gather_pair_block(ref, n_ref, cur, n_cur, columns, blk * detail::kBlock, nan_policy, ref_keys, cur_keys, pb, out,
                                error);
      const int64_t j0 = pb.j0, width = pb.width;
      const int64_t *cnt_ref = pb.n_ref, *cnt_cur = pb.n_cur, *nan_ref = pb.nan_ref, *nan_cur = pb.nan_cur;
      for (int64_t c = 0; c < width; ++c) {
        const int64_t j = j0 + c;
        if (!pb.usable[c]) continue;
        if (cnt_ref[c] < 1 || cnt_cur[c] < 1) {
          const bool bad_ref = cnt_ref[c] < 1;
          error.offer(j, std::string(bad_ref ? "ref" : "cur") + " column " + std::to_string(j) +
                             " has no values" + ((bad_ref ? nan_ref[c] : nan_cur[c]) > 0 ? " after omitting NaN" : "") +
                             "; binned statistics need at least 1 per column");
          continue;
        }
        column_key_t<T>* a = ref_keys.data() + c * n_ref;
        const column_key_t<T>* b = cur_keys.data() + c * n_cur;
        const int64_t na = cnt_ref[c], nb = cnt_cur[c];
        detail::sort_keys(a, na, scratch);
        const double lo = key_value(a[0]), hi = key_value(a[na - 1]);
        bool finite = std::isfinite(lo) && std::isfinite(hi);
        for (int64_t i = 0; i < nb && finite; ++i) finite = std::isfinite(key_value(b[i]));
        if (!finite) {
          const bool bad_ref = !(std::isfinite(lo) && std::isfinite(hi));
          error.offer(j, std::string(bad_ref ? "ref" : "cur") + " contains inf (column " + std::to_string(j) +
                             "); binned statistics need finite values");
          continue;
        }
        double* edges = out.edges.data() + j * (bins - 1);
        for (int64_t k = 1; k < bins; ++k) {
          const double q = static_cast<double>(k) / static_cast<double>(bins);
          const double virt = static_cast<double>(na - 1) * q;
          int64_t prev = static_cast<int64_t>(std::floor(virt));
          int64_t next = prev + 1;
          if (virt >= static_cast<double>(na - 1)) prev = next = na - 1;
          const double gamma = virt - static_cast<double>(prev);
          edges[k - 1] = lerp(key_value(a[prev]), key_value(a[std::min(next, na - 1)]), gamma);
        }
        int64_t* rc = out.ref_counts.data() + j * bins;
        int64_t* cc = out.cur_counts.data() + j * bins;
        double* edges_end = edges + (bins - 1);
        for (int64_t i = 0; i < na; ++i) ++rc[std::lower_bound(edges, edges_end, key_value(a[i])) - edges];
        for (int64_t i = 0; i < nb; ++i) ++cc[std::lower_bound(edges, edges_end, key_value(b[i])) - edges];
      }
    }
  }
  error.raise();
  return out;
}

template BinnedCounts quantile_bin_counts<float>(const float*, int64_t, const float*, int64_t, int64_t, int64_t,
                                                 NanPolicy);
template BinnedCounts quantile_bin_counts<double>(const double*, int64_t, const double*, int64_t, int64_t, int64_t,
                                                  NanPolicy);

}  // namespace drift
}  // namespace curata
