// COCO bbox evaluation: matching per (image, category), accumulation per (category, area, max_det).
//
// Plan:
//  1. Counting sort of ground truth and detections by image (stable: file order survives).
//  2. Images in parallel: each image's detections are ordered by (category, descending score,
//     file position) and its ground truth by (category, file position); every (image, category)
//     group computes its IoU matrix once and runs the greedy matching (greedy_match.hpp, shared
//     with curata::match) for every area range and IoU threshold, leaving one status byte per
//     (detection, area, threshold): TP, FP or ignored.
//  3. Categories in parallel: the category's kept detections (image order, then rank) are sorted
//     stably by descending score, which is exactly the order pycocotools gets from concatenating
//     the images and merge-sorting. One pass per (area, max_det) collects, for every threshold,
//     the precision at each true positive. Precision at false positives and ignored detections
//     never exceeds the precision at the preceding true positive (same tp, larger denominator),
//     so the right-to-left envelope and the recall-threshold lookups only need the true positives;
//     the one exception, a lookup landing on the very first detection, is handled explicitly.
#include "curata/coco_eval.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "curata/greedy_match.hpp"
#include "curata/parallel.hpp"

namespace curata {
namespace {

constexpr uint8_t kFalsePositive = 0;
constexpr uint8_t kTruePositive = 1;
constexpr uint8_t kIgnored = 2;

// numpy's np.spacing(1): the distance from 1.0 to the next double.
constexpr double kEps = std::numeric_limits<double>::epsilon();

void check_index(const int64_t* values, int64_t n, int64_t bound, const char* name) {
  for (int64_t i = 0; i < n; ++i) {
    if (values[i] < 0 || values[i] >= bound) {
      throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) + "] must be in [0, " +
                                  std::to_string(bound) + "), got " + std::to_string(values[i]));
    }
  }
}

// Stable counting sort of positions 0..n-1 by key in [0, bound): start has bound + 1 entries.
void counting_sort(const int64_t* key, int64_t n, int64_t bound, std::vector<int64_t>& start,
                   std::vector<int64_t>& order) {
  start.assign(static_cast<size_t>(bound + 1), 0);
  for (int64_t i = 0; i < n; ++i) ++start[static_cast<size_t>(key[i] + 1)];
  for (int64_t b = 0; b < bound; ++b) start[b + 1] += start[b];
  order.resize(static_cast<size_t>(n));
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(next[key[i]]++)] = i;
}

struct Scratch {
  std::vector<double> iou;          // (D, G) in the group's ground-truth file order
  std::vector<int64_t> gt_sorted;   // group-local ground-truth indices, non-ignored first
  std::vector<uint8_t> gt_ignored;  // by sorted position
  std::vector<uint8_t> gt_crowd;    // by sorted position
  std::vector<uint8_t> gt_taken;    // by sorted position, for one threshold
  std::vector<double> dt_area;
};

