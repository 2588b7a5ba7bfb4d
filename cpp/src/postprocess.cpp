// YOLO-head post-processing: candidates per image (in parallel), then one grouped NMS call over
// every (image, class) of the batch.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "curata/boxes.hpp"
#include "curata/parallel.hpp"
#include "curata/simd.hpp"
#include "curata/sort.hpp"

namespace curata {
namespace {

template <class T> struct Candidates {
  std::vector<T> boxes;  // xyxy, 4 per candidate
  std::vector<T> scores;
  std::vector<int64_t> classes;
  std::vector<int64_t> anchors;

  void add(const T* cxcywh, T score, int64_t cls, int64_t anchor) {
    T xyxy[4] = {};
    to_xyxy(BoxFormat::cxcywh, cxcywh, xyxy);
    boxes.insert(boxes.end(), xyxy, xyxy + 4);
    scores.push_back(score);
    classes.push_back(cls);
    anchors.push_back(anchor);
  }
  int64_t size() const { return static_cast<int64_t>(scores.size()); }
};

// best[a] = max over classes of rows[c * n_anchors + a]; NaN if any class score is NaN. Classes are
// taken four per pass over `best` (one load and store of best[a] per four rows instead of per row:
// with one row per pass, best, 33 KB at 8400 anchors, fell out of L1 behind the streaming rows and
// the pass ran at 20 GB/s on one core instead of 34); per anchor the classes are still compared in
// increasing order, so the result is the same.
template <class T> CURATA_ALWAYS_INLINE T max_or_nan(T x, T b) { return (x > b || x != x) ? x : b; }

template <class T>
CURATA_ALWAYS_INLINE void class_max_impl(const T* rows, int64_t n_classes, int64_t n_anchors, T* best) {
  constexpr int64_t kRowsPerPass = 4;
  for (int64_t a = 0; a < n_anchors; ++a) best[a] = rows[a];
  int64_t c = 1;
  for (; c + kRowsPerPass <= n_classes; c += kRowsPerPass) {
    const T* r0 = rows + c * n_anchors;
    const T* r1 = r0 + n_anchors;
    const T* r2 = r1 + n_anchors;
    const T* r3 = r2 + n_anchors;
    for (int64_t a = 0; a < n_anchors; ++a)
      best[a] = max_or_nan(r3[a], max_or_nan(r2[a], max_or_nan(r1[a], max_or_nan(r0[a], best[a]))));
  }
  for (; c < n_classes; ++c) {
    const T* row = rows + c * n_anchors;
    for (int64_t a = 0; a < n_anchors; ++a) best[a] = max_or_nan(row[a], best[a]);
  }
}
CURATA_SIMD_CLONES void class_max(const float* rows, int64_t c, int64_t n, float* best) { class_max_impl(rows, c, n, best); }
CURATA_SIMD_CLONES void class_max(const double* rows, int64_t c, int64_t n, double* best) { class_max_impl(rows, c, n, best); }

// Candidates of one image, in Ultralytics' order: anchors ascending, and for multi_label the
// classes of each anchor ascending. The confidence test `score > conf` is made in the compute dtype
// T with the threshold rounded to T, as torch compares a tensor with a Python float (so float32
// scores equal to float32(0.1) are not candidates at conf 0.1, exactly as in Ultralytics).
// Returns false (and adds nothing) when a class score is NaN: candidacy is undefined then, and the
// caller raises.
template <class T>
bool image_candidates(const T* pred, int64_t n_classes, int64_t n_anchors, const PostprocessOptions& o,
                      const std::vector<uint8_t>& allowed, Candidates<T>& out) {
  const T* cls0 = pred + 4 * n_anchors;  // channel-first: row c holds class c for every anchor
  const T conf = static_cast<T>(o.conf_threshold);
  auto allowed_class = [&](int64_t c) { return allowed.empty() || allowed[static_cast<size_t>(c)]; };
  auto box_of = [&](int64_t a, T* box) {
    for (int k = 0; k < 4; ++k) box[k] = pred[k * n_anchors + a];
  };
  // Best score per anchor in one contiguous pass (vectorised); it is NaN when any class score of
  // the anchor is, so one scan of `best` finds every NaN. Classes are looked up only for the few
  // anchors that pass the threshold; the first maximum wins ties (torch.max).
  std::vector<T> best(static_cast<size_t>(n_anchors));
  class_max(cls0, n_classes, n_anchors, best.data());
  int has_nan = 0;
  for (int64_t a = 0; a < n_anchors; ++a) has_nan |= best[a] != best[a];
  if (has_nan) return false;
  const bool multi_label = o.multi_label && n_classes > 1;
  for (int64_t a = 0; a < n_anchors; ++a) {
    if (!(best[a] > conf)) continue;
    T box[4];
    box_of(a, box);
    if (multi_label) {
      for (int64_t c = 0; c < n_classes; ++c) {
        const T s = cls0[c * n_anchors + a];
        if (s > conf && allowed_class(c)) out.add(box, s, c, a);
      }
      continue;
    }
    int64_t best_class = 0;
    while (cls0[best_class * n_anchors + a] != best[a]) ++best_class;
    if (allowed_class(best_class)) out.add(box, best[a], best_class, a);
  }
  return true;
}

// Throws for the first NaN class score of image b (called only after a NaN was seen).
template <class T>
[[noreturn]] void throw_nan_score(const T* pred, int64_t b, int64_t n_classes, int64_t n_anchors) {
  for (int64_t c = 0; c < n_classes; ++c)
    for (int64_t a = 0; a < n_anchors; ++a)
      if (std::isnan(pred[(4 + c) * n_anchors + a]))
        throw std::invalid_argument("pred class scores must not be NaN, got NaN at pred[" + std::to_string(b) +
                                    ", " + std::to_string(4 + c) + ", " + std::to_string(a) + "]");
  throw std::invalid_argument("pred class scores must not be NaN, got NaN in image " + std::to_string(b));
}

// Keeps the max_nms best-scoring candidates (ties to the earlier candidate), in score order.
// Returns false (keeping nothing) when the image has more candidates than the int32 sort order
// can index (multi_label with n_anchors × n_classes beyond 2^31 - 1): the caller raises.
template <class T> bool keep_top(Candidates<T>& c, int64_t max_nms) {
  if (c.size() <= max_nms) return true;
  if (c.size() > std::numeric_limits<int32_t>::max()) {
    c = Candidates<T>();
    return false;
  }
  std::vector<int32_t> order(static_cast<size_t>(c.size()));
  for (int64_t i = 0; i < c.size(); ++i) order[i] = static_cast<int32_t>(i);
  sort_by_score_desc(c.scores.data(), order);
  order.resize(static_cast<size_t>(max_nms));
  Candidates<T> top;
  for (int32_t i : order) {
    top.boxes.insert(top.boxes.end(), c.boxes.begin() + 4 * i, c.boxes.begin() + 4 * i + 4);
    top.scores.push_back(c.scores[i]);
    top.classes.push_back(c.classes[i]);
    top.anchors.push_back(c.anchors[i]);
  }
  c = std::move(top);
  return true;
}

}  // namespace

template <class T>
void postprocess(const T* pred, int64_t batch, int64_t n_channels, int64_t n_anchors, const PostprocessOptions& o,
                 std::vector<T>& rows, std::vector<int64_t>& image_counts, std::vector<int64_t>& anchors) {
  const int64_t n_classes = n_channels - 4;
  if (n_classes < 1)
    throw std::invalid_argument("pred must have shape (batch, 4 + n_classes, n_anchors) with n_classes >= 1, got " +
                                std::to_string(n_channels) + " channels");
  std::vector<uint8_t> allowed;
  if (o.classes) {
    allowed.assign(static_cast<size_t>(n_classes), 0);
    for (int64_t k = 0; k < o.n_allowed_classes; ++k)
      if (o.classes[k] >= 0 && o.classes[k] < n_classes) allowed[static_cast<size_t>(o.classes[k])] = 1;
  }

  std::vector<Candidates<T>> per_image(static_cast<size_t>(batch));
  std::vector<uint8_t> image_ok(static_cast<size_t>(batch), 1);
  // Parallel over images only: a thread per image at most, and only with ~1 ms of scanning each,
  // since on a shared machine every extra thread in a region risks a scheduler-slice stall.
  const int threads = static_cast<int>(std::min<int64_t>(threads_for(batch * n_channels * n_anchors, 1 << 20), batch));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t b = 0; b < batch; ++b) {
    image_ok[b] = image_candidates(pred + b * n_channels * n_anchors, n_classes, n_anchors, o, allowed, per_image[b]);
    if (image_ok[b] && !keep_top(per_image[b], o.max_nms)) image_ok[b] = 2;
  }
  // Exceptions may not leave an OpenMP region: report the first bad image here.
  for (int64_t b = 0; b < batch; ++b) {
    if (image_ok[b] == 2)
      throw std::invalid_argument("postprocess supports at most 2^31 - 1 candidates per image, got more in image " +
                                  std::to_string(b) + " (multi_label over " + std::to_string(n_anchors) +
                                  " anchors x " + std::to_string(n_classes) + " classes)");
    if (!image_ok[b]) throw_nan_score(pred + b * n_channels * n_anchors, b, n_classes, n_anchors);
  }

