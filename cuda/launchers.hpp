// Host-callable entry points of the CUDA kernels. Plain C++ (no CUDA headers) so the pybind11
// glue compiles with the host compiler. Pointers are device pointers; `stream` is a cudaStream_t
// passed as an integer (0 = the legacy default stream). Errors throw std::runtime_error with the
// CUDA error string, or std::invalid_argument for bad input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace curata::cuda {

struct DeviceReport {
  int count = 0;
  std::string reason;  // why count is 0 ("" when devices exist)
};

// Never throws: no driver or no device is reported as count 0 with the reason.
DeviceReport device_report();
std::string device_name(int device);
int runtime_version();
int driver_version();

// All launchers below: `device` is the CUDA device the pointers live on (made current for the call,
// the caller's current device is restored after), `stream` the caller's stream (every kernel, copy
// and temporary allocation is ordered on it). `is_double` selects float64, else float32. Inputs are
// C-contiguous device arrays; optional inputs are 0 when absent. Bad values (non-finite boxes,
// x2 < x1, NaN scores) are detected on the device and raised as std::invalid_argument with the same
// message as the CPU library; the GIL is released by the bindings around each call.

// out (n x m) = pairwise IoU (or GIoU when `generalized`) of xyxy boxes a (n x 4) and b (m x 4),
// bit-identical to curata::pairwise_iou. One host sync (to raise on invalid boxes).
void pairwise_iou(bool is_double, std::uintptr_t a, int64_t n, std::uintptr_t b, int64_t m, std::uintptr_t out,
                  bool generalized, int device, std::uintptr_t stream);

struct NmsDeviceResult {
  int64_t n_keep = 0;                 // entries written to `out`
  std::vector<int64_t> image_ids;     // distinct image ids with candidates, ascending
  std::vector<int64_t> image_counts;  // kept boxes of each of those images
};

// Segmented greedy NMS with the semantics of curata::nms: groups are (image, class); the image of
// box i is image_ids[i], else i / per_image when per_image > 0, else 0; classes may be 0 (one class);
// valid (uint8, may be 0) masks padding out. Writes the kept indices (grouped by ascending image,
// each image by descending score, ties by index; at most max_det per image when max_det >= 0) to
// out (int64, capacity n). With `local_indices` an index is written as i % per_image (the position
// within its padded image). Two host syncs: one to size the suppression-mask workspace, one for the
// result count.
NmsDeviceResult batched_nms(bool is_double, std::uintptr_t boxes, std::uintptr_t scores, int64_t n,
                            std::uintptr_t classes, std::uintptr_t image_ids, int64_t per_image, std::uintptr_t valid,
                            double iou_threshold, bool use_score_threshold, double score_threshold, int64_t max_det,
                            bool local_indices, std::uintptr_t out, int device, std::uintptr_t stream);

struct DevicePostprocessOptions {
  double conf_threshold = 0.25;
  double iou_threshold = 0.45;
  std::vector<int64_t> allowed_classes;  // host values; used only when `filter_classes`
  bool filter_classes = false;
  bool agnostic = false;
  bool multi_label = false;
  int64_t max_det = 300;
  int64_t max_nms = 30000;
};

// YOLO head (batch, channels = 4 + n_classes, anchors), cxcywh boxes, to the padded detections of
// curata::postprocess, with no host sync: every step is a kernel or CUB call on `stream` whose
// sizes come from the shapes alone (see cuda/postprocess.cu for the pipeline and the bounds).
//
//   dets    (batch, max_det, 6) of the pred dtype: image b's detections [x1, y1, x2, y2, score,
//           class] by descending score in rows [0, counts[b]), zeros after
//   counts  (batch,) int32: detections of each image, or -1 when the image's input is invalid
//           (a NaN class score, or a selected candidate box that is not finite / has x2 < x1);
//           such an image's rows are all zeros
//   status  (postprocess_status_size(batch),) int64: what postprocess_fetch needs to raise the
//           CPU's error message for invalid input (first NaN, first invalid box, candidate counts)
//   workspace  postprocess_workspace_bytes(...) bytes of device memory from the caller (its
//           caching allocator), or 0 to take it from the stream-ordered pool (cudaMallocAsync),
//           released in stream order when the call returns
//
// Candidates are capped per image at min(max_nms, anchors * classes per anchor), keeping the best
// by descending score, ties to the lower (anchor, class) ordinal, exactly as the CPU's top-max_nms.
// Scores are compared with conf_threshold rounded to the pred dtype, as on the CPU.
// (The size includes CUB's temporary storage, which CUB computes from `device`'s properties: a host
// query, no launch and no sync.)
int64_t postprocess_workspace_bytes(bool is_double, int64_t batch, int64_t channels, int64_t anchors,
                                    const DevicePostprocessOptions& options, int device);
inline int64_t postprocess_status_size(int64_t batch) { return 1 + 2 * batch; }
void postprocess_padded(bool is_double, std::uintptr_t pred, int64_t batch, int64_t channels, int64_t anchors,
                        const DevicePostprocessOptions& options, std::uintptr_t workspace, int64_t workspace_bytes,
                        std::uintptr_t dets, std::uintptr_t counts, std::uintptr_t status, int device,
                        std::uintptr_t stream);

// The list form's single host sync: copies counts and status back, raises std::invalid_argument
// with the CPU's message when the input was invalid (one more wait, on that error path only, to
// read the offending box), and returns the counts.
std::vector<int64_t> postprocess_fetch(bool is_double, std::uintptr_t pred, int64_t batch, int64_t channels,
                                       int64_t anchors, std::uintptr_t counts, std::uintptr_t status, int device,
                                       std::uintptr_t stream);

// Host waits made by curata's launchers since the module was loaded (for tests of sync-free paths).
int64_t host_sync_count();

}  // namespace curata::cuda
