// pybind11 glue for the ensembling ops (WBF, soft-NMS, matching), included by core_module.cpp.
// Shapes and dtypes are checked by python/curata/boxes.py; value checks happen in the library.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>

#include "curata/ensemble.hpp"
#include "numpy_util.hpp"

namespace curata_py {
namespace py = pybind11;

template <class T>
py::tuple wbf(const carray<T>& boxes, const carray<T>& scores, const carray<int64_t>& labels,
              const std::optional<carray<int64_t>>& image_ids, const carray<int64_t>& model_offsets,
              const carray<double>& weights, double iou_threshold, double skip_box_threshold, int conf_type,
              bool allows_overflow, const std::optional<carray<double>>& skip_thresholds) {
  curata::WbfInput<T> in;
  in.boxes = boxes.data();
  in.scores = scores.data();
  in.labels = labels.data();
  in.image_ids = optional_data(image_ids);
  in.model_offsets = model_offsets.data();
  in.weights = weights.data();
  in.n_models = weights.shape(0);
  if (skip_thresholds && skip_thresholds->size() != static_cast<py::ssize_t>(in.n_models))
    throw std::invalid_argument("skip_thresholds must have one entry per model");
  in.skip_thresholds = optional_data(skip_thresholds);
  curata::WbfOptions o;
  o.iou_threshold = iou_threshold;
  o.skip_box_threshold = skip_box_threshold;
  o.conf_type = static_cast<curata::WbfConfType>(conf_type);
  o.allows_overflow = allows_overflow;
  curata::WbfResult r;
  {
    py::gil_scoped_release release;
    r = curata::wbf(in, o);
  }
  const auto k = static_cast<py::ssize_t>(r.scores.size());
  return py::make_tuple(vector_to_numpy(std::move(r.boxes), {k, py::ssize_t(4)}),
                        vector_to_numpy(std::move(r.scores), {k}), vector_to_numpy(std::move(r.labels), {k}),
                        vector_to_numpy(std::move(r.image_ids), {k}), r.n_clipped, r.n_swapped, r.n_zero_area);
}

template <class B, class T>
py::tuple soft_nms(const carray<B>& boxes, const carray<T>& scores, const std::optional<carray<int64_t>>& classes,
                   const std::optional<carray<int64_t>>& image_ids, double iou_threshold, double sigma, int method,
                   double score_threshold) {
  curata::SoftNmsOptions o;
  o.iou_threshold = iou_threshold;
  o.sigma = sigma;
  o.method = static_cast<curata::SoftNmsMethod>(method);
  o.score_threshold = score_threshold;
  const B* pb = boxes.data();
  const T* ps = scores.data();
  const int64_t* pc = optional_data(classes);
  const int64_t* pi = optional_data(image_ids);
  const int64_t n = scores.shape(0);
  curata::SoftNmsResult<T> r;
  {
    py::gil_scoped_release release;
    r = curata::soft_nms(pb, ps, n, pc, pi, o);
  }
  const auto k = static_cast<py::ssize_t>(r.keep.size());
  const auto n_images = static_cast<py::ssize_t>(r.image_ids.size());
  return py::make_tuple(vector_to_numpy(std::move(r.keep), {k}), vector_to_numpy(std::move(r.scores), {k}),
                        vector_to_numpy(std::move(r.image_ids), {n_images}),
                        vector_to_numpy(std::move(r.image_counts), {n_images}));
}

template <class T>
py::dict match(const carray<T>& pred_boxes, const carray<T>& pred_scores,
               const std::optional<carray<int64_t>>& pred_classes, const carray<T>& gt_boxes,
               const std::optional<carray<int64_t>>& gt_classes, const std::optional<carray<uint8_t>>& gt_crowd,
               const std::optional<carray<int64_t>>& pred_image_ids,
               const std::optional<carray<int64_t>>& gt_image_ids, double iou_threshold) {
  curata::MatchInput in;
  in.pred_classes = optional_data(pred_classes);
  in.gt_classes = optional_data(gt_classes);
  in.gt_crowd = optional_data(gt_crowd);
  in.pred_image_ids = optional_data(pred_image_ids);
  in.gt_image_ids = optional_data(gt_image_ids);
  const T* pb = pred_boxes.data();
  const T* ps = pred_scores.data();
  const T* gb = gt_boxes.data();
  const int64_t n_pred = pred_scores.shape(0), n_gt = gt_boxes.shape(0);
  curata::MatchResult r;
  {
    py::gil_scoped_release release;
    r = curata::match(pb, ps, n_pred, gb, n_gt, in, iou_threshold);
  }
  auto vec = [](auto&& v) {
    const auto k = static_cast<py::ssize_t>(v.size());
    return vector_to_numpy(std::move(v), {k});
  };
  py::dict out;
  out["pred_index"] = vec(std::move(r.pred_index));
  out["gt_index"] = vec(std::move(r.gt_index));
  out["iou"] = vec(std::move(r.iou));
  out["ignored_pred"] = vec(std::move(r.ignored_pred));
  out["ignored_gt"] = vec(std::move(r.ignored_gt));
  out["ignored_ioa"] = vec(std::move(r.ignored_ioa));
  out["unmatched_pred"] = vec(std::move(r.unmatched_pred));
  out["unmatched_gt"] = vec(std::move(r.unmatched_gt));
  return out;
}

template <class T> void bind_ensemble_typed(py::module_& m) {
  m.def("wbf", &wbf<T>, py::arg("boxes"), py::arg("scores"), py::arg("labels"), py::arg("image_ids"),
        py::arg("model_offsets"), py::arg("weights"), py::arg("iou_threshold"), py::arg("skip_box_threshold"),
        py::arg("conf_type"), py::arg("allows_overflow"), py::arg("skip_thresholds") = py::none());
  // Boxes of either dtype with scores of dtype T.
  m.def("soft_nms", &soft_nms<float, T>, py::arg("boxes"), py::arg("scores"), py::arg("classes"),
        py::arg("image_ids"), py::arg("iou_threshold"), py::arg("sigma"), py::arg("method"), py::arg("score_threshold"));
  m.def("soft_nms", &soft_nms<double, T>, py::arg("boxes"), py::arg("scores"), py::arg("classes"),
        py::arg("image_ids"), py::arg("iou_threshold"), py::arg("sigma"), py::arg("method"), py::arg("score_threshold"));
  m.def("match", &match<T>, py::arg("pred_boxes"), py::arg("pred_scores"), py::arg("pred_classes"),
        py::arg("gt_boxes"), py::arg("gt_classes"), py::arg("gt_crowd"), py::arg("pred_image_ids"),
        py::arg("gt_image_ids"), py::arg("iou_threshold"));
}

inline void bind_ensemble(py::module_& m) {
  bind_ensemble_typed<float>(m);
  bind_ensemble_typed<double>(m);
}

}  // namespace curata_py
