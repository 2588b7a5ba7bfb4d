// pybind11 glue for curata._core: unpack arrays, release the GIL, call the core library.
// Inputs arrive already validated for shape and dtype by the Python ops layer; value checks
// (finite boxes, thresholds) happen in the library and surface as ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "curata/boxes.hpp"
#include "curata/parallel.hpp"
#include "curata/scores.hpp"
#include "curata/simd.hpp"
#include "ensemble_bindings.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;
using curata_py::optional_data;
using curata_py::vector_to_numpy;

namespace curata_py {
void bind_coco_eval(py::module_& m);  // coco_bindings.cpp
void bind_drift(py::module_& m);      // drift_bindings.cpp
void bind_search(py::module_& m);     // search_bindings.cpp
void bind_io(py::module_& m);         // io_bindings.cpp
void bind_cluster(py::module_& m);    // cluster_bindings.cpp
}

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = CURATA_VERSION;
  info["compiler"] = CURATA_COMPILER_STR;
#ifdef CURATA_HAVE_OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["cuda_built"] = static_cast<bool>(CURATA_BUILT_CUDA);
  // kNN tiles use curata's own register-blocked kernel (cpp/src/knn.cpp), not a BLAS.
  info["blas"] = py::none();
  return info;
}

template <class T> py::array_t<T> convert(const carray<T>& boxes, int src, int dst) {
  const int64_t n = boxes.shape(0);
  py::array_t<T> out({static_cast<py::ssize_t>(n), py::ssize_t(4)});
  const T* in = boxes.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::convert_boxes(in, o, n, static_cast<curata::BoxFormat>(src), static_cast<curata::BoxFormat>(dst));
  }
  return out;
}

template <class T> py::array_t<T> pairwise_iou(const carray<T>& a, const carray<T>& b, bool generalized) {
  const int64_t n = a.shape(0), m = b.shape(0);
  py::array_t<T> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)});
  const T* pa = a.data();
  const T* pb = b.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::pairwise_iou(pa, n, pb, m, o, generalized);
  }
  return out;
}

template <class T>
py::tuple nms(const carray<T>& boxes, const carray<T>& scores, const std::optional<carray<int64_t>>& classes,
              const std::optional<carray<int64_t>>& image_ids, int64_t per_image,
              const std::optional<carray<uint8_t>>& valid, double iou_threshold,
              std::optional<double> score_threshold, int64_t max_det) {
  curata::NmsGroups groups;
  groups.classes = optional_data(classes);
  groups.image_ids = optional_data(image_ids);
  groups.per_image = per_image;
  groups.valid = optional_data(valid);
  curata::NmsOptions options;
  options.iou_threshold = iou_threshold;
  options.use_score_threshold = score_threshold.has_value();
  options.score_threshold = score_threshold.value_or(0.0);
  options.max_det = max_det;
  const T* pb = boxes.data();
  const T* ps = scores.data();
  const int64_t n = scores.shape(0);
  curata::NmsResult r;
  {
    py::gil_scoped_release release;
    r = curata::nms(pb, ps, n, groups, options);
  }
  const auto n_keep = static_cast<py::ssize_t>(r.keep.size());
  const auto n_images = static_cast<py::ssize_t>(r.image_ids.size());
  return py::make_tuple(vector_to_numpy(std::move(r.keep), {n_keep}),
                        vector_to_numpy(std::move(r.image_ids), {n_images}),
                        vector_to_numpy(std::move(r.image_counts), {n_images}));
}

template <class T>
py::tuple postprocess(const carray<T>& pred, double conf_threshold, double iou_threshold,
                      const std::optional<carray<int64_t>>& classes, bool agnostic, bool multi_label, int64_t max_det,
                      int64_t max_nms) {
  curata::PostprocessOptions o;
  o.conf_threshold = conf_threshold;
  o.iou_threshold = iou_threshold;
  o.classes = optional_data(classes);
  o.n_allowed_classes = classes ? classes->shape(0) : 0;
  o.agnostic = agnostic;
  o.multi_label = multi_label;
  o.max_det = max_det;
  o.max_nms = max_nms;
  const int64_t batch = pred.shape(0), channels = pred.shape(1), anchors = pred.shape(2);
  const T* p = pred.data();
  std::vector<T> rows;
  std::vector<int64_t> counts, source_anchors;
  {
    py::gil_scoped_release release;
    curata::postprocess(p, batch, channels, anchors, o, rows, counts, source_anchors);
  }
  const auto total = static_cast<py::ssize_t>(source_anchors.size());
  return py::make_tuple(vector_to_numpy(std::move(rows), {total, py::ssize_t(6)}),
                        vector_to_numpy(std::move(counts), {static_cast<py::ssize_t>(batch)}),
                        vector_to_numpy(std::move(source_anchors), {total}));
}

// ---------------------------------------------------------------- scores
// Shapes come validated from python/curata/scores.py (rows x cols, C-contiguous); `name` is the
// user's argument name for error messages.
template <class T> py::array_t<T> softmax(const carray<T>& x, const std::string& name) {
  const int64_t rows = x.shape(0), cols = x.shape(1);
  py::array_t<T> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  const T* px = x.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::softmax(px, o, rows, cols, name.c_str());
  }
  return out;
}

