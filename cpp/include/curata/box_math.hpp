// Box formulas shared by the CPU library and the CUDA kernels.
//
// The IoU is evaluated in exactly the order torchvision uses
//   inter / ((area_a + area_b) - inter)
// in the box dtype, so that a pair sitting exactly at an NMS threshold is decided the same way.
#pragma once

#include <cmath>
#include <limits>

#include "curata/hd.hpp"

namespace curata {

template <class T> CURATA_HD T hd_max(T a, T b) { return a > b ? a : b; }
template <class T> CURATA_HD T hd_min(T a, T b) { return a < b ? a : b; }

template <class T> CURATA_HD T box_area(T x1, T y1, T x2, T y2) { return (x2 - x1) * (y2 - y1); }

template <class T> CURATA_HD bool is_finite(T v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

// The validity rule of every box input: finite coordinates with x1 <= x2 and y1 <= y2.
template <class T> CURATA_HD bool box_is_valid(const T* b) {
  // Non-short-circuit & so the CPU loop that checks many boxes stays branch-free.
  return is_finite(b[0]) & is_finite(b[1]) & is_finite(b[2]) & is_finite(b[3]) & !(b[2] < b[0]) & !(b[3] < b[1]);
}

template <class T>
CURATA_HD T box_intersection(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2) {
  const T w = hd_max(T(0), hd_min(ax2, bx2) - hd_max(ax1, bx1));
  const T h = hd_max(T(0), hd_min(ay2, by2) - hd_max(ay1, by1));
  return w * h;
}

// IoU from an intersection and the two areas. Two empty boxes have union 0: defined as IoU 0
// (torchvision returns NaN there, which also never suppresses anything).
template <class T> CURATA_HD T iou_from_parts(T inter, T area_a, T area_b) {
  const T uni = area_a + area_b - inter;
  return uni > T(0) ? inter / uni : T(0);
}

// Intersection over the area of box a (COCO's IoU against a crowd region, a = the prediction):
// 0 when a is empty.
template <class T> CURATA_HD T ioa_from_parts(T inter, T area_a) { return area_a > T(0) ? inter / area_a : T(0); }

template <class T> CURATA_HD T box_iou(const T* a, const T* b) {
  const T inter = box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
  return iou_from_parts(inter, box_area(a[0], a[1], a[2], a[3]), box_area(b[0], b[1], b[2], b[3]));
}

// Generalised IoU (Rezatofighi et al. 2019): IoU - (hull - union) / hull.
template <class T> CURATA_HD T box_giou(const T* a, const T* b) {
  const T area_a = box_area(a[0], a[1], a[2], a[3]);
  const T area_b = box_area(b[0], b[1], b[2], b[3]);
  const T inter = box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
  const T uni = area_a + area_b - inter;
  const T iou = uni > T(0) ? inter / uni : T(0);
  const T hull = (hd_max(a[2], b[2]) - hd_min(a[0], b[0])) * (hd_max(a[3], b[3]) - hd_min(a[1], b[1]));
  return hull > T(0) ? iou - (hull - uni) / hull : iou;
}

// NMS compares "iou > threshold" in the box dtype. For float boxes the double threshold is replaced
// by the largest T <= threshold, which decides every T-valued IoU exactly as the double comparison
// torchvision makes. Host only (computed once per call, passed to kernels as a T).
template <class T> T threshold_in(double threshold) {
  T t = static_cast<T>(threshold);
  if (static_cast<double>(t) > threshold) t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  return t;
}

// pycocotools' bbox IoU of a detection and a ground-truth box, both x, y, w, h.
template <class T> CURATA_HD T coco_box_iou(const T* d, const T* g, T d_area, T g_area, bool crowd) {
  const T dx2 = d[2] + d[0], gx2 = g[2] + g[0];
  const T iw = hd_min(dx2, gx2) - hd_max(d[0], g[0]);
  if (iw <= T(0)) return T(0);
  const T dy2 = d[3] + d[1], gy2 = g[3] + g[1];
  const T ih = hd_min(dy2, gy2) - hd_max(d[1], g[1]);
  if (ih <= T(0)) return T(0);
  const T inter = iw * ih;
  return crowd ? ioa_from_parts(inter, d_area) : iou_from_parts(inter, d_area, g_area);
}

enum class BoxFormat : int { xyxy = 0, xywh = 1, cxcywh = 2 };

// Any format to xyxy. cxcywh uses c - w/2 and c + w/2 (as Ultralytics' xywh2xyxy), which is exact
// halving in binary floating point.
template <class T> CURATA_HD void to_xyxy(BoxFormat fmt, const T* in, T* out) {
  const T a = in[0], b = in[1], c = in[2], d = in[3];
  switch (fmt) {
    case BoxFormat::xyxy: out[0] = a; out[1] = b; out[2] = c; out[3] = d; break;
    case BoxFormat::xywh: out[0] = a; out[1] = b; out[2] = a + c; out[3] = b + d; break;
    case BoxFormat::cxcywh: {
      const T hw = c / T(2), hh = d / T(2);
      out[0] = a - hw; out[1] = b - hh; out[2] = a + hw; out[3] = b + hh;
      break;
    }
  }
}

template <class T> CURATA_HD void from_xyxy(BoxFormat fmt, const T* in, T* out) {
  const T x1 = in[0], y1 = in[1], x2 = in[2], y2 = in[3];
  switch (fmt) {
    case BoxFormat::xyxy: out[0] = x1; out[1] = y1; out[2] = x2; out[3] = y2; break;
    case BoxFormat::xywh: out[0] = x1; out[1] = y1; out[2] = x2 - x1; out[3] = y2 - y1; break;
    case BoxFormat::cxcywh:
      out[0] = (x1 + x2) / T(2); out[1] = (y1 + y2) / T(2); out[2] = x2 - x1; out[3] = y2 - y1;
      break;
  }
}

}  // namespace curata