// Matches one (image, category) group. gts/dts are input positions; dts are score-ordered and
// already cut to max_det. Writes status[(slot + d) * A * T + a * T + t].
void evaluate_group(const CocoEvalInput& in, const int64_t* gts, int64_t G, const int64_t* dts, int64_t D,
                    uint8_t* status, Scratch& s) {
  const int64_t A = in.n_areas, T = in.n_iou;
  s.dt_area.resize(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) {
    const double* b = in.dt_box + 4 * dts[d];
    s.dt_area[d] = b[2] * b[3];
  }
  if (G == 0) {
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t a = 0; a < A; ++a) {
        const double lo = in.area_ranges[2 * a], hi = in.area_ranges[2 * a + 1];
        const double area = s.dt_area[d];
        const uint8_t v = (area < lo || area > hi) ? kIgnored : kFalsePositive;
        std::fill_n(status + (d * A + a) * T, T, v);
      }
    }
    return;
  }
  s.iou.resize(static_cast<size_t>(D * G));
  for (int64_t d = 0; d < D; ++d) {
    const double* db = in.dt_box + 4 * dts[d];
    double* row = s.iou.data() + d * G;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t gi = gts[g];
      const double* gb = in.gt_box + 4 * gi;
      row[g] = coco_box_iou(db, gb, s.dt_area[d], gb[2] * gb[3], in.gt_crowd[gi] != 0);
    }
  }
  s.gt_sorted.resize(static_cast<size_t>(G));
  s.gt_ignored.resize(static_cast<size_t>(G));
  s.gt_crowd.resize(static_cast<size_t>(G));
  s.gt_taken.resize(static_cast<size_t>(G));
  for (int64_t a = 0; a < A; ++a) {
    const double lo = in.area_ranges[2 * a], hi = in.area_ranges[2 * a + 1];
    // Stable partition: non-ignored ground truth first.
    int64_t n_kept = 0, n_regular = 0;
    for (int64_t pass = 0; pass < 2; ++pass) {
      for (int64_t g = 0; g < G; ++g) {
        const int64_t gi = gts[g];
        const double area = in.gt_area[gi];
        const bool ignored = in.gt_crowd[gi] != 0 || area < lo || area > hi;
        if (ignored == (pass == 1)) {
          s.gt_sorted[n_kept] = g;
          s.gt_ignored[n_kept] = ignored ? 1 : 0;
          s.gt_crowd[n_kept] = in.gt_crowd[gi] != 0;
          ++n_kept;
        }
      }
      if (pass == 0) n_regular = n_kept;
    }
    for (int64_t t = 0; t < T; ++t) {
      const double threshold = std::min(in.iou_thresholds[t], 1.0 - 1e-10);
      std::fill(s.gt_taken.begin(), s.gt_taken.end(), uint8_t(0));
      const uint8_t* taken = s.gt_taken.data();
      const uint8_t* crowd = s.gt_crowd.data();
      const int64_t* sorted = s.gt_sorted.data();
      for (int64_t d = 0; d < D; ++d) {
        const double* row = s.iou.data() + d * G;
        const int64_t match = greedy_match(
            n_regular, G, threshold, [taken, crowd](int64_t j, bool ignored) { return taken[j] && !(ignored && crowd[j]); },
            [row, sorted](int64_t j, bool) { return row[sorted[j]]; });
        const double area = s.dt_area[d];
        const bool outside = area < lo || area > hi;
        uint8_t v;
        if (match == -1) {
          v = outside ? kIgnored : kFalsePositive;
        } else {
          s.gt_taken[match] = 1;
          if (s.gt_ignored[match]) {
            v = kIgnored;
          } else if (in.gt_id_zero[gts[s.gt_sorted[match]]]) {
            v = outside ? kIgnored : kFalsePositive;  // recorded as "matched to id 0" == unmatched
          } else {
            v = kTruePositive;
          }
        }
        status[(d * A + a) * T + t] = v;
      }
    }
  }
}

// Per-thread buffers of the accumulation. A category's detections are gathered once, in score
// order, into contiguous arrays (status transposed to [area][threshold][detection]) so that the
// A * M * T passes over them read memory sequentially.
struct Accumulator {
  std::vector<double> score;
  std::vector<int64_t> rank;
  std::vector<uint8_t> status;    // (A * T, n)
  std::vector<int64_t> included;  // detections within the current max_det
  std::vector<double> pr;          // precision at each true positive
  std::vector<int64_t> tp_entry;   // which detection each true positive is
  std::vector<int64_t> fp_before;  // false positives ranked above each true positive
};

// Fills precision/scores (R entries with the given stride) and returns the recall for one
// (category, area, max_det, threshold), given the statuses of the included detections.
template <class Entries>
double accumulate_one(const uint8_t* st, const Entries& entries, int64_t nd, int64_t first, double n_pos,
                      const double* score, const double* recall_thresholds, int64_t R, Accumulator& acc,
                      double* precision, double* scores, int64_t stride) {
  for (int64_t r = 0; r < R; ++r) {
    precision[r * stride] = 0.0;
    scores[r * stride] = 0.0;
  }
  if (nd == 0) return 0.0;
  // Branch-free scan (statuses are random, a branch per detection mispredicts a third of the
  // time): every step writes a candidate slot and advances only on a true positive.
  acc.tp_entry.resize(static_cast<size_t>(nd + 1));
  acc.fp_before.resize(static_cast<size_t>(nd + 1));
  int64_t* tp_entry = acc.tp_entry.data();
  int64_t* fp_before = acc.fp_before.data();
  int64_t tp = 0, fp = 0;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t e = entries(i);
    const uint8_t v = st[e];
    tp_entry[tp] = e;
    fp_before[tp] = fp;
    tp += v == kTruePositive;
    fp += v == kFalsePositive;
  }
  acc.pr.resize(static_cast<size_t>(tp));
  for (int64_t c = 0; c < tp; ++c) {
    const double tpd = static_cast<double>(c + 1), fpd = static_cast<double>(fp_before[c]);
    acc.pr[c] = tpd / ((fpd + tpd) + kEps);
  }
  std::vector<double>& pr = acc.pr;
  const int64_t n_tp = tp;
  for (int64_t c = n_tp - 1; c > 0; --c) {
    if (pr[c] > pr[c - 1]) pr[c - 1] = pr[c];
  }
  const double rc_first = st[first] == kTruePositive ? 1.0 / n_pos : 0.0;
  // Recall at true positive c is (c + 1) / n_pos, non-decreasing in c: for ascending thresholds
  // the "first c with recall >= v" only moves forward (a smaller threshold restarts the walk).
  int64_t c = 0;
  double previous = -std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < R; ++r) {
    const double v = recall_thresholds[r];
    if (!(rc_first < v)) {  // the lookup lands on the first detection, whatever it is
      precision[r * stride] = n_tp ? pr[0] : 0.0;
      scores[r * stride] = score[first];
      continue;
    }
    if (v < previous) c = 0;
    previous = v;
    while (c < n_tp && static_cast<double>(c + 1) / n_pos < v) ++c;
    if (c == n_tp) break;  // past the last recall reached: this and later entries stay 0
    precision[r * stride] = pr[c];
    scores[r * stride] = score[acc.tp_entry[c]];
  }
  return static_cast<double>(tp) / n_pos;
}

}  // namespace