template <class T> py::array_t<T> sigmoid(const carray<T>& x, const std::string& name) {
  const int64_t n = x.shape(0);
  py::array_t<T> out(static_cast<py::ssize_t>(n));
  const T* px = x.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::sigmoid(px, o, n, name.c_str());
  }
  return out;
}

template <class T>
using RowScore = void (*)(const T*, T*, int64_t, int64_t, const curata::ProbabilityCheck&);

template <class T, RowScore<T> Score>
py::array_t<T> row_score(const carray<T>& p, bool check, double tolerance, const std::string& name) {
  const int64_t rows = p.shape(0), cols = p.shape(1);
  py::array_t<T> out(static_cast<py::ssize_t>(rows));
  const T* pp = p.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    Score(pp, o, rows, cols, curata::ProbabilityCheck{check, tolerance, name.c_str()});
  }
  return out;
}

template <class T> py::array_t<T> bald(const carray<T>& p, bool check, double tolerance, const std::string& name) {
  const int64_t samples = p.shape(0), rows = p.shape(1), cols = p.shape(2);
  py::array_t<T> out(static_cast<py::ssize_t>(rows));
  const T* pp = p.data();
  T* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::bald(pp, o, samples, rows, cols, curata::ProbabilityCheck{check, tolerance, name.c_str()});
  }
  return out;
}

template <class T>
py::tuple aggregate(const carray<T>& values, const carray<int64_t>& groups, int64_t n_groups, int how, double fill_value) {
  const int64_t n = values.shape(0);
  if (groups.shape(0) != n)
    throw std::invalid_argument("groups must have length " + std::to_string(n) + ", got " +
                                std::to_string(groups.shape(0)));
  if (n_groups < 0) throw std::invalid_argument("n_groups must be >= 0, got " + std::to_string(n_groups));
  py::array_t<T> out(static_cast<py::ssize_t>(n_groups));
  py::array_t<int64_t> counts(static_cast<py::ssize_t>(n_groups));
  const T* pv = values.data();
  const int64_t* pg = groups.data();
  T* o = out.mutable_data();
  int64_t* c = counts.mutable_data();
  {
    py::gil_scoped_release release;
    curata::aggregate(pv, pg, n, n_groups, static_cast<curata::Reduction>(how), static_cast<T>(fill_value), o, c);
  }
  return py::make_tuple(out, counts);
}

template <class T> void bind_typed(py::module_& m) {
  m.def("convert_boxes", &convert<T>, py::arg("boxes"), py::arg("src"), py::arg("dst"));
  m.def("pairwise_iou", &pairwise_iou<T>, py::arg("a"), py::arg("b"), py::arg("generalized"));
  m.def("nms", &nms<T>, py::arg("boxes"), py::arg("scores"), py::arg("classes"), py::arg("image_ids"),
        py::arg("per_image"), py::arg("valid"), py::arg("iou_threshold"), py::arg("score_threshold"),
        py::arg("max_det"));
  m.def("postprocess", &postprocess<T>, py::arg("pred"), py::arg("conf_threshold"), py::arg("iou_threshold"),
        py::arg("classes"), py::arg("agnostic"), py::arg("multi_label"), py::arg("max_det"), py::arg("max_nms"));
  m.def("softmax", &softmax<T>, py::arg("x"), py::arg("name"));
  m.def("sigmoid", &sigmoid<T>, py::arg("x"), py::arg("name"));
  m.def("entropy", &row_score<T, curata::entropy<T>>, py::arg("p"), py::arg("check"), py::arg("tolerance"),
        py::arg("name"));
  m.def("least_confidence", &row_score<T, curata::least_confidence<T>>, py::arg("p"), py::arg("check"),
        py::arg("tolerance"), py::arg("name"));
  m.def("margin", &row_score<T, curata::margin<T>>, py::arg("p"), py::arg("check"), py::arg("tolerance"),
        py::arg("name"));
  m.def("bald", &bald<T>, py::arg("p"), py::arg("check"), py::arg("tolerance"), py::arg("name"));
  m.def("aggregate", &aggregate<T>, py::arg("values"), py::arg("groups"), py::arg("n_groups"), py::arg("how"),
        py::arg("fill_value"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "curata core library (CPU): boxes, NMS, post-processing, uncertainty scores";
  m.def("build_info", &build_info);
  m.def("num_threads", &curata::num_threads);
  m.def("set_num_threads", &curata::set_num_threads, py::arg("n"));
  m.attr("max_threads") = curata::kMaxThreads;
  curata::num_threads();  // read CURATA_NUM_THREADS now: set_num_threads(0) restores the import-time value
  m.def("parse_thread_count", [](const std::string& text) { return curata::parse_thread_count(text.c_str()); },
        py::arg("text"));
  // Testing hook: run the portable twins of the hand-written AVX-512 loops (returns the previous
  // setting).
  m.def("_set_hand_kernels", &curata::simd::set_hand_kernels, py::arg("enabled"));
  bind_typed<float>(m);
  bind_typed<double>(m);
  curata_py::bind_coco_eval(m);
  curata_py::bind_ensemble(m);
  curata_py::bind_drift(m);
  curata_py::bind_search(m);
  curata_py::bind_io(m);
  curata_py::bind_cluster(m);
}
