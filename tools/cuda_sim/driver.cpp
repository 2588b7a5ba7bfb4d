// Randomised comparison of the CUDA launchers (run on the host simulator) with the CPU library:
// batched_nms vs curata::nms (all grouping modes, ties, thresholds, max_det), pairwise_iou bit for
// bit, the padded sync-free postprocess bit for bit against the CPU (caps, empty / all-suppressed /
// tied / invalid images), the select-digit arithmetic, and the error messages. Usage: driver [TRIALS]
#include <cstdio>
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include "cuda_runtime.h"
#include <random>
#include <stdexcept>
#include <string>
#include <vector>
#include "curata/boxes.hpp"
#include "curata/postprocess_math.hpp"
#include "launchers.hpp"
using namespace curata;

static int failures = 0;
#define EXPECT(c, ...) do { if (!(c)) { ++failures; std::printf("FAIL %s:%d ", __FILE__, __LINE__); std::printf(__VA_ARGS__); std::printf("\n"); } } while (0)

template <class T> std::vector<T> random_boxes(std::mt19937& g, int n, double span, double size, bool grid_snap) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<T> b(4 * n);
  for (int i = 0; i < n; ++i) {
    double x = u(g) * span, y = u(g) * span, w = u(g) * size, h = u(g) * size;
    if (grid_snap) { x = std::floor(x); y = std::floor(y); w = std::floor(w) + 1; h = std::floor(h) + 1; }
    b[4*i] = T(x); b[4*i+1] = T(y); b[4*i+2] = T(x + w); b[4*i+3] = T(y + h);
  }
  return b;
}

template <class T> void check_nms(std::mt19937& g, int trial) {
  std::uniform_int_distribution<int> un(0, 400);
  const int n = trial % 7 == 0 ? un(g) % 5 : un(g);
  const bool snap = trial % 2;
  auto boxes = random_boxes<T>(g, n, snap ? 20 : 100, snap ? 8 : 40, snap);
  std::vector<T> scores(n);
  std::uniform_int_distribution<int> sc(0, 20);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& s : scores) s = trial % 3 == 0 ? T(sc(g) / 20.0) : T(u(g));  // ties when quantised
  if (n > 3 && trial % 5 == 0) scores[1] = -0.0, scores[2] = 0.0;
  const int mode = trial % 4;  // 0 plain, 1 classes, 2 image_ids + classes, 3 per_image + valid + classes
  std::vector<int64_t> classes(n), images(n);
  std::uniform_int_distribution<int> cl(-2, 3), im(5, 9);
  for (auto& c : classes) c = trial % 8 == 1 ? cl(g) * 1000000007LL : cl(g);
  for (auto& v : images) v = im(g) * (trial % 3 == 0 ? -1 : 1);
  std::vector<uint8_t> valid(n);
  for (auto& v : valid) v = u(g) < 0.8;
  int64_t per_image = 0;
  if (mode == 3) { per_image = 1 + (n > 0 ? un(g) % std::max(1, n / 3 + 1) : 0); }
  NmsGroups groups;
  if (mode >= 1) groups.classes = classes.data();
  if (mode == 2) groups.image_ids = images.data();
  if (mode == 3) { groups.per_image = per_image; groups.valid = valid.data(); }
  // make invalid entries garbage to prove they are ignored
  if (mode == 3) for (int i = 0; i < n; ++i) if (!valid[i]) { boxes[4*i] = NAN; scores[i] = NAN; }
  NmsOptions o;
  const double thresholds[] = {0.0, 0.3, 0.5, 0.7, 1.0};
  o.iou_threshold = thresholds[trial % 5];
  o.use_score_threshold = trial % 6 == 0;
  o.score_threshold = 0.4;
  o.max_det = trial % 9 == 0 ? 3 : (trial % 9 == 1 ? 0 : -1);
  NmsResult cpu = nms(boxes.data(), scores.data(), n, groups, o);
  std::vector<int64_t> out(n + 1, -7);
  const bool local = mode == 3;
  auto r = cuda::batched_nms(sizeof(T) == 8, (uintptr_t)boxes.data(), (uintptr_t)scores.data(), n,
                             mode >= 1 ? (uintptr_t)classes.data() : 0, mode == 2 ? (uintptr_t)images.data() : 0,
                             per_image, mode == 3 ? (uintptr_t)valid.data() : 0, o.iou_threshold, o.use_score_threshold,
                             o.score_threshold, o.max_det, local, (uintptr_t)out.data(), 0, 0);
  EXPECT((size_t)r.n_keep == cpu.keep.size(), "trial %d n=%d mode=%d: n_keep %ld vs %zu", trial, n, mode, (long)r.n_keep, cpu.keep.size());
  for (size_t k = 0; k < cpu.keep.size() && k < (size_t)r.n_keep; ++k) {
    int64_t want = local ? cpu.keep[k] % per_image : cpu.keep[k];
    if (out[k] != want) { EXPECT(false, "trial %d n=%d mode=%d: keep[%zu] %ld vs %ld", trial, n, mode, k, (long)out[k], (long)want); break; }
  }
  // image lists: the CPU lists all implicit images, the GPU only those with candidates
  std::vector<int64_t> cpu_ids, cpu_counts;
  for (size_t k = 0; k < cpu.image_ids.size(); ++k) if (mode != 3 || cpu.image_counts[k] > 0 || true) { cpu_ids.push_back(cpu.image_ids[k]); cpu_counts.push_back(cpu.image_counts[k]); }
  std::vector<int64_t> dense(64 + 0, 0);
  if (mode != 3) {
    EXPECT(r.image_ids == cpu_ids, "trial %d: image ids differ (%zu vs %zu)", trial, r.image_ids.size(), cpu_ids.size());
    EXPECT(r.image_counts == cpu_counts, "trial %d: image counts differ", trial);
  } else {
    for (size_t k = 0; k < r.image_ids.size(); ++k) {
      auto it = std::find(cpu.image_ids.begin(), cpu.image_ids.end(), r.image_ids[k]);
      EXPECT(it != cpu.image_ids.end() && cpu.image_counts[it - cpu.image_ids.begin()] == r.image_counts[k], "trial %d: implicit image %ld count", trial, (long)r.image_ids[k]);
    }
  }
}