void coco_eval(const CocoEvalInput& in, CocoEvalOutput& out) {
  const int64_t T = in.n_iou, R = in.n_recall, K = in.n_categories, A = in.n_areas, M = in.n_max_dets;
  const int64_t I = in.n_images;
  if (T < 1 || R < 1 || A < 1 || M < 1) {
    throw std::invalid_argument("coco_eval needs at least one IoU threshold, recall threshold, area range and max_det");
  }
  if (I < 0 || K < 0 || in.n_gt < 0 || in.n_dt < 0) throw std::invalid_argument("coco_eval: negative size");
  for (int64_t m = 0; m < M; ++m) {
    if (in.max_dets[m] < 1 || (m > 0 && in.max_dets[m] < in.max_dets[m - 1])) {
      throw std::invalid_argument("max_dets must be ascending and >= 1");
    }
  }
  if (in.n_dt > std::numeric_limits<int32_t>::max() || in.n_gt > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument("coco_eval supports at most 2^31 - 1 annotations per side");
  }
  check_index(in.gt_image, in.n_gt, I, "gt_image");
  check_index(in.gt_category, in.n_gt, K, "gt_category");
  check_index(in.dt_image, in.n_dt, I, "dt_image");
  check_index(in.dt_category, in.n_dt, K, "dt_category");

  out.precision.assign(static_cast<size_t>(T * R * K * A * M), -1.0);
  out.scores.assign(static_cast<size_t>(T * R * K * A * M), -1.0);
  out.recall.assign(static_cast<size_t>(T * K * A * M), -1.0);
  if (K == 0) return;

  const int64_t max_det = in.max_dets[M - 1];
  std::vector<int64_t> gt_start, gt_order, dt_start, dt_order;
  counting_sort(in.gt_image, in.n_gt, I, gt_start, gt_order);
  counting_sort(in.dt_image, in.n_dt, I, dt_start, dt_order);

  // Per position in dt_order (after the per-image reordering): rank within its (image, category).
  std::vector<int64_t> dt_rank(static_cast<size_t>(in.n_dt), 0);
  std::vector<uint8_t> status(static_cast<size_t>(in.n_dt * A * T), kIgnored);

  const int64_t work = in.n_gt + in.n_dt;
  const int threads = threads_for(work, 4096);
#pragma omp parallel num_threads(threads)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 16)
    for (int64_t i = 0; i < I; ++i) {
      int64_t* g_begin = gt_order.data() + gt_start[i];
      int64_t* g_end = gt_order.data() + gt_start[i + 1];
      int64_t* d_begin = dt_order.data() + dt_start[i];
      int64_t* d_end = dt_order.data() + dt_start[i + 1];
      if (d_begin == d_end) continue;  // ground truth alone only counts towards n_positive
      const int64_t* gc = in.gt_category;
      const int64_t* dc = in.dt_category;
      const double* sc = in.dt_score;
      std::stable_sort(g_begin, g_end, [gc](int64_t x, int64_t y) { return gc[x] < gc[y]; });
      std::sort(d_begin, d_end, [dc, sc](int64_t x, int64_t y) {
        if (dc[x] != dc[y]) return dc[x] < dc[y];
        if (sc[x] != sc[y]) return sc[x] > sc[y];
        return x < y;
      });
      const int64_t* g = g_begin;
      const int64_t* d = d_begin;
      while (d != d_end) {
        const int64_t cat = dc[*d];
        while (g != g_end && gc[*g] < cat) ++g;
        const int64_t* g_stop = g;
        while (g_stop != g_end && gc[*g_stop] == cat) ++g_stop;
        const int64_t* d_stop = d;
        while (d_stop != d_end && dc[*d_stop] == cat) ++d_stop;
        const int64_t slot = d - dt_order.data();
        const int64_t n_group = d_stop - d;
        for (int64_t r = 0; r < n_group; ++r) dt_rank[slot + r] = r;
        evaluate_group(in, g, g_stop - g, d, std::min(n_group, max_det), status.data() + slot * A * T, scratch);
        g = g_stop;
        d = d_stop;
      }
    }
  }

  // Non-ignored ground truth per (category, area).
  std::vector<int64_t> n_positive(static_cast<size_t>(K * A), 0);
  for (int64_t j = 0; j < in.n_gt; ++j) {
    if (in.gt_crowd[j]) continue;
    const double area = in.gt_area[j];
    for (int64_t a = 0; a < A; ++a) {
      if (!(area < in.area_ranges[2 * a] || area > in.area_ranges[2 * a + 1])) ++n_positive[in.gt_category[j] * A + a];
    }
  }

  // Kept detections grouped by category; scanning dt_order keeps (image, rank) order inside.
  std::vector<int64_t> cat_start(static_cast<size_t>(K + 1), 0);
  for (int64_t p = 0; p < in.n_dt; ++p) {
    if (dt_rank[p] < max_det) ++cat_start[in.dt_category[dt_order[p]] + 1];
  }
  for (int64_t k = 0; k < K; ++k) cat_start[k + 1] += cat_start[k];
  std::vector<int64_t> by_category(static_cast<size_t>(cat_start[K]));
  {
    std::vector<int64_t> next(cat_start.begin(), cat_start.end() - 1);
    for (int64_t p = 0; p < in.n_dt; ++p) {
      if (dt_rank[p] < max_det) by_category[next[in.dt_category[dt_order[p]]]++] = p;
    }
  }

  const int cat_threads = threads_for(K, 1) > 1 && cat_start[K] + in.n_gt > 4096 ? threads_for(K, 1) : 1;
