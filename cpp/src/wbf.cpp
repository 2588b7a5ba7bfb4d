// Weighted boxes fusion (Solovyev et al. 2021) with the semantics of ensemble-boxes 1.0.9.
//
// Rules (read from ensemble-boxes' weighted_boxes_fusion, reimplemented):
// 1. Boxes with raw score < skip_box_threshold (in the model's score dtype) are ignored. Each remaining box has x2 < x1 or
//    y2 < y1 swapped, every coordinate clipped to [0, 1], and is dropped when its area is then 0.
// 2. Its score becomes score * weight of its model.
// 3. Per (image, label), boxes are visited in descending weighted score (ties: lower model, then
//    lower row; ensemble-boxes' order among ties is unspecified). A box joins the fused box of
//    highest IoU (the first one on ties) when that IoU is > iou_threshold, else starts a cluster.
//    IoU is computed in double against the fused box as it is at that moment.
// 4. A cluster of one keeps its box, weighted score and model weight as they are (double). A
//    cluster of two or more has coordinates sum(s_i * c_i) / sum(s_i) where, as ensemble-boxes
//    does, the numerator is accumulated in float32 (each step rounded) and the quotient rounded to
//    float32; its score is float32(sum(s_i) / n) (conf_type max: float32(max s_i)) and its weight
//    float32(sum(w_i)). Replicating this rounding is what makes the cluster decisions identical.
//    When every member has score 0 (possible only with skip_box_threshold 0), ensemble-boxes
//    divides 0 by 0; curata uses the unweighted mean of the members' coordinates instead.
// 5. The cluster score is then rescaled by conf_type, in double:
//      avg:                    s * min(n_models, n) / sum(weights)  (allows_overflow: s * n / ...)
//      max:                    s / max(weights)
//      box_and_model_avg:      s * n / W * sum(weights of models present) / sum(weights)
//      absent_model_aware_avg: s * n / (W + sum(weights of models absent))
//    where W is the cluster weight of rule 4 and weight sums follow numpy's pairwise summation.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "curata/box_math.hpp"
#include "curata/ensemble.hpp"
#include "curata/parallel.hpp"
#include "curata/simd.hpp"
#include "curata/sort.hpp"
#include "group_runs.hpp"