  Candidates<T> all;
  std::vector<int64_t> image_of;
  for (int64_t b = 0; b < batch; ++b) {
    Candidates<T>& c = per_image[b];
    all.boxes.insert(all.boxes.end(), c.boxes.begin(), c.boxes.end());
    all.scores.insert(all.scores.end(), c.scores.begin(), c.scores.end());
    all.classes.insert(all.classes.end(), c.classes.begin(), c.classes.end());
    all.anchors.insert(all.anchors.end(), c.anchors.begin(), c.anchors.end());
    image_of.insert(image_of.end(), static_cast<size_t>(c.size()), b);
    c = Candidates<T>();
  }
  check_boxes(all.boxes.data(), all.size(), "pred (decoded candidate boxes)");

  NmsGroups groups;
  groups.classes = o.agnostic ? nullptr : all.classes.data();
  groups.image_ids = image_of.data();
  NmsOptions nms_options;
  nms_options.iou_threshold = o.iou_threshold;
  nms_options.max_det = o.max_det;
  const NmsResult kept = nms(all.boxes.data(), all.scores.data(), all.size(), groups, nms_options);

  image_counts.assign(static_cast<size_t>(batch), 0);
  for (size_t k = 0; k < kept.image_ids.size(); ++k) image_counts[kept.image_ids[k]] = kept.image_counts[k];
  rows.resize(kept.keep.size() * 6);
  anchors.resize(kept.keep.size());
  for (size_t r = 0; r < kept.keep.size(); ++r) {
    const int64_t i = kept.keep[r];
    T* row = rows.data() + 6 * r;
    for (int k = 0; k < 4; ++k) row[k] = all.boxes[4 * i + k];
    row[4] = all.scores[i];
    row[5] = static_cast<T>(all.classes[i]);
    anchors[r] = all.anchors[i];
  }
}

template void postprocess<float>(const float*, int64_t, int64_t, int64_t, const PostprocessOptions&,
                                 std::vector<float>&, std::vector<int64_t>&, std::vector<int64_t>&);
template void postprocess<double>(const double*, int64_t, int64_t, int64_t, const PostprocessOptions&,
                                  std::vector<double>&, std::vector<int64_t>&, std::vector<int64_t>&);

}  // namespace curata
