// Ensembling and evaluation primitives of the core library: weighted boxes fusion (WBF),
// soft-NMS and greedy COCO-style matching of predictions to ground truth.
//
// Plain C++17: pointers in, results out. Every entry point validates its input and throws
// std::invalid_argument naming the argument; work is parallel over independent groups
// ((image, label) for WBF and soft-NMS, (image, class) for matching) through threads_for().
#pragma once

#include <cstdint>
#include <vector>

namespace curata {

// ------------------------------------------------------------------------------------ WBF

// How the fused score of a cluster is rescaled (the four rules of ensemble-boxes).
enum class WbfConfType : int { avg = 0, max = 1, box_and_model_avg = 2, absent_model_aware_avg = 3 };

struct WbfOptions {
  double iou_threshold = 0.55;      // a box joins the best fused box when their IoU is > this
  double skip_box_threshold = 0.0;  // boxes with raw score < this are ignored
  WbfConfType conf_type = WbfConfType::avg;
  bool allows_overflow = false;     // avg only: scale by #members instead of min(#models, #members)
};

// The boxes of every model concatenated: model m owns rows [model_offsets[m], model_offsets[m+1]).
// image_ids may be null (one image). weights has n_models entries (finite, > 0).
template <class T> struct WbfInput {
  const T* boxes = nullptr;   // (n, 4) xyxy, expected in [0, 1]
  const T* scores = nullptr;  // (n,)
  const int64_t* labels = nullptr;
  const int64_t* image_ids = nullptr;
  const int64_t* model_offsets = nullptr;  // n_models + 1 entries, non-decreasing, first 0
  const double* weights = nullptr;
  // Optional, n_models entries: model m's skip threshold, already rounded to the dtype its scores
  // came in (float16/float32 scores are compared in that dtype, as ensemble-boxes does); null =
  // options.skip_box_threshold for every model.
  const double* skip_thresholds = nullptr;
  int64_t n_models = 0;
};

struct WbfResult {
  std::vector<double> boxes;       // (k, 4) fused xyxy
  std::vector<double> scores;      // (k,)
  std::vector<int64_t> labels;     // (k,)
  std::vector<int64_t> image_ids;  // (k,) image of each fused box (0 without image ids)
  int64_t n_clipped = 0;           // boxes with a coordinate outside [0, 1] (clipped)
  int64_t n_swapped = 0;           // boxes with x2 < x1 or y2 < y1 (coordinates swapped)
  int64_t n_zero_area = 0;         // boxes of zero area after clipping (dropped)
};

// Weighted boxes fusion with the semantics of ensemble-boxes' weighted_boxes_fusion, run
// independently per image (and per label within an image). See cpp/src/wbf.cpp for the rules.
// Results are grouped by ascending image id; within an image by descending fused score, ties by
// ascending label, then by cluster creation order.
// Work: O(n log n + sum over (image, label) groups of n_g * clusters_g); memory O(n).
template <class T> WbfResult wbf(const WbfInput<T>& input, const WbfOptions& options);

// ------------------------------------------------------------------------------- soft-NMS

enum class SoftNmsMethod : int { linear = 0, gaussian = 1 };

struct SoftNmsOptions {
  double iou_threshold = 0.3;  // linear: decay only boxes with IoU > this
  double sigma = 0.5;          // gaussian: weight exp(-iou^2 / sigma), sigma > 0
  SoftNmsMethod method = SoftNmsMethod::linear;
  double score_threshold = 0.001;  // boxes whose final score is <= this are dropped
};

template <class T> struct SoftNmsResult {
  std::vector<int64_t> keep;       // indices into the input
  std::vector<T> scores;           // decayed score of each kept box
  std::vector<int64_t> image_ids;  // distinct image ids of the input, ascending
  std::vector<int64_t> image_counts;
};

// Soft-NMS (Bodla et al. 2017) independently per (image, class) group. classes and image_ids
// may be null. Per image, kept boxes are ordered by descending decayed score, ties by lower index.
// IoU is computed in double whatever B is; decayed scores are stored in T (the scores' dtype).
// Work: O(n log n + sum over groups of n_g * k_g) for k_g selections; memory O(n).
template <class B, class T>
SoftNmsResult<T> soft_nms(const B* boxes, const T* scores, int64_t n, const int64_t* classes,
                          const int64_t* image_ids, const SoftNmsOptions& options);

// ---------------------------------------------------------------------------------- match

// Greedy matching of predictions to ground truth with the rules of pycocotools' evaluateImg:
// predictions in descending score order (stable); each takes, among the unmatched non-crowd GT of
// its class (and image), the one with the highest IoU >= min(iou_threshold, 1 - 1e-10), equal IoU
// going to the later GT; only when no non-crowd GT qualifies, the best crowd GT with
// intersection / prediction area >= the threshold (crowd GT can be matched any number of times),
// which makes the prediction "ignored" rather than a false positive.
struct MatchInput {
  const int64_t* pred_classes = nullptr;     // (n_pred,)
  const int64_t* gt_classes = nullptr;       // (n_gt,)
  const uint8_t* gt_crowd = nullptr;         // (n_gt,) or null
  const int64_t* pred_image_ids = nullptr;   // (n_pred,) or null (one image)
  const int64_t* gt_image_ids = nullptr;     // (n_gt,) or null
};

struct MatchResult {
  // True positives, in the order the predictions were matched (descending score).
  std::vector<int64_t> pred_index, gt_index;
  std::vector<double> iou;
  // Predictions matched only to crowd GT (ignored), with the crowd GT and its intersection over
  // prediction area.
  std::vector<int64_t> ignored_pred, ignored_gt;
  std::vector<double> ignored_ioa;
  std::vector<int64_t> unmatched_pred;  // false positives, ascending index
  std::vector<int64_t> unmatched_gt;    // non-crowd GT left unmatched, ascending index
};

template <class T>
MatchResult match(const T* pred_boxes, const T* pred_scores, int64_t n_pred, const T* gt_boxes, int64_t n_gt,
                  const MatchInput& input, double iou_threshold);

}  // namespace curata
