// COCO-style bounding-box evaluation (the AP/AR of the COCO detection benchmark).
//
// The rules are those of pycocotools' COCOeval for iouType="bbox", reproduced to the last bit:
//  * IoU of xywh boxes in float64: iw = min(dx + dw, gx + gw) - max(dx, gx) (0 when <= 0), the
//    same for the height, inter = iw * ih, union = (d_area + g_area) - inter, or the detection
//    area alone when the ground truth is a crowd region.
//  * Per (image, category): detections ordered by descending score (ties keep input order) and
//    cut to the largest max_det; per area range, ground truth that is a crowd or whose `area`
//    lies outside [lo, hi] is "ignored" and moved behind the others (stable); every detection in
//    turn takes the best still-free ground truth with IoU >= min(t, 1 - 1e-10), preferring
//    non-ignored ones (crowd regions stay free for everyone). A detection matched to an ignored
//    ground truth is ignored, an unmatched detection whose w*h lies outside the range too.
//  * Per (category, area, max_det): the first max_det detections of every image, merged by a
//    stable descending score sort (image order, then rank, break ties), cumulative TP/FP,
//    precision tp / ((fp + tp) + eps), recall tp / n_positive, precision made non-increasing
//    from the right, then read at each recall threshold with a left binary search.
// Precision/recall/scores stay -1 where a (category, area) has no non-ignored ground truth.
#pragma once

#include "curata/box_math.hpp"

#include <cstdint>
#include <vector>

namespace curata {

// Flat inputs. Image and category fields are dense indices (0 <= image < n_images, 0 <= category
// < n_categories) in the order the evaluation reports them (pycocotools: ascending ids).
// Arrays are read-only and must outlive the call.
struct CocoEvalInput {
  // Ground truth, in file order (the order decides which of two equal matches wins).
  int64_t n_gt = 0;
  const int64_t* gt_image = nullptr;
  const int64_t* gt_category = nullptr;
  const double* gt_box = nullptr;      // (n_gt, 4) x, y, w, h
  const double* gt_area = nullptr;     // the annotation's `area` field (used for area ranges)
  const uint8_t* gt_crowd = nullptr;   // 1 = crowd region (always ignored, matchable many times)
  // 1 where the annotation id is 0: pycocotools records a match as the matched annotation's id,
  // so a match to id 0 is indistinguishable from no match. Reproduced, not endorsed.
  const uint8_t* gt_id_zero = nullptr;

  // Detections, in file order (the order breaks score ties).
  int64_t n_dt = 0;
  const int64_t* dt_image = nullptr;
  const int64_t* dt_category = nullptr;
  const double* dt_box = nullptr;  // (n_dt, 4) x, y, w, h; area for ranges = w * h
  const double* dt_score = nullptr;

  int64_t n_images = 0;
  int64_t n_categories = 0;

  const double* iou_thresholds = nullptr;  // (T,)
  int64_t n_iou = 0;
  const double* recall_thresholds = nullptr;  // (R,)
  int64_t n_recall = 0;
  const double* area_ranges = nullptr;  // (A, 2) inclusive [lo, hi]
  int64_t n_areas = 0;
  const int64_t* max_dets = nullptr;  // (M,) ascending, >= 1
  int64_t n_max_dets = 0;
};

// Results in pycocotools' layouts (C order): precision and scores (T, R, K, A, M), recall
// (T, K, A, M).
struct CocoEvalOutput {
  std::vector<double> precision;
  std::vector<double> recall;
  std::vector<double> scores;
};

// Runs the evaluation. Parallel over images (matching) and over categories (accumulation).
// Throws std::invalid_argument for out-of-range indices or inconsistent sizes.
// Peak memory: O(n_gt + n_dt * (A * T + 16)) bytes, plus per thread the largest category's
// n_k * (A * T + 16), plus the outputs.
void coco_eval(const CocoEvalInput& in, CocoEvalOutput& out);


}  // namespace curata
