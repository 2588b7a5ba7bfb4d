// Greedy matching of predictions to ground truth with the precedence rules of pycocotools'
// COCOeval.evaluateImg (one IoU threshold, no area range, no detection cap).
//
// Per (image, class): predictions in descending score order (stable, like its mergesort); GT in
// input order with every crowd GT after every non-crowd one (its mergesort by ignore flag). Each
// prediction takes the GT chosen by curata::greedy_match (greedy_match.hpp, the step shared with
// coco_eval) with the bar starting at min(iou_threshold, 1 - 1e-10); crowd GT are the ignored
// ones: their overlap is intersection / prediction area and they stay available. A prediction
// whose match is a crowd GT is ignored (neither TP nor FP). Overlaps are computed in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "curata/box_math.hpp"
#include "curata/boxes.hpp"
#include "curata/ensemble.hpp"
#include "curata/greedy_match.hpp"
#include "curata/parallel.hpp"
#include "curata/sort.hpp"
#include "group_runs.hpp"

namespace curata {
namespace {

struct Key {
  int64_t image, cls;
  bool operator<(const Key& o) const { return image < o.image || (image == o.image && cls < o.cls); }
  bool operator==(const Key& o) const { return image == o.image && cls == o.cls; }
};

template <class T> inline void to_double(const T* b, double* out) {
  for (int k = 0; k < 4; ++k) out[k] = static_cast<double>(b[k]);
}

template <class T>
void match_group(const T* pred_boxes, const int32_t* preds, int64_t n_preds, const T* gt_boxes, const int32_t* gts,
                 int64_t n_gts, const uint8_t* crowd, double bar0, int64_t* pred_gt, double* pred_overlap,
                 uint8_t* pred_crowd, uint8_t* gt_taken, std::vector<int32_t>& gt_order,
                 std::vector<double>& gt_coords) {
  // GT in evaluation order: non-crowd first, then crowd, each in input order.
  gt_order.clear();
  for (int64_t k = 0; k < n_gts; ++k)
    if (!(crowd && crowd[gts[k]])) gt_order.push_back(gts[k]);
  const int64_t n_regular = static_cast<int64_t>(gt_order.size());
  for (int64_t k = 0; k < n_gts; ++k)
    if (crowd && crowd[gts[k]]) gt_order.push_back(gts[k]);
  gt_coords.resize(static_cast<size_t>(5 * n_gts));
  for (int64_t k = 0; k < n_gts; ++k) {
    double* g = gt_coords.data() + 5 * k;
    to_double(gt_boxes + 4 * static_cast<int64_t>(gt_order[k]), g);
    g[4] = box_area(g[0], g[1], g[2], g[3]);
  }
  for (int64_t p = 0; p < n_preds; ++p) {
    const int32_t d = preds[p];
    double b[4];
    to_double(pred_boxes + 4 * static_cast<int64_t>(d), b);
    const double d_area = box_area(b[0], b[1], b[2], b[3]);
    // Regular GT: IoU, skipped once matched. Crowd GT (the ignored part): intersection over the
    // prediction's area, never skipped.
    double bar;
    const int64_t m = greedy_match(
        n_regular, n_gts, bar0, [&](int64_t k, bool crowd) { return !crowd && gt_taken[gt_order[k]]; },
        [&](int64_t k, bool crowd) {
          const double* c = gt_coords.data() + 5 * k;
          const double inter = box_intersection(b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3]);
          return crowd ? ioa_from_parts(inter, d_area) : iou_from_parts(inter, d_area, c[4]);
        },
        &bar);
    const bool is_crowd = m >= n_regular;
    if (m < 0) continue;
    const int32_t g = gt_order[m];
    pred_gt[d] = g;
    pred_overlap[d] = bar;
    pred_crowd[d] = is_crowd;
    if (!is_crowd) gt_taken[g] = 1;
  }
}

}  // namespace

