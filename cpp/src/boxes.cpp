// Box conversion, validation and the pairwise IoU matrix.
#include <cmath>
#include <stdexcept>
#include <string>

#include "curata/boxes.hpp"
#include "curata/parallel.hpp"

namespace curata {

template <class T>
std::string invalid_box_message(const T* b, const char* name, const std::string& label) {
  if (box_is_valid(b)) return std::string();
  const std::string where = label + " = [" + std::to_string(b[0]) + ", " + std::to_string(b[1]) + ", " +
                            std::to_string(b[2]) + ", " + std::to_string(b[3]) + "]";
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

template <class T>
void pairwise_iou(const T* a, int64_t n, const T* b, int64_t m, T* out, bool generalized) {
  check_boxes(a, n, "a");
  check_boxes(b, m, "b");
  // Structure-of-arrays copy of b so the inner loop vectorises over j.
  std::vector<T> bx1(m), by1(m), bx2(m), by2(m), barea(m);
  for (int64_t j = 0; j < m; ++j) {
    bx1[j] = b[4 * j]; by1[j] = b[4 * j + 1]; bx2[j] = b[4 * j + 2]; by2[j] = b[4 * j + 3];
    barea[j] = box_area(bx1[j], by1[j], bx2[j], by2[j]);
  }
  const int threads = threads_for(n * m, 1 << 15);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
    const T aarea = box_area(ax1, ay1, ax2, ay2);
    T* row = out + i * m;
    if (!generalized) {
      for (int64_t j = 0; j < m; ++j) {
        const T inter = box_intersection(ax1, ay1, ax2, ay2, bx1[j], by1[j], bx2[j], by2[j]);
        row[j] = iou_from_parts(inter, aarea, barea[j]);
      }
    } else {
      for (int64_t j = 0; j < m; ++j) {
        const T bb[4] = {bx1[j], by1[j], bx2[j], by2[j]};
        const T aa[4] = {ax1, ay1, ax2, ay2};
        row[j] = box_giou(aa, bb);
      }
    }
  }
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