template <class T> void check_iou(std::mt19937& g, int trial) {
  std::uniform_int_distribution<int> un(0, 150);
  const int n = un(g), m = un(g);
  auto a = random_boxes<T>(g, n, 50, 20, trial % 2);
  auto b = random_boxes<T>(g, m, 50, 20, trial % 2);
  if (n > 2) { a[4] = a[6]; a[5] = a[7]; }  // an empty box
  for (int gen = 0; gen < 2; ++gen) {
    std::vector<T> cpu(size_t(n) * m + 1), gpu(size_t(n) * m + 1);
    pairwise_iou(a.data(), n, b.data(), m, cpu.data(), gen);
    cuda::pairwise_iou(sizeof(T) == 8, (uintptr_t)a.data(), n, (uintptr_t)b.data(), m, (uintptr_t)gpu.data(), gen, 0, 0);
    EXPECT(std::memcmp(cpu.data(), gpu.data(), sizeof(T) * n * m) == 0, "iou trial %d gen %d n=%d m=%d", trial, gen, n, m);
  }
}

// The CPU reference of the padded form: counts[b] = -1 and zero rows for an image whose input the
// CPU rejects (found by running the rejected batch image by image, as python/curata/boxes.py does).
template <class T> struct PaddedRef {
  std::vector<T> dets; std::vector<int32_t> counts; std::string error;
};
template <class T> PaddedRef<T> cpu_padded(const std::vector<T>& pred, int batch, int ch, int anchors, const PostprocessOptions& o) {
  PaddedRef<T> r;
  const int64_t D = o.max_det;
  r.dets.assign(size_t(batch) * D * 6, T(0));
  r.counts.assign(batch, 0);
  auto fill = [&](int b0, int nb) {
    std::vector<T> rows; std::vector<int64_t> counts, anchors_out;
    postprocess(pred.data() + size_t(b0) * ch * anchors, nb, ch, anchors, o, rows, counts, anchors_out);
    size_t at = 0;
    for (int k = 0; k < nb; ++k) {
      const int64_t c = counts[k];
      if (c > D) std::abort();
      r.counts[b0 + k] = int32_t(c);
      if (c > 0) std::memcpy(r.dets.data() + size_t(b0 + k) * D * 6, rows.data() + at * 6, size_t(c) * 6 * sizeof(T));
      at += c;
    }
  };
  try {
    fill(0, batch);
  } catch (const std::invalid_argument& e) {
    r.error = e.what();
    for (int b = 0; b < batch; ++b) {
      try { fill(b, 1); } catch (const std::invalid_argument&) { r.counts[b] = -1; }
    }
  }
  return r;
}

