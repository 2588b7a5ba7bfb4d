// Box operations of the core library: conversion, pairwise IoU, NMS for one or many
// (image, class) groups, and YOLO-head post-processing. Plain C++17: pointers in, results out;
// inputs are validated here and errors are std::invalid_argument naming the argument.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "curata/box_math.hpp"

namespace curata {

template <class T>
void convert_boxes(const T* in, T* out, int64_t n, BoxFormat src, BoxFormat dst);

// out[i * m + j] = IoU (or GIoU) of a[i] and b[j]; boxes xyxy, validated.
template <class T>
void pairwise_iou(const T* a, int64_t n, const T* b, int64_t m, T* out, bool generalized);

// Throws std::invalid_argument naming `name` if a box is not finite or has x2 < x1 / y2 < y1.
// `valid` (may be null) marks the boxes to check.
template <class T>
void check_boxes(const T* boxes, int64_t n, const char* name, const uint8_t* valid = nullptr);

// The message check_boxes raises for box b (4 values) of argument `name`, shown as `label`
// (e.g. "boxes[3]"); "" when the box is valid. The CUDA path reports its errors with it too.
template <class T>
std::string invalid_box_message(const T* b, const char* name, const std::string& label);

struct NmsOptions {
  double iou_threshold = 0.5;
  bool use_score_threshold = false;
  double score_threshold = 0.0;  // boxes with score <= score_threshold are dropped
  int64_t max_det = -1;          // per image; < 0 means no limit
};

// Input grouping for nms(): every box belongs to an image and a class; NMS runs independently in
// each (image, class) group. Any pointer may be null: no classes = one class (class-agnostic);
// no image ids = image i / per_image when per_image > 0, else a single image.
struct NmsGroups {
  const int64_t* classes = nullptr;
  const int64_t* image_ids = nullptr;
  int64_t per_image = 0;
  const uint8_t* valid = nullptr;  // boxes with valid[i] == 0 are ignored entirely
};

struct NmsResult {
  std::vector<int64_t> keep;         // indices into the input, grouped by image
  std::vector<int64_t> image_ids;    // distinct image ids in ascending order
  std::vector<int64_t> image_counts; // kept boxes of each image (same order as image_ids)
};

// Greedy NMS with torchvision's rule: a box is suppressed when its IoU with an already kept box of
// the same group is > iou_threshold. Within an image, results are ordered by descending score and
// ascending index on ties; images appear in ascending id order.
// Work: sum over groups of (group size x kept in group); memory O(n).
template <class T>
NmsResult nms(const T* boxes, const T* scores, int64_t n, const NmsGroups& groups,
              const NmsOptions& options);

struct PostprocessOptions {
  double conf_threshold = 0.25;
  double iou_threshold = 0.45;
  const int64_t* classes = nullptr;  // allowed classes (may be null = all)
  int64_t n_allowed_classes = 0;
  bool agnostic = false;
  bool multi_label = false;
  int64_t max_det = 300;
  int64_t max_nms = 30000;
};


// YOLO-style head (batch, 4 + n_classes, n_anchors) with cxcywh boxes -> detections per image,
// the same as Ultralytics' non_max_suppression for the same options (exact per-class NMS instead
// of its coordinate-offset trick, and no time limit). Fills rows (total x 6: x1, y1, x2, y2, score,
// class), the kept count of each image, and the source anchor of each row.
template <class T>
void postprocess(const T* pred, int64_t batch, int64_t n_channels, int64_t n_anchors,
                 const PostprocessOptions& options, std::vector<T>& rows,
                 std::vector<int64_t>& image_counts, std::vector<int64_t>& anchors);

}  // namespace curata