template <class T>
MatchResult match(const T* pred_boxes, const T* pred_scores, int64_t n_pred, const T* gt_boxes, int64_t n_gt,
                  const MatchInput& in, double iou_threshold) {
  if (n_pred > std::numeric_limits<int32_t>::max() || n_gt > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("match supports at most 2^31 - 1 predictions and ground truth boxes");
  if (!(iou_threshold >= 0.0 && iou_threshold <= 1.0))
    throw std::invalid_argument("iou_threshold must be in [0, 1], got " + std::to_string(iou_threshold));
  check_boxes(pred_boxes, n_pred, "pred_boxes");
  check_boxes(gt_boxes, n_gt, "gt_boxes");
  for (int64_t i = 0; i < n_pred; ++i) {
    if (std::isnan(pred_scores[i]))
      throw std::invalid_argument("pred_scores must not be NaN, got pred_scores[" + std::to_string(i) + "] = nan");
  }

  // Predictions: descending score, then grouped by class and image (stable, so each group stays
  // in score order). GT: input order grouped the same way.
  std::vector<int32_t> by_score(static_cast<size_t>(n_pred));
  for (int64_t i = 0; i < n_pred; ++i) by_score[i] = static_cast<int32_t>(i);
  sort_by_score_desc(pred_scores, by_score);
  std::vector<int32_t> preds = by_score;
  if (in.pred_classes) stable_group_by(in.pred_classes, preds);
  if (in.pred_image_ids) stable_group_by(in.pred_image_ids, preds);
  std::vector<int32_t> gts(static_cast<size_t>(n_gt));
  for (int64_t i = 0; i < n_gt; ++i) gts[i] = static_cast<int32_t>(i);
  if (in.gt_classes) stable_group_by(in.gt_classes, gts);
  if (in.gt_image_ids) stable_group_by(in.gt_image_ids, gts);
  const std::vector<int64_t> pred_starts = detail::run_starts(preds, in.pred_image_ids, in.pred_classes);
  const std::vector<int64_t> gt_starts = detail::run_starts(gts, in.gt_image_ids, in.gt_classes);
  auto pred_key = [&](int32_t i) {
    return Key{in.pred_image_ids ? in.pred_image_ids[i] : 0, in.pred_classes ? in.pred_classes[i] : 0};
  };
  auto gt_key = [&](int32_t i) {
    return Key{in.gt_image_ids ? in.gt_image_ids[i] : 0, in.gt_classes ? in.gt_classes[i] : 0};
  };

  // Pair every prediction group with the GT group of the same (image, class), if any.
  struct Pair { int64_t pred_group, gt_group; };
  std::vector<Pair> pairs;
  const int64_t n_pred_groups = static_cast<int64_t>(pred_starts.size()) - 1;
  const int64_t n_gt_groups = static_cast<int64_t>(gt_starts.size()) - 1;
  for (int64_t a = 0, b = 0; a < n_pred_groups && b < n_gt_groups;) {
    const Key ka = pred_key(preds[pred_starts[a]]), kb = gt_key(gts[gt_starts[b]]);
    if (ka == kb) pairs.push_back({a++, b++});
    else if (ka < kb) ++a;
    else ++b;
  }
  // Largest pairs first for the dynamic schedule.
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Pair& x, const Pair& y) {
    auto work = [&](const Pair& p) {
      return (pred_starts[p.pred_group + 1] - pred_starts[p.pred_group]) *
             (gt_starts[p.gt_group + 1] - gt_starts[p.gt_group]);
    };
    return work(x) > work(y);
  });

  std::vector<int64_t> pred_gt(static_cast<size_t>(n_pred), -1);
  std::vector<double> pred_overlap(static_cast<size_t>(n_pred), 0.0);
  std::vector<uint8_t> pred_crowd(static_cast<size_t>(n_pred), 0), gt_taken(static_cast<size_t>(n_gt), 0);
  const double bar0 = std::min(iou_threshold, 1.0 - 1e-10);
  const int64_t n_pairs = static_cast<int64_t>(pairs.size());
  const int threads = n_pairs > 1 ? threads_for(n_pred + n_gt, 4096) : 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<int32_t> gt_order;
    std::vector<double> gt_coords;
#pragma omp for schedule(dynamic, 1)
    for (int64_t q = 0; q < n_pairs; ++q) {
      const Pair& p = pairs[q];
      match_group(pred_boxes, preds.data() + pred_starts[p.pred_group],
                  pred_starts[p.pred_group + 1] - pred_starts[p.pred_group], gt_boxes,
                  gts.data() + gt_starts[p.gt_group], gt_starts[p.gt_group + 1] - gt_starts[p.gt_group], in.gt_crowd,
                  bar0, pred_gt.data(), pred_overlap.data(), pred_crowd.data(), gt_taken.data(), gt_order, gt_coords);
    }
  }

  MatchResult r;
  for (const int32_t d : by_score) {
    if (pred_gt[d] < 0) continue;
    if (pred_crowd[d]) {
      r.ignored_pred.push_back(d);
      r.ignored_gt.push_back(pred_gt[d]);
      r.ignored_ioa.push_back(pred_overlap[d]);
    } else {
      r.pred_index.push_back(d);
      r.gt_index.push_back(pred_gt[d]);
      r.iou.push_back(pred_overlap[d]);
    }
  }
  for (int64_t d = 0; d < n_pred; ++d)
    if (pred_gt[d] < 0) r.unmatched_pred.push_back(d);
  for (int64_t g = 0; g < n_gt; ++g)
    if (!gt_taken[g] && !(in.gt_crowd && in.gt_crowd[g])) r.unmatched_gt.push_back(g);
  return r;
}

template MatchResult match<float>(const float*, const float*, int64_t, const float*, int64_t, const MatchInput&, double);
template MatchResult match<double>(const double*, const double*, int64_t, const double*, int64_t, const MatchInput&,
                                   double);

}  // namespace curata