// How often the randomised cases reach the interesting paths (printed, so a change that stops
// exercising one shows).
static long pp_with_rows = 0, pp_capped = 0, pp_flagged = 0, pp_errors = 0;

template <class T> void check_postprocess(std::mt19937& g, int trial) {
  std::uniform_int_distribution<int> ub(0, 3), ua(0, 200), uc(1, 6);
  const int batch = trial % 11 == 0 ? 0 : ub(g) + 1, anchors = trial % 13 == 0 ? 0 : ua(g), C = uc(g), ch = 4 + C;
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<T> pred(size_t(batch) * ch * anchors);
  // Image kinds: 0 random, 1 empty (every score below conf), 2 all boxes identical (all but one per
  // class suppressed), 3 tied scores, 4 one NaN class score, 5 a negative width (invalid box)
  std::uniform_int_distribution<int> kind_of(0, 9);
  for (int b = 0; b < batch; ++b) {
    int kind = kind_of(g);
    if (kind > 5) kind = 0;
    if (trial % 4 != 2 && kind >= 4) kind = 0;  // invalid input in a few trials only
    for (int a = 0; a < anchors; ++a) {
      T* p = pred.data() + size_t(b) * ch * anchors + a;
      if (kind == 2) { p[0] = T(10); p[anchors] = T(10); p[2 * anchors] = T(4); p[3 * anchors] = T(4); }
      else { p[0] = T(std::floor(u(g) * 30)); p[anchors] = T(std::floor(u(g) * 30)); p[2 * anchors] = T(1 + std::floor(u(g) * 10)); p[3 * anchors] = T(1 + std::floor(u(g) * 10)); }
      for (int c = 0; c < C; ++c) {
        T v = (trial % 3 == 0 || kind == 3) ? T(std::floor(u(g) * 8) / 8) : T(u(g));
        if (kind == 1) v = T(0.1 * u(g));
        p[(4 + c) * anchors] = v;
      }
      if (kind == 4 && a % 7 == 3) p[(4 + (a % C)) * anchors] = NAN;
      if (kind == 5 && a % 5 == 2) p[2 * anchors] = T(-3);
    }
  }
  PostprocessOptions o;
  o.conf_threshold = trial % 4 == 0 ? 0.0 : 0.3;
  o.iou_threshold = trial % 5 == 0 ? 0.5 : 0.45;
  o.agnostic = trial % 2;
  o.multi_label = (trial / 2) % 2;
  o.max_det = trial % 7 == 0 ? 2 : (trial % 19 == 0 ? 0 : 300);
  // the per-image cap: often hit (a few to a few dozen), sometimes 0, usually Ultralytics' 30000
  std::uniform_int_distribution<int> um(1, 40);
  o.max_nms = trial % 3 == 1 ? um(g) : (trial % 23 == 0 ? 0 : 30000);
  std::vector<int64_t> allowed = {0, 2, 99, -1};
  if (trial % 6 == 5) { o.classes = allowed.data(); o.n_allowed_classes = allowed.size(); }
  const PaddedRef<T> ref = cpu_padded(pred, batch, ch, anchors, o);
  for (int b = 0; b < batch; ++b) {
    pp_with_rows += ref.counts[b] > 0;
    pp_flagged += ref.counts[b] < 0;
    // capped: more candidates than max_nms (the CPU's own count, conf test in T)
    int64_t cand = 0;
    for (int a = 0; a < anchors; ++a) for (int c = 0; c < C; ++c) cand += pred[(size_t(b) * ch + 4 + c) * anchors + a] > T(o.conf_threshold);
    pp_capped += ref.counts[b] > 0 && o.multi_label && cand > o.max_nms;
  }
  pp_errors += !ref.error.empty();

  cuda::DevicePostprocessOptions d;
  d.conf_threshold = o.conf_threshold; d.iou_threshold = o.iou_threshold; d.agnostic = o.agnostic; d.multi_label = o.multi_label;
  d.max_det = o.max_det; d.max_nms = o.max_nms;
  if (o.classes) { d.filter_classes = true; d.allowed_classes = allowed; }
  const bool dbl = sizeof(T) == 8;
  const int64_t bytes = cuda::postprocess_workspace_bytes(dbl, batch, ch, anchors, d, 0);
  // workspace from the caller (poisoned, as a caching allocator hands back used memory), or none
  std::vector<unsigned char> ws(size_t(bytes) + 1, 0xA5);
  const bool own_ws = trial % 4 != 3;
  std::vector<T> dets(size_t(batch) * o.max_det * 6 + 6, T(-99));
  std::vector<int32_t> counts(batch + 1, -77);
  std::vector<int64_t> status(cuda::postprocess_status_size(batch), 12345);
  const long syncs = cuda::host_sync_count();
  cuda::postprocess_padded(dbl, (uintptr_t)pred.data(), batch, ch, anchors, d, own_ws ? (uintptr_t)ws.data() : 0,
                           own_ws ? bytes : 0, (uintptr_t)dets.data(), (uintptr_t)counts.data(), (uintptr_t)status.data(), 0, 0);
  EXPECT(cuda::host_sync_count() == syncs, "pp trial %d: the padded call waited for the device", trial);
  for (int b = 0; b < batch; ++b)
    EXPECT(counts[b] == ref.counts[b], "pp trial %d image %d: count %d vs CPU %d (B=%d A=%d C=%d max_nms=%ld)", trial, b, counts[b], ref.counts[b], batch, anchors, C, (long)o.max_nms);
  EXPECT(ref.dets.empty() || std::memcmp(dets.data(), ref.dets.data(), ref.dets.size() * sizeof(T)) == 0, "pp trial %d: padded rows differ (B=%d A=%d C=%d)", trial, batch, anchors, C);
  EXPECT(dets[ref.dets.size()] == T(-99), "pp trial %d: wrote past the output", trial);
  // the list form: one wait, the CPU's error message
  std::string gpu_error;
  try {
    auto c64 = cuda::postprocess_fetch(dbl, (uintptr_t)pred.data(), batch, ch, anchors, (uintptr_t)counts.data(), (uintptr_t)status.data(), 0, 0);
    for (int b = 0; b < batch; ++b) EXPECT(c64[b] == counts[b], "pp trial %d: fetched counts", trial);
    EXPECT(cuda::host_sync_count() == syncs + 1, "pp trial %d: the list form waited %ld times", trial, cuda::host_sync_count() - syncs);
  } catch (const std::invalid_argument& e) {
    gpu_error = e.what();
  }
  EXPECT(gpu_error == ref.error, "pp trial %d: GPU error '%s', CPU error '%s'", trial, gpu_error.c_str(), ref.error.c_str());
}