namespace curata {
namespace {

// The summation order of numpy's float add.reduce on a contiguous array (pairwise, blocks of 8),
// so weight sums are the same double as ensemble-boxes' weights.sum().
double numpy_sum(const double* a, int64_t n) {
  if (n < 8) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

// A box that passed the prefilter.
struct Entry {
  double c[4];   // clipped xyxy
  double score;  // score * model weight
  int64_t model;
};

struct Cluster {
  double box[4];   // current fused coordinates (what the IoU is computed against)
  float acc[4];    // float32 running sum of score * coordinate
  double plain[4]; // plain sum of coordinates, for the all-zero-score fallback
  double conf = 0.0, weight_sum = 0.0, max_score = 0.0;
  double first_score = 0.0, first_weight = 0.0;
  int64_t count = 0;
};

// IoU of one box against every cluster of a group (SoA), and whether any is > threshold.
CURATA_ALWAYS_INLINE bool iou_row_impl(const double* x1, const double* y1, const double* x2, const double* y2,
                                       const double* area, int64_t m, const double* b, double b_area,
                                       double threshold, double* out) {
  int hit = 0;
  for (int64_t j = 0; j < m; ++j) {
    // Fused box first: ensemble-boxes' union is area_fused + area_new - inter.
    const double inter = box_intersection(x1[j], y1[j], x2[j], y2[j], b[0], b[1], b[2], b[3]);
    const double v = iou_from_parts(inter, area[j], b_area);
    out[j] = v;
    hit |= v > threshold;
  }
  return hit != 0;
}

CURATA_SIMD_CLONES bool iou_row_f64(const double* x1, const double* y1, const double* x2, const double* y2,
                                    const double* area, int64_t m, const double* b, double b_area,
                                    double threshold, double* out) {
  return iou_row_impl(x1, y1, x2, y2, area, m, b, b_area, threshold, out);
}

// Uniform grid over [0, 1]^2 holding each cluster in every cell its fused box touches, so that a
// box visits only the clusters it may overlap (a cluster it does not overlap has IoU 0, which is
// never > iou_threshold >= 0). The cell of x is floor(x * g) clamped to [0, g - 1]; that is
// monotone in x, so two boxes whose x ranges overlap share an x cell, and likewise for y. Each cell
// stores its clusters' boxes as a structure of arrays, so a query runs the vectorised IoU row on
// the cell directly, with no gather; a cluster's copies are rewritten when its fused box changes.
struct ClusterGrid {
  struct Cell {
    std::vector<double> x1, y1, x2, y2, area;
    std::vector<int32_t> id;
    void clear() {
      for (auto* v : {&x1, &y1, &x2, &y2, &area}) v->clear();
      id.clear();
    }
    size_t find(int32_t c) const { return static_cast<size_t>(std::find(id.begin(), id.end(), c) - id.begin()); }
    void set(size_t k, const double* b, double a) { x1[k] = b[0]; y1[k] = b[1]; x2[k] = b[2]; y2[k] = b[3]; area[k] = a; }
    void push(int32_t c, const double* b, double a) {
      x1.push_back(b[0]); y1.push_back(b[1]); x2.push_back(b[2]); y2.push_back(b[3]); area.push_back(a);
      id.push_back(c);
    }
    void erase(size_t k) {
      for (auto* v : {&x1, &y1, &x2, &y2, &area}) { (*v)[k] = v->back(); v->pop_back(); }
      id[k] = id.back();
      id.pop_back();
    }
  };
  int gx = 1, gy = 1;
  std::vector<Cell> cells;
  std::vector<std::array<int, 4>> rects;  // x0, x1, y0, y1 cell range of each cluster

  // !(t > 0) also sends NaN to cell 0: a fused box is NaN when its weighted sums overflow
  // (huge scores x weights; the caller rejects such results), and a NaN cast to int would index
  // the grid out of bounds.
  static int cell(double v, int g) {
    const double t = v * g;
    return !(t > 0.0) ? 0 : (t >= g ? g - 1 : static_cast<int>(t));
  }
  std::array<int, 4> rect(const double* b) const {
    return {cell(b[0], gx), cell(b[2], gx), cell(b[1], gy), cell(b[3], gy)};
  }
  Cell& at(int x, int y) { return cells[static_cast<size_t>(y) * gx + x]; }
  void reset(int nx, int ny) {
    gx = nx; gy = ny;
    cells.resize(static_cast<size_t>(gx) * gy);
    for (auto& c : cells) c.clear();
    rects.clear();
  }
  void add(const double* b, double a) {
    const int32_t c = static_cast<int32_t>(rects.size());
    rects.push_back(rect(b));
    const auto& r = rects.back();
    for (int y = r[2]; y <= r[3]; ++y)
      for (int x = r[0]; x <= r[1]; ++x) at(x, y).push(c, b, a);
  }
  void update(int32_t c, const double* b, double a) {
    const std::array<int, 4> r = rect(b), old = rects[c];
    for (int y = old[2]; y <= old[3]; ++y) {
      for (int x = old[0]; x <= old[1]; ++x) {
        Cell& cl = at(x, y);
        const size_t k = cl.find(c);
        if (x >= r[0] && x <= r[1] && y >= r[2] && y <= r[3]) cl.set(k, b, a);
        else cl.erase(k);
      }
    }
    for (int y = r[2]; y <= r[3]; ++y)
      for (int x = r[0]; x <= r[1]; ++x)
        if (!(x >= old[0] && x <= old[1] && y >= old[2] && y <= old[3])) at(x, y).push(c, b, a);
    rects[c] = r;
  }
};

// Groups at least this large use the grid; smaller ones scan every cluster (vectorised), which
// measured faster below ~500 boxes.
constexpr int64_t kGridMinBoxes = 512;

// Position of the first maximum of v[0..m) (m >= 1, no NaN): the maximum from 8 independent
// lanes (vectorised), then the first position holding it.
CURATA_ALWAYS_INLINE int64_t first_max_impl(const double* v, int64_t m) {
  const double mx = simd::max_value(v, m);
  int64_t j = 0;
  while (v[j] != mx) ++j;
  return j;
}
CURATA_SIMD_CLONES int64_t first_max(const double* v, int64_t m) { return first_max_impl(v, m); }

struct GroupScratch {
  ClusterGrid grid;
  std::vector<double> x1, y1, x2, y2, area, iou;
  std::vector<Cluster> clusters;
  std::vector<int64_t> member_cluster;  // cluster of each box of the group, in visiting order
  std::vector<uint8_t> present;         // models present per cluster (conf types that need it)
  int64_t largest = 0;                  // most boxes in one group since the buffers were fresh
};

// The calling thread's scratch, reused by later calls. Buffers grown by a group of more than
// kScratchKeepBoxes boxes are released after the call, so between calls a thread keeps
// O(kScratchKeepBoxes) memory (a few MB).
constexpr int64_t kScratchKeepBoxes = 4096;
// noinline: otherwise the compiler propagates the thread_local into fuse_group and pays a TLS
// lookup (__tls_get_addr) on every access there.
__attribute__((noinline)) GroupScratch& thread_scratch() {
  thread_local GroupScratch scratch;
  return scratch;
}

// Cache-line aligned: neighbouring groups are filled by different threads.
struct alignas(64) GroupOut {
  std::vector<double> boxes, scores;
};

void fuse_group(const std::vector<Entry>& entries, const int32_t* order, int64_t len, const WbfOptions& o,
                int64_t n_models, const double* weights, double weights_total, double weights_max,
                GroupScratch& s, GroupOut& out) {
  s.largest = std::max(s.largest, len);
  s.clusters.clear();
  s.member_cluster.assign(static_cast<size_t>(len), -1);
  for (auto* v : {&s.x1, &s.y1, &s.x2, &s.y2, &s.area, &s.iou}) v->resize(static_cast<size_t>(len));
  const bool use_grid = len >= kGridMinBoxes;
  if (use_grid) {
    // Cells about twice the mean box size (measured best), at most ~4 per box.
    double mean_w = 0.0, mean_h = 0.0;
    for (int64_t p = 0; p < len; ++p) {
      const Entry& e = entries[order[p]];
      mean_w += e.c[2] - e.c[0];
      mean_h += e.c[3] - e.c[1];
    }
    mean_w /= static_cast<double>(len);
    mean_h /= static_cast<double>(len);
    const double cap = std::min(1024.0, std::floor(2.0 * std::sqrt(static_cast<double>(len))));
    const int nx = static_cast<int>(std::max(1.0, std::min(cap, std::floor(0.5 / mean_w))));
    const int ny = static_cast<int>(std::max(1.0, std::min(cap, std::floor(0.5 / mean_h))));
    s.grid.reset(nx, ny);
  }
  int64_t m = 0;
  for (int64_t p = 0; p < len; ++p) {
    const Entry& e = entries[order[p]];
    const double e_area = box_area(e.c[0], e.c[1], e.c[2], e.c[3]);
    int64_t best = -1;
    if (use_grid) {
      // Highest IoU among overlapping clusters, the lowest cluster on ties (ensemble-boxes'
      // argmax over all clusters in creation order).
      // IoU row on each visited cell; a cluster listed in several of them is simply evaluated
      // again, which changes neither the maximum nor its tie rule.
      double best_iou = o.iou_threshold;
      // Only the cells under the box's core need a visit: a cluster with IoU > t covers more than
      // t * area(e) of e (the union is at least area(e)), so it overlaps e shrunk by f <= t of its
      // width and height on each side (missing that core on one axis would leave it at most
      // f * area(e)). f = min(t, 1/2), less a margin for rounding: at t = 0.55 the core is about the
      // centre point, one cell instead of up to four.
      const double f = std::min(o.iou_threshold, 0.5) * (1.0 - 1e-6);
      const double core[4] = {e.c[0] + f * (e.c[2] - e.c[0]) - 1e-12, e.c[1] + f * (e.c[3] - e.c[1]) - 1e-12,
                              e.c[2] - f * (e.c[2] - e.c[0]) + 1e-12, e.c[3] - f * (e.c[3] - e.c[1]) + 1e-12};
      const std::array<int, 4> r = s.grid.rect(core);
      for (int y = r[2]; y <= r[3]; ++y) {
        for (int x = r[0]; x <= r[1]; ++x) {
          const ClusterGrid::Cell& cl = s.grid.at(x, y);
          const int64_t k = static_cast<int64_t>(cl.id.size());
          if (static_cast<int64_t>(s.iou.size()) < k) s.iou.resize(static_cast<size_t>(2 * k));
          if (k == 0 || !iou_row_f64(cl.x1.data(), cl.y1.data(), cl.x2.data(), cl.y2.data(), cl.area.data(), k, e.c,
                                     e_area, o.iou_threshold, s.iou.data()))
            continue;
          // One rarely taken branch per cluster (v >= best_iou holds for few of them).
          const double* iou = s.iou.data();
          for (int64_t q = 0; q < k; ++q) {
            const double v = iou[q];
            if (v >= best_iou) {
              const int32_t j = cl.id[q];
              if (v > best_iou || (best >= 0 && j < best)) { best_iou = v; best = j; }
            }
          }
        }
      }
    } else if (m > 0 && iou_row_f64(s.x1.data(), s.y1.data(), s.x2.data(), s.y2.data(), s.area.data(), m, e.c,
                                    e_area, o.iou_threshold, s.iou.data())) {
      best = first_max(s.iou.data(), m);
    }
    if (best < 0) {
      Cluster c;
      for (int k = 0; k < 4; ++k) {
        c.box[k] = e.c[k];
        c.acc[k] = static_cast<float>(e.score * e.c[k]);
        c.plain[k] = e.c[k];
      }
      c.conf = e.score;
      c.weight_sum = weights[e.model];
      c.max_score = e.score;
      c.first_score = e.score;
      c.first_weight = weights[e.model];
      c.count = 1;
      s.clusters.push_back(c);
      s.x1[m] = e.c[0]; s.y1[m] = e.c[1]; s.x2[m] = e.c[2]; s.y2[m] = e.c[3]; s.area[m] = e_area;
      if (use_grid) s.grid.add(e.c, e_area);
      s.member_cluster[p] = m;
      ++m;
      continue;
    }
    Cluster& c = s.clusters[best];
    for (int k = 0; k < 4; ++k) {
      c.acc[k] = static_cast<float>(static_cast<double>(c.acc[k]) + e.score * e.c[k]);
      c.plain[k] += e.c[k];
    }
    c.conf += e.score;
    c.weight_sum += weights[e.model];
    c.max_score = std::max(c.max_score, e.score);
    ++c.count;
    for (int k = 0; k < 4; ++k) {
      c.box[k] = c.conf > 0.0 ? static_cast<double>(static_cast<float>(static_cast<double>(c.acc[k]) / c.conf))
                              : c.plain[k] / static_cast<double>(c.count);
    }
    s.x1[best] = c.box[0]; s.y1[best] = c.box[1]; s.x2[best] = c.box[2]; s.y2[best] = c.box[3];
    s.area[best] = box_area(c.box[0], c.box[1], c.box[2], c.box[3]);
    if (use_grid) s.grid.update(static_cast<int32_t>(best), c.box, s.area[best]);
    s.member_cluster[p] = best;
  }

  const bool needs_models =
      o.conf_type == WbfConfType::box_and_model_avg || o.conf_type == WbfConfType::absent_model_aware_avg;
  if (needs_models) {
    s.present.assign(static_cast<size_t>(m * n_models), 0);
    for (int64_t p = 0; p < len; ++p) s.present[s.member_cluster[p] * n_models + entries[order[p]].model] = 1;
  }
  std::vector<double> picked;
  out.boxes.reserve(out.boxes.size() + static_cast<size_t>(4 * m));
  for (int64_t j = 0; j < m; ++j) {
    const Cluster& c = s.clusters[j];
    const auto n = static_cast<double>(c.count);
    double score, weight;
    if (c.count == 1) {
      score = c.first_score;
      weight = c.first_weight;
    } else {
      score = static_cast<double>(static_cast<float>(o.conf_type == WbfConfType::max ? c.max_score : c.conf / n));
      weight = static_cast<double>(static_cast<float>(c.weight_sum));
    }
    switch (o.conf_type) {
      case WbfConfType::avg:
        score = score * (o.allows_overflow ? n : std::min(static_cast<double>(n_models), n)) / weights_total;
        break;
      case WbfConfType::max:
        score = score / weights_max;
        break;
      case WbfConfType::box_and_model_avg: {
        picked.clear();
        for (int64_t k = 0; k < n_models; ++k)
          if (s.present[j * n_models + k]) picked.push_back(weights[k]);
        score = score * n / weight;
        score = score * numpy_sum(picked.data(), static_cast<int64_t>(picked.size())) / weights_total;
        break;
      }
      case WbfConfType::absent_model_aware_avg: {
        picked.clear();
        for (int64_t k = 0; k < n_models; ++k)
          if (!s.present[j * n_models + k]) picked.push_back(weights[k]);
        score = score * n / (weight + numpy_sum(picked.data(), static_cast<int64_t>(picked.size())));
        break;
      }
    }
    out.boxes.insert(out.boxes.end(), c.box, c.box + 4);
    out.scores.push_back(score);
  }
}

std::string where(const char* name, int64_t model, int64_t row) {
  return std::string(name) + "[" + std::to_string(model) + "][" + std::to_string(row) + "]";
}

}  // namespace

template <class T> WbfResult wbf(const WbfInput<T>& in, const WbfOptions& o) {
  if (in.n_models < 0) throw std::invalid_argument("n_models must be >= 0");
  if (!(o.iou_threshold >= 0.0 && o.iou_threshold <= 1.0))
    throw std::invalid_argument("iou_threshold must be in [0, 1], got " + std::to_string(o.iou_threshold));
  if (!(std::isfinite(o.skip_box_threshold) && o.skip_box_threshold >= 0.0))
    throw std::invalid_argument("skip_box_threshold must be a finite number >= 0, got " +
                                std::to_string(o.skip_box_threshold));
  for (int64_t k = 0; k < in.n_models; ++k) {
    if (!(std::isfinite(in.weights[k]) && in.weights[k] > 0.0))
      throw std::invalid_argument("weights must be finite and > 0, got weights[" + std::to_string(k) +
                                  "] = " + std::to_string(in.weights[k]));
  }
  for (int64_t k = 0; k < in.n_models && in.skip_thresholds; ++k) {
    // +inf is a threshold beyond the range of the scores' dtype, rounded up: every box is skipped.
    if (!(in.skip_thresholds[k] >= 0.0))
      throw std::invalid_argument("skip thresholds must be numbers >= 0, got " +
                                  std::to_string(in.skip_thresholds[k]) + " for model " + std::to_string(k));
  }
  for (int64_t k = 0; k < in.n_models; ++k) {
    if ((k == 0 && in.model_offsets[0] != 0) || in.model_offsets[k + 1] < in.model_offsets[k])
      throw std::invalid_argument("model_offsets must start at 0 and be non-decreasing");
  }
  const int64_t n = in.n_models > 0 ? in.model_offsets[in.n_models] : 0;
  if (n > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("wbf supports at most 2^31 - 1 boxes, got " + std::to_string(n));

  WbfResult result;
  // Prefilter (sequential, O(n)): validate, skip, swap, clip, drop zero area, weight.
  std::vector<Entry> entries;
  std::vector<int64_t> labels, images;
  entries.reserve(static_cast<size_t>(n));
  labels.reserve(static_cast<size_t>(n));
  if (in.image_ids) images.reserve(static_cast<size_t>(n));
  for (int64_t model = 0; model < in.n_models; ++model) {
    const double w = in.weights[model];
    // Compared in T; the caller rounds each model's threshold to its scores' own dtype (numpy 2
    // compares a float16/float32 score with a Python float in the score's dtype).
    const T skip = static_cast<T>(in.skip_thresholds ? in.skip_thresholds[model] : o.skip_box_threshold);
    for (int64_t i = in.model_offsets[model]; i < in.model_offsets[model + 1]; ++i) {
      const double score = static_cast<double>(in.scores[i]);
      if (!std::isfinite(score))
        throw std::invalid_argument(where("scores_list", model, i - in.model_offsets[model]) +
                                    " must be finite, got " + std::to_string(score));
      const T* b = in.boxes + 4 * i;
      double c[4] = {static_cast<double>(b[0]), static_cast<double>(b[1]), static_cast<double>(b[2]),
                     static_cast<double>(b[3])};
      if (std::isnan(c[0]) || std::isnan(c[1]) || std::isnan(c[2]) || std::isnan(c[3]))
        throw std::invalid_argument(where("boxes_list", model, i - in.model_offsets[model]) +
                                    " must not be NaN");
      if (in.scores[i] < skip) continue;
      bool swapped = false, clipped = false;
      if (c[2] < c[0]) { std::swap(c[0], c[2]); swapped = true; }
      if (c[3] < c[1]) { std::swap(c[1], c[3]); swapped = true; }
      for (double& v : c) {
        if (v < 0.0) { v = 0.0; clipped = true; }
        if (v > 1.0) { v = 1.0; clipped = true; }
      }
      result.n_swapped += swapped;
      result.n_clipped += clipped;
      if ((c[2] - c[0]) * (c[3] - c[1]) == 0.0) {
        ++result.n_zero_area;
        continue;
      }
      Entry e;
      for (int k = 0; k < 4; ++k) e.c[k] = c[k];
      e.score = score * w;
      e.model = model;
      entries.push_back(e);
      labels.push_back(in.labels[i]);
      if (in.image_ids) images.push_back(in.image_ids[i]);
    }
  }
  const int64_t n_entries = static_cast<int64_t>(entries.size());
  if (n_entries == 0) return result;

  // Visiting order: descending weighted score (stable), grouped by label, then by image.
  std::vector<double> weighted(static_cast<size_t>(n_entries));
  for (int64_t i = 0; i < n_entries; ++i) weighted[i] = entries[i].score;
  std::vector<int32_t> order(static_cast<size_t>(n_entries));
  for (int64_t i = 0; i < n_entries; ++i) order[i] = static_cast<int32_t>(i);
  sort_by_score_desc(weighted.data(), order);
  stable_group_by(labels.data(), order);
  const int64_t* image_key = in.image_ids ? images.data() : nullptr;
  if (image_key) stable_group_by(image_key, order);
  const std::vector<int64_t> starts = detail::run_starts(order, image_key, labels.data());
  const int64_t n_groups = static_cast<int64_t>(starts.size()) - 1;
  const std::vector<int64_t> schedule = detail::largest_first(starts);

  const double weights_total = numpy_sum(in.weights, in.n_models);
  const double weights_max = *std::max_element(in.weights, in.weights + in.n_models);
  std::vector<GroupOut> outs(static_cast<size_t>(n_groups));
  // A second thread pays only on large calls (many images): below ~10k boxes the serial prefilter
  // and sort dominate, and on a busy 2-core machine a spinning OpenMP worker costs more than it
  // saves (measured: 3 models x 1000 boxes, 20 labels, 0.25 ms on 1 thread, 0.3-11 ms on 2).
  const int threads = n_groups > 1 ? threads_for(n_entries, 8192) : 1;
#pragma omp parallel num_threads(threads)
  {
    // Kept per thread across calls: the grid's per-cell arrays are otherwise re-allocated cell by
    // cell on every call (measured: a fifth of a 900-box single-label call in malloc/free).
    GroupScratch& scratch = thread_scratch();
#pragma omp for schedule(dynamic, 1)
    for (int64_t gi = 0; gi < n_groups; ++gi) {
      const int64_t g = schedule[gi];
      fuse_group(entries, order.data() + starts[g], starts[g + 1] - starts[g], o, in.n_models, in.weights,
                 weights_total, weights_max, scratch, outs[g]);
    }
    if (scratch.largest > kScratchKeepBoxes) scratch = GroupScratch();
  }

  // Groups are in (image, label) order; a stable sort by score then a stable grouping by image
  // gives each image's clusters by descending score, ties by label, then creation order.
  std::vector<double> scores;
  std::vector<int64_t> cluster_label, cluster_image;
  std::vector<double> boxes;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int32_t first = order[starts[g]];
    const int64_t k = static_cast<int64_t>(outs[g].scores.size());
    scores.insert(scores.end(), outs[g].scores.begin(), outs[g].scores.end());
    boxes.insert(boxes.end(), outs[g].boxes.begin(), outs[g].boxes.end());
    cluster_label.insert(cluster_label.end(), static_cast<size_t>(k), labels[first]);
    cluster_image.insert(cluster_image.end(), static_cast<size_t>(k), image_key ? image_key[first] : 0);
  }
  const int64_t n_out = static_cast<int64_t>(scores.size());
  std::vector<int32_t> out_order(static_cast<size_t>(n_out));
  for (int64_t i = 0; i < n_out; ++i) out_order[i] = static_cast<int32_t>(i);
  sort_by_score_desc(scores.data(), out_order);
  if (image_key) stable_group_by(cluster_image.data(), out_order);
  result.boxes.resize(static_cast<size_t>(4 * n_out));
  result.scores.resize(static_cast<size_t>(n_out));
  result.labels.resize(static_cast<size_t>(n_out));
  result.image_ids.resize(static_cast<size_t>(n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    const int32_t i = out_order[r];
    for (int k = 0; k < 4; ++k) result.boxes[4 * r + k] = boxes[4 * i + k];
    result.scores[r] = scores[i];
    result.labels[r] = cluster_label[i];
    result.image_ids[r] = cluster_image[i];
  }
  return result;
}

template WbfResult wbf<float>(const WbfInput<float>&, const WbfOptions&);
template WbfResult wbf<double>(const WbfInput<double>&, const WbfOptions&);

}  // namespace curata
