// Greedy non-maximum suppression over (image, class) groups.
//
// Plan: one stable sort of all candidate boxes by descending score, then stable grouping by class
// and by image, so every (image, class) group is a contiguous, score-ordered run. Groups run in
// parallel. Within a group, each candidate is tested only against the boxes already kept (held as
// a zero-padded structure of arrays and scanned in fixed chunks of 16 that the compiler
// vectorises), which decides exactly what torchvision's "suppress every later box that overlaps a
// kept box" loop decides, with far less work when few boxes survive. Finally each image's kept
// boxes are merged across classes by their global score rank.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "curata/boxes.hpp"
#include "curata/parallel.hpp"
#include "curata/sort.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// One copy of the suppression loop per vector width, picked at load time for the running CPU.
#define CURATA_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CURATA_SIMD_CLONES
#endif

namespace curata {
namespace {

constexpr int64_t kChunk = 16;

template <class T> struct KeptBoxes {
  std::vector<T> x1, y1, x2, y2, area;
  int64_t size = 0;

  void reset(int64_t capacity) {
    const int64_t padded = (capacity + kChunk - 1) / kChunk * kChunk;
    for (auto* v : {&x1, &y1, &x2, &y2, &area}) v->assign(static_cast<size_t>(padded), T(0));
    size = 0;
  }
};

// Runs greedy NMS over one score-ordered group. `positions` are indices into `boxes`; kept[p] is
// set for each kept position p. Returns the number kept (at most max_keep).
// Padding entries are empty boxes at the origin: their intersection with anything is 0, so they
// never suppress.
template <class T>
__attribute__((always_inline)) inline int64_t greedy_group(const T* boxes, const int32_t* positions,
                                                           int64_t len, T threshold, int64_t max_keep,
                                                           uint8_t* kept, KeptBoxes<T>& k) {
  k.reset(std::min(len, max_keep));
  T* kx1 = k.x1.data(); T* ky1 = k.y1.data(); T* kx2 = k.x2.data(); T* ky2 = k.y2.data();
  T* karea = k.area.data();
  int64_t n_kept = 0;
  for (int64_t p = 0; p < len && n_kept < max_keep; ++p) {
    const T* b = boxes + 4 * static_cast<int64_t>(positions[p]);
    const T cx1 = b[0], cy1 = b[1], cx2 = b[2], cy2 = b[3];
    const T carea = box_area(cx1, cy1, cx2, cy2);
    bool suppressed = false;
    for (int64_t c0 = 0; c0 < n_kept && !suppressed; c0 += kChunk) {
      int hit = 0;
      for (int64_t j = c0; j < c0 + kChunk; ++j) {
        const T inter = box_intersection(kx1[j], ky1[j], kx2[j], ky2[j], cx1, cy1, cx2, cy2);
        hit |= iou_from_parts(inter, karea[j], carea) > threshold;
      }
      suppressed = hit != 0;
    }
    if (suppressed) continue;
    kx1[n_kept] = cx1; ky1[n_kept] = cy1; kx2[n_kept] = cx2; ky2[n_kept] = cy2;
    karea[n_kept] = carea;
    ++n_kept;
    kept[p] = 1;
  }
  return n_kept;
}

CURATA_SIMD_CLONES int64_t greedy_group_f32(const float* boxes, const int32_t* positions, int64_t len,
                                            float threshold, int64_t max_keep, uint8_t* kept,
                                            KeptBoxes<float>& k) {
  return greedy_group(boxes, positions, len, threshold, max_keep, kept, k);
}

CURATA_SIMD_CLONES int64_t greedy_group_f64(const double* boxes, const int32_t* positions, int64_t len,
                                            double threshold, int64_t max_keep, uint8_t* kept,
                                            KeptBoxes<double>& k) {
  return greedy_group(boxes, positions, len, threshold, max_keep, kept, k);
}

inline int64_t run_group(const float* b, const int32_t* p, int64_t len, float t, int64_t mk, uint8_t* kept,
                         KeptBoxes<float>& k) {
  return greedy_group_f32(b, p, len, t, mk, kept, k);
}
inline int64_t run_group(const double* b, const int32_t* p, int64_t len, double t, int64_t mk, uint8_t* kept,
                         KeptBoxes<double>& k) {
  return greedy_group_f64(b, p, len, t, mk, kept, k);
}

// Image of box i under the grouping rules of NmsGroups.
inline int64_t image_of(const NmsGroups& g, int64_t i) {
  if (g.image_ids) return g.image_ids[i];
  if (g.per_image > 0) return i / g.per_image;
  return 0;
}

}  // namespace

template <class T>
NmsResult nms(const T* boxes, const T* scores, int64_t n, const NmsGroups& groups, const NmsOptions& options) {
  if (n > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("nms supports at most 2^31 - 1 boxes, got " + std::to_string(n));
  if (!(options.iou_threshold >= 0.0 && options.iou_threshold <= 1.0))
    throw std::invalid_argument("iou_threshold must be in [0, 1], got " + std::to_string(options.iou_threshold));
  check_boxes(boxes, n, "boxes", groups.valid);
  for (int64_t i = 0; i < n; ++i) {
    if ((!groups.valid || groups.valid[i]) && std::isnan(scores[i]))
      throw std::invalid_argument("scores must not be NaN, got scores[" + std::to_string(i) + "] = nan");
  }

  // Candidates: valid boxes above the score threshold.
  std::vector<int32_t> order;
  order.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (groups.valid && !groups.valid[i]) continue;
    if (options.use_score_threshold && !(static_cast<double>(scores[i]) > options.score_threshold)) continue;
    order.push_back(static_cast<int32_t>(i));
  }
  sort_by_score_desc(scores, order);
  const int64_t n_cand = static_cast<int64_t>(order.size());

  // Global score rank, used to merge each image's classes back into score order.
  std::vector<int32_t> rank(static_cast<size_t>(n), 0);
  for (int64_t r = 0; r < n_cand; ++r) rank[order[r]] = static_cast<int32_t>(r);

  std::vector<int64_t> implicit_images;
  const int64_t* image_key = groups.image_ids;
  if (!image_key && groups.per_image > 0) {
    implicit_images.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) implicit_images[i] = i / groups.per_image;
    image_key = implicit_images.data();
  }
  if (groups.classes) stable_group_by(groups.classes, order);
  if (image_key) stable_group_by(image_key, order);