// More than 2048 classes with a class filter: the allowed classes travel as a device byte mask
// (uploaded from a pageable host vector) instead of the by-value bitmask the random trials use.
// Allowed classes on both sides of every 64-class word and past 2048; scores that make the
// disallowed classes the best ones of many anchors; single- and multi-label, per class and
// agnostic, capped and not.
template <class T> void check_postprocess_many_classes(std::mt19937& g) {
  const int batch = 2, anchors = 48, C = 2100, ch = 4 + C;
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<T> pred(size_t(batch) * ch * anchors, T(0));
  const std::vector<int64_t> allowed = {0, 63, 64, 2047, 2048, 2099, 5000, -3};
  for (int b = 0; b < batch; ++b)
    for (int a = 0; a < anchors; ++a) {
      T* p = pred.data() + size_t(b) * ch * anchors + a;
      p[0] = T(std::floor(u(g) * 30)); p[anchors] = T(std::floor(u(g) * 30));
      p[2 * anchors] = T(1 + std::floor(u(g) * 10)); p[3 * anchors] = T(1 + std::floor(u(g) * 10));
      for (int k = 0; k < 6; ++k) p[(4 + allowed[k]) * anchors] = T(std::floor(u(g) * 8) / 8);
      if (a % 2 == 0) p[(4 + 1000 + a) * anchors] = T(0.95);  // a disallowed best class (single-label: no row)
    }
  for (int variant = 0; variant < 4; ++variant) {
    PostprocessOptions o;
    o.conf_threshold = 0.2;
    o.multi_label = variant & 1;
    o.agnostic = variant & 2;
    o.max_nms = variant == 3 ? 20 : 30000;
    o.classes = allowed.data();
    o.n_allowed_classes = int64_t(allowed.size());
    const PaddedRef<T> ref = cpu_padded(pred, batch, ch, anchors, o);
    cuda::DevicePostprocessOptions d;
    d.conf_threshold = o.conf_threshold; d.iou_threshold = o.iou_threshold; d.agnostic = o.agnostic;
    d.multi_label = o.multi_label; d.max_det = o.max_det; d.max_nms = o.max_nms;
    d.filter_classes = true; d.allowed_classes = allowed;
    const bool dbl = sizeof(T) == 8;
    const int64_t bytes = cuda::postprocess_workspace_bytes(dbl, batch, ch, anchors, d, 0);
    std::vector<unsigned char> ws(size_t(bytes), 0xA5);
    std::vector<T> dets(size_t(batch) * o.max_det * 6, T(-99));
    std::vector<int32_t> counts(batch, -77);
    std::vector<int64_t> status(cuda::postprocess_status_size(batch), 12345);
    cuda::postprocess_padded(dbl, (uintptr_t)pred.data(), batch, ch, anchors, d, (uintptr_t)ws.data(), bytes,
                             (uintptr_t)dets.data(), (uintptr_t)counts.data(), (uintptr_t)status.data(), 0, 0);
    int rows = 0;
    for (int b = 0; b < batch; ++b) {
      EXPECT(counts[b] == ref.counts[b], "many classes variant %d image %d: count %d vs CPU %d", variant, b, counts[b],
             ref.counts[b]);
      rows += ref.counts[b];
    }
    EXPECT(rows > 0, "many classes variant %d: no detections (the case tests nothing)", variant);
    EXPECT(std::memcmp(dets.data(), ref.dets.data(), ref.dets.size() * sizeof(T)) == 0,
           "many classes variant %d: padded rows differ", variant);
  }
}

