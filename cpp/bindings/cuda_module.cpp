// pybind11 glue for curata._cuda: device queries and the kernel launchers. Array pointers arrive
// as integers from the Python layer (python/curata/_cuda_ops.py, which validated shapes and dtypes
// and allocated the outputs with the caller's framework), with the device index and the caller's
// stream. The GIL is released around every launcher; std::invalid_argument becomes ValueError and
// std::runtime_error (CUDA failures) RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "launchers.hpp"

namespace py = pybind11;
using std::uintptr_t;

namespace {

using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void pairwise_iou(uintptr_t a, int64_t n, uintptr_t b, int64_t m, uintptr_t out, bool generalized, bool is_double,
                  int device, uintptr_t stream) {
  py::gil_scoped_release release;
  curata::cuda::pairwise_iou(is_double, a, n, b, m, out, generalized, device, stream);
}

py::tuple batched_nms(uintptr_t boxes, uintptr_t scores, int64_t n, uintptr_t classes, uintptr_t image_ids,
                      int64_t per_image, uintptr_t valid, double iou_threshold, std::optional<double> score_threshold,
                      int64_t max_det, bool local_indices, uintptr_t out, bool is_double, int device,
                      uintptr_t stream) {
  curata::cuda::NmsDeviceResult r;
  {
    py::gil_scoped_release release;
    r = curata::cuda::batched_nms(is_double, boxes, scores, n, classes, image_ids, per_image, valid, iou_threshold,
                                  score_threshold.has_value(), score_threshold.value_or(0.0), max_det, local_indices,
                                  out, device, stream);
  }
  return py::make_tuple(r.n_keep, r.image_ids, r.image_counts);
}

curata::cuda::DevicePostprocessOptions postprocess_options(double conf_threshold, double iou_threshold,
                                                           const std::optional<Int64Array>& classes, bool agnostic,
                                                           bool multi_label, int64_t max_det, int64_t max_nms) {
  curata::cuda::DevicePostprocessOptions o;
  o.conf_threshold = conf_threshold;
  o.iou_threshold = iou_threshold;
  if (classes) {
    if (classes->ndim() != 1) throw py::value_error("classes must be 1-D");
    o.filter_classes = true;
    o.allowed_classes.assign(classes->data(), classes->data() + classes->shape(0));
  }
  o.agnostic = agnostic;
  o.multi_label = multi_label;
  o.max_det = max_det;
  o.max_nms = max_nms;
  return o;
}

int64_t postprocess_workspace_bytes(int64_t batch, int64_t channels, int64_t anchors, double conf_threshold,
                                    double iou_threshold, const std::optional<Int64Array>& classes, bool agnostic,
                                    bool multi_label, int64_t max_det, int64_t max_nms, bool is_double, int device) {
  const auto o = postprocess_options(conf_threshold, iou_threshold, classes, agnostic, multi_label, max_det, max_nms);
  return curata::cuda::postprocess_workspace_bytes(is_double, batch, channels, anchors, o, device);
}

void postprocess_padded(uintptr_t pred, int64_t batch, int64_t channels, int64_t anchors, double conf_threshold,
                        double iou_threshold, const std::optional<Int64Array>& classes, bool agnostic, bool multi_label,
                        int64_t max_det, int64_t max_nms, uintptr_t workspace, int64_t workspace_bytes, uintptr_t dets,
                        uintptr_t counts, uintptr_t status, bool is_double, int device, uintptr_t stream) {
  const auto o = postprocess_options(conf_threshold, iou_threshold, classes, agnostic, multi_label, max_det, max_nms);
  py::gil_scoped_release release;
  curata::cuda::postprocess_padded(is_double, pred, batch, channels, anchors, o, workspace, workspace_bytes, dets,
                                   counts, status, device, stream);
}

std::vector<int64_t> postprocess_fetch(uintptr_t pred, int64_t batch, int64_t channels, int64_t anchors,
                                       uintptr_t counts, uintptr_t status, bool is_double, int device,
                                       uintptr_t stream) {
  py::gil_scoped_release release;
  return curata::cuda::postprocess_fetch(is_double, pred, batch, channels, anchors, counts, status, device, stream);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "curata CUDA kernels";
  m.def("device_count", [] { return curata::cuda::device_report().count; });
  m.def("device_report", [] {
    const auto r = curata::cuda::device_report();
    return py::make_tuple(r.count, r.reason);
  });
  m.def("device_name", &curata::cuda::device_name, py::arg("device"));
  m.def("runtime_version", &curata::cuda::runtime_version);
  m.def("driver_version", &curata::cuda::driver_version);
  m.attr("cuda_version") = CURATA_CUDA_VERSION_STR;
  m.attr("archs") = CURATA_CUDA_ARCHS_STR;

  m.def("pairwise_iou", &pairwise_iou,
        "out (n, m) = IoU or GIoU of device boxes a (n, 4) and b (m, 4); raises ValueError on invalid boxes",
        py::arg("a"), py::arg("n"), py::arg("b"), py::arg("m"), py::arg("out"), py::arg("generalized"),
        py::arg("is_double"), py::arg("device"), py::arg("stream"));
  m.def("batched_nms", &batched_nms,
        "Segmented greedy NMS on device arrays; writes kept indices to out (capacity n) and returns "
        "(n_keep, image_ids, image_counts) for the images that had candidates",
        py::arg("boxes"), py::arg("scores"), py::arg("n"), py::arg("classes"), py::arg("image_ids"),
        py::arg("per_image"), py::arg("valid"), py::arg("iou_threshold"), py::arg("score_threshold"),
        py::arg("max_det"), py::arg("local_indices"), py::arg("out"), py::arg("is_double"), py::arg("device"),
        py::arg("stream"));
  m.def("postprocess_workspace_bytes", &postprocess_workspace_bytes,
        "Device workspace bytes of postprocess_padded, from shapes and options only (no device access)",
        py::arg("batch"), py::arg("channels"), py::arg("anchors"), py::arg("conf_threshold"), py::arg("iou_threshold"),
        py::arg("classes"), py::arg("agnostic"), py::arg("multi_label"), py::arg("max_det"), py::arg("max_nms"),
        py::arg("is_double"), py::arg("device"));
  m.def("postprocess_status_size", &curata::cuda::postprocess_status_size, py::arg("batch"));
  m.def("postprocess_padded", &postprocess_padded,
        "YOLO-head post-processing on a device array with no host sync: writes dets (batch, max_det, 6), "
        "int32 counts (batch,) (-1 = invalid input) and the int64 status used by postprocess_fetch",
        py::arg("pred"), py::arg("batch"), py::arg("channels"), py::arg("anchors"), py::arg("conf_threshold"),
        py::arg("iou_threshold"), py::arg("classes"), py::arg("agnostic"), py::arg("multi_label"), py::arg("max_det"),
        py::arg("max_nms"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("dets"), py::arg("counts"),
        py::arg("status"), py::arg("is_double"), py::arg("device"), py::arg("stream"));
  m.def("postprocess_fetch", &postprocess_fetch,
        "One host sync: the counts of postprocess_padded; raises ValueError with the CPU's message on invalid input",
        py::arg("pred"), py::arg("batch"), py::arg("channels"), py::arg("anchors"), py::arg("counts"),
        py::arg("status"), py::arg("is_double"), py::arg("device"), py::arg("stream"));
  m.def("host_sync_count", &curata::cuda::host_sync_count,
        "Host waits made by curata's CUDA launchers since import (tests of the sync-free paths)");
}