  // Contiguous (image, class) runs.
  std::vector<int64_t> group_start;
  for (int64_t r = 0; r < n_cand; ++r) {
    const int32_t i = order[r];
    if (r == 0) { group_start.push_back(0); continue; }
    const int32_t prev = order[r - 1];
    const bool new_image = image_key && image_key[i] != image_key[prev];
    const bool new_class = groups.classes && groups.classes[i] != groups.classes[prev];
    if (new_image || new_class) group_start.push_back(r);
  }
  group_start.push_back(n_cand);
  const int64_t n_groups = static_cast<int64_t>(group_start.size()) - 1;

  // Largest groups first so the dynamic schedule balances threads.
  std::vector<int64_t> group_order(static_cast<size_t>(std::max<int64_t>(n_groups, 0)));
  for (int64_t g = 0; g < n_groups; ++g) group_order[g] = g;
  std::stable_sort(group_order.begin(), group_order.end(), [&](int64_t a, int64_t b) {
    return group_start[a + 1] - group_start[a] > group_start[b + 1] - group_start[b];
  });

  const T threshold = threshold_in<T>(options.iou_threshold);
  const int64_t max_keep = options.max_det >= 0 ? options.max_det : std::numeric_limits<int64_t>::max();
  std::vector<uint8_t> kept(static_cast<size_t>(n_cand), 0);
  const int threads = n_groups > 1 ? threads_for(n_cand, 2048) : 1;
#pragma omp parallel num_threads(threads)
  {
    KeptBoxes<T> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t gi = 0; gi < n_groups; ++gi) {
      const int64_t g = group_order[gi];
      const int64_t start = group_start[g], len = group_start[g + 1] - start;
      run_group(boxes, order.data() + start, len, threshold, max_keep, kept.data() + start, scratch);
    }
  }

  // Per image: kept boxes of all its classes, back in global score order, capped at max_det.
  NmsResult result;
  result.keep.reserve(static_cast<size_t>(std::count(kept.begin(), kept.end(), uint8_t(1))));
  std::vector<int32_t> image_kept;
  int64_t r = 0;
  int64_t next_implicit_image = 0;
  auto emit_empty_implicit_images = [&](int64_t upto) {
    for (; next_implicit_image < upto; ++next_implicit_image) {
      result.image_ids.push_back(next_implicit_image);
      result.image_counts.push_back(0);
    }
  };
  while (r < n_cand) {
    const int64_t image = image_of(groups, order[r]);
    if (groups.per_image > 0 && !groups.image_ids) emit_empty_implicit_images(image);
    image_kept.clear();
    int64_t end = r;
    while (end < n_cand && image_of(groups, order[end]) == image) {
      if (kept[end]) image_kept.push_back(order[end]);
      ++end;
    }
    if (groups.classes) {
      std::sort(image_kept.begin(), image_kept.end(), [&](int32_t a, int32_t b) { return rank[a] < rank[b]; });
    }
    const int64_t count = std::min<int64_t>(static_cast<int64_t>(image_kept.size()), max_keep);
    result.keep.insert(result.keep.end(), image_kept.begin(), image_kept.begin() + count);
    result.image_ids.push_back(image);
    result.image_counts.push_back(count);
    if (groups.per_image > 0 && !groups.image_ids) next_implicit_image = image + 1;
    r = end;
  }
  if (groups.per_image > 0 && !groups.image_ids) emit_empty_implicit_images(n / groups.per_image);
  return result;
}

template NmsResult nms<float>(const float*, const float*, int64_t, const NmsGroups&, const NmsOptions&);
template NmsResult nms<double>(const double*, const double*, int64_t, const NmsGroups&, const NmsOptions&);

}  // namespace curata