// select_digit / select_at_most against the composite key built with 128-bit integers.
void check_select_digits(std::mt19937_64& g) {
  for (int t = 0; t < 20000; ++t) {
    const int ord_bits = 1 + int(g() % 31);
    const int score_bits = (g() & 1) ? 64 : 32;
    const int total = score_bits + ord_bits;
    uint64_t key = g(); if (score_bits == 32) key &= 0xFFFFFFFFull;
    const uint32_t ord = uint32_t(g()) & uint32_t((1ull << ord_bits) - 1);
    const unsigned __int128 v = ((unsigned __int128)key << ord_bits) | ord;
    const int passes = select_passes(total);
    unsigned __int128 back = 0;
    for (int p = 0; p < passes; ++p) {
      const int top = total - kSelectRadixBits * p, width = top > kSelectRadixBits ? kSelectRadixBits : top;
      back = (back << width) | select_digit(key, ord, ord_bits, total, p);
    }
    EXPECT(back == v, "select digits do not rebuild the key (ord_bits %d, total %d)", ord_bits, total);
    uint64_t key2 = (g() & 3) == 0 ? key : g(); if (score_bits == 32) key2 &= 0xFFFFFFFFull;
    const uint32_t ord2 = (g() & 1) ? ord : uint32_t(g()) & uint32_t((1ull << ord_bits) - 1);
    const unsigned __int128 v2 = ((unsigned __int128)key2 << ord_bits) | ord2;
    int32_t digits[kSelectMaxPasses];
    for (int p = 0; p < passes; ++p) digits[p] = int32_t(select_digit(key2, ord2, ord_bits, total, p));
    EXPECT(select_at_most(key, ord, ord_bits, total, digits) == (v <= v2), "select_at_most");
  }
}