#pragma omp parallel num_threads(cat_threads)
  {
    Accumulator acc;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < K; ++k) {
      int64_t* list = by_category.data() + cat_start[k];
      const int64_t n = cat_start[k + 1] - cat_start[k];
      const int64_t* order = dt_order.data();
      const double* sc = in.dt_score;
      std::stable_sort(list, list + n, [order, sc](int64_t x, int64_t y) { return sc[order[x]] > sc[order[y]]; });
      acc.score.resize(static_cast<size_t>(n));
      acc.rank.resize(static_cast<size_t>(n));
      acc.status.resize(static_cast<size_t>(A * T * n));
      for (int64_t e = 0; e < n; ++e) {
        const int64_t p = list[e];
        acc.score[e] = sc[order[p]];
        acc.rank[e] = dt_rank[p];
        const uint8_t* st = status.data() + p * A * T;
        for (int64_t j = 0; j < A * T; ++j) acc.status[j * n + e] = st[j];
      }
      for (int64_t m = 0; m < M; ++m) {
        const int64_t limit = in.max_dets[m];
        const bool all_in = limit >= max_det;
        acc.included.clear();
        if (!all_in) {
          for (int64_t e = 0; e < n; ++e) {
            if (acc.rank[e] < limit) acc.included.push_back(e);
          }
        }
        const int64_t nd = all_in ? n : static_cast<int64_t>(acc.included.size());
        const int64_t first = nd == 0 ? 0 : (all_in ? 0 : acc.included[0]);
        for (int64_t a = 0; a < A; ++a) {
          const int64_t npig = n_positive[k * A + a];
          if (npig == 0) continue;
          const double n_pos = static_cast<double>(npig);
          for (int64_t t = 0; t < T; ++t) {
            const uint8_t* st = acc.status.data() + (a * T + t) * n;
            double* prec = out.precision.data() + (((t * R) * K + k) * A + a) * M + m;
            double* scr = out.scores.data() + (((t * R) * K + k) * A + a) * M + m;
            const int64_t stride = K * A * M;
            double rec;
            if (all_in) {
              rec = accumulate_one(st, [](int64_t i) { return i; }, nd, first, n_pos, acc.score.data(),
                                   in.recall_thresholds, R, acc, prec, scr, stride);
            } else {
              const int64_t* inc = acc.included.data();
              rec = accumulate_one(st, [inc](int64_t i) { return inc[i]; }, nd, first, n_pos, acc.score.data(),
                                   in.recall_thresholds, R, acc, prec, scr, stride);
            }
            out.recall[((t * K + k) * A + a) * M + m] = rec;
          }
        }
      }
    }
  }
}

}  // namespace curata
