// Box conversion, validation and the pairwise IoU matrix.
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>

#include "curata/boxes.hpp"
#include "curata/parallel.hpp"
#include "curata/simd.hpp"

namespace curata {

namespace {

// The shortest text that reads back as v (Python's repr): std::to_string's six fixed decimals
// printed 0.1234567 > 0.1234566 as two equal numbers and 2e-9 as 0, hiding what is wrong.
template <class T> std::string shortest(T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::to_string(v);
}

}  // namespace

template <class T>
std::string invalid_box_message(const T* b, const char* name, const std::string& label) {
  if (box_is_valid(b)) return std::string();
  const std::string where = label + " = [" + shortest(b[0]) + ", " + shortest(b[1]) + ", " + shortest(b[2]) +
                            ", " + shortest(b[3]) + "]";
  if (!(is_finite(b[0]) && is_finite(b[1]) && is_finite(b[2]) && is_finite(b[3])))
    return std::string(name) + " must be finite, got " + where;
  return std::string(name) + " must satisfy x1 <= x2 and y1 <= y2 (xyxy), got " + where;
}

template <class T>
void check_boxes(const T* boxes, int64_t n, const char* name, const uint8_t* valid) {
  // One branch-free pass that only records whether anything is wrong; the slow path that finds
  // the first offender runs only to build the message.
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (valid && !valid[i]) continue;
    bad |= !box_is_valid(boxes + 4 * i);
  }
  if (!bad) return;
  for (int64_t i = 0; i < n; ++i) {
    if (valid && !valid[i]) continue;
    const std::string message =
        invalid_box_message(boxes + 4 * i, name, std::string(name) + "[" + std::to_string(i) + "]");
    if (!message.empty()) throw std::invalid_argument(message);
  }
}

template <class T>
void convert_boxes(const T* in, T* out, int64_t n, BoxFormat src, BoxFormat dst) {
  const int threads = threads_for(n, 1 << 16);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T xyxy[4] = {};
    to_xyxy(src, in + 4 * i, xyxy);
    from_xyxy(dst, xyxy, out + 4 * i);
  }
}

namespace {

// Boxes of one side of the IoU matrix as a structure of arrays, so rows vectorise over j.
template <class T> struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area;
  explicit BoxColumns(const T* b, int64_t m) : x1(m), y1(m), x2(m), y2(m), area(m) {
    for (int64_t j = 0; j < m; ++j) {
      x1[j] = b[4 * j]; y1[j] = b[4 * j + 1]; x2[j] = b[4 * j + 2]; y2[j] = b[4 * j + 3];
      area[j] = box_area(x1[j], y1[j], x2[j], y2[j]);
    }
  }
};

template <class T>
CURATA_ALWAYS_INLINE void iou_row(const T* a, const BoxColumns<T>& b, int64_t m, T* row, bool generalized) {
  const T ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  const T aarea = box_area(ax1, ay1, ax2, ay2);
  const T *bx1 = b.x1.data(), *by1 = b.y1.data(), *bx2 = b.x2.data(), *by2 = b.y2.data();
  const T* barea = b.area.data();
  if (!generalized) {
    for (int64_t j = 0; j < m; ++j) {
      const T inter = box_intersection(ax1, ay1, ax2, ay2, bx1[j], by1[j], bx2[j], by2[j]);
      row[j] = iou_from_parts(inter, aarea, barea[j]);
    }
    return;
  }
  for (int64_t j = 0; j < m; ++j) {
    const T aa[4] = {ax1, ay1, ax2, ay2};
    const T bb[4] = {bx1[j], by1[j], bx2[j], by2[j]};
    row[j] = box_giou(aa, bb);
  }
}

CURATA_SIMD_CLONES void iou_row_f32(const float* a, const BoxColumns<float>& b, int64_t m, float* row, bool g) {
  iou_row(a, b, m, row, g);
}
CURATA_SIMD_CLONES void iou_row_f64(const double* a, const BoxColumns<double>& b, int64_t m, double* row, bool g) {
  iou_row(a, b, m, row, g);
}
inline void run_iou_row(const float* a, const BoxColumns<float>& b, int64_t m, float* row, bool g) {
  iou_row_f32(a, b, m, row, g);
}
inline void run_iou_row(const double* a, const BoxColumns<double>& b, int64_t m, double* row, bool g) {
  iou_row_f64(a, b, m, row, g);
}

}  // namespace

template <class T>
void pairwise_iou(const T* a, int64_t n, const T* b, int64_t m, T* out, bool generalized) {
  check_boxes(a, n, "a");
  check_boxes(b, m, "b");
  const BoxColumns<T> columns(b, m);
  const int threads = threads_for(n * m, 1 << 15);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) run_iou_row(a + 4 * i, columns, m, out + i * m, generalized);
}

#define CURATA_INSTANTIATE(T)                                                              \
  template void check_boxes<T>(const T*, int64_t, const char*, const uint8_t*);            \
  template std::string invalid_box_message<T>(const T*, const char*, const std::string&);  \
  template void convert_boxes<T>(const T*, T*, int64_t, BoxFormat, BoxFormat);             \
  template void pairwise_iou<T>(const T*, int64_t, const T*, int64_t, T*, bool);
CURATA_INSTANTIATE(float)
CURATA_INSTANTIATE(double)
#undef CURATA_INSTANTIATE

}  // namespace curata