int main(int argc, char** argv) {
  int trials = argc > 1 ? std::atoi(argv[1]) : 60;
  std::mt19937 g(1234);
  for (int t = 0; t < trials; ++t) { check_nms<float>(g, t); check_nms<double>(g, t); }
  std::printf("nms done, failures=%d\n", failures);
  for (int t = 0; t < trials / 3; ++t) { check_iou<float>(g, t); check_iou<double>(g, t); }
  std::printf("iou done, failures=%d\n", failures);
  { std::mt19937_64 g64(7); check_select_digits(g64); }
  std::printf("select digits done, failures=%d\n", failures);
  for (int t = 0; t < trials; ++t) { check_postprocess<float>(g, t); check_postprocess<double>(g, t); }
  std::printf("postprocess done, failures=%d (images with rows %ld, capped multi-label %ld, flagged %ld; trials raising %ld)\n",
              failures, pp_with_rows, pp_capped, pp_flagged, pp_errors);
  check_postprocess_many_classes<float>(g);
  check_postprocess_many_classes<double>(g);
  std::printf("postprocess with > 2048 classes done, failures=%d\n", failures);
  // errors: the first invalid box wins over later ones and over NaN scores, as on the CPU
  {
    std::vector<float> b = {0, 0, 1, 1, 0, 0, NAN, 1, 2, 2, 1, 3};
    std::vector<float> s = {0.5f, 0.6f, NAN};
    std::vector<int64_t> out(3);
    // The wanted message is the CPU library's own (curata::nms on the same input), so the two can
    // never drift apart again; the literal checks below pin the format the user sees.
    auto cpu_error = [&]() -> std::string {
      try {
        NmsOptions o;
        o.iou_threshold = 0.5;
        nms(b.data(), s.data(), 3, NmsGroups{}, o);
      } catch (const std::invalid_argument& e) {
        return e.what();
      }
      return "";
    };
    auto expect_error = [&](const std::string& want) {
      EXPECT(cpu_error() == want, "CPU error '%s', wanted '%s'", cpu_error().c_str(), want.c_str());
      try {
        cuda::batched_nms(false, (uintptr_t)b.data(), (uintptr_t)s.data(), 3, 0, 0, 0, 0, 0.5, false, 0, -1, false,
                          (uintptr_t)out.data(), 0, 0);
        EXPECT(false, "no error, wanted '%s'", want.c_str());
      } catch (const std::invalid_argument& e) {
        EXPECT(std::string(e.what()) == want, "got '%s', wanted '%s'", e.what(), want.c_str());
      }
    };
    expect_error("boxes must be finite, got boxes[1] = [0, 0, nan, 1]");
    b[6] = 1;
    expect_error("boxes must satisfy x1 <= x2 and y1 <= y2 (xyxy), got boxes[2] = [2, 2, 1, 3]");
    b[10] = 3;
    expect_error("scores must not be NaN, got scores[2] = nan");
    b[10] = 1;
    std::vector<float> o2(9);
    try {
      cuda::pairwise_iou(false, (uintptr_t)b.data(), 3, (uintptr_t)b.data(), 3, (uintptr_t)o2.data(), false, 0, 0);
      EXPECT(false, "no iou error");
    } catch (const std::invalid_argument& e) {
      EXPECT(std::string(e.what()).rfind("a must satisfy", 0) == 0, "iou error '%s'", e.what());
    }
  }
  std::printf("launches=%ld live_allocs=%ld failures=%d\n", sim::launches, g_live_allocs.load(), failures);
  return failures != 0;
}
