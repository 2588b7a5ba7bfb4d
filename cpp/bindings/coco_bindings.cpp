// pybind11 glue for COCO evaluation: the flat-array entry point, and a reader that unpacks lists of
// COCO annotation dicts into columns in one pass (the Python equivalent costs one interpreter
// round trip per field and annotation, which dominated the evaluation time at COCO scale).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "curata/coco_eval.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;
using curata_py::vector_to_numpy;

namespace {

// ------------------------------------------------------------------ record reader

enum class FieldKind { integer, number, box, flag };

struct Field {
  std::string key;
  FieldKind kind;
  bool has_default;
  double default_value;
  py::object key_object;  // interned str for fast dict lookups
};

std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

// Where a value sits, formatted only when an error is raised: "dt[12]['bbox'][2]".
struct Where {
  const std::string& name;
  size_t index;
  const std::string& key;
  int element = -1;
  std::string str() const {
    std::string s = name + "[" + std::to_string(index) + "]['" + key + "']";
    if (element >= 0) s += "[" + std::to_string(element) + "]";
    return s;
  }
};

[[noreturn]] void raise_type(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void raise_value(const std::string& msg) { throw py::value_error(msg); }

bool is_text(PyObject* o) { return PyUnicode_Check(o) || PyBytes_Check(o) || PyByteArray_Check(o); }

bool is_numpy_bool(PyObject* o);

// numpy's float16/float32 scalars (float64 is a Python float subclass), recognised by type name
// as numpy's bool is below.
bool is_numpy_small_float(PyObject* o) {
  const char* name = Py_TYPE(o)->tp_name;
  return std::strcmp(name, "numpy.float32") == 0 || std::strcmp(name, "numpy.float16") == 0;
}

// An id or flag given as a float (JSON written by tools that store every number as a float):
// accepted when it holds an integer in the int64 range, as the table form's int arrays and
// pycocotools (which uses the ids as dict keys, where 1.0 == 1) accept it.
int64_t read_integral_float(PyObject* o, const Where& at) {
  double v;
  if (PyFloat_Check(o)) {
    v = PyFloat_AS_DOUBLE(o);
  } else {
    PyObject* f = PyNumber_Float(o);
    if (!f) {
      PyErr_Clear();
      raise_type(at.str() + " must be an integer, got " + type_name(o));
    }
    v = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
  }
  if (!(std::isfinite(v) && v == std::trunc(v)))
    raise_type(at.str() + " must be an integer, got " + type_name(o) + " " + py::str(o).cast<std::string>());
  // [-2**63, 2**63) exactly: the cast of anything outside is undefined.
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
    raise_value(at.str() + " must fit in a 64-bit integer");
  return static_cast<int64_t>(v);
}

int64_t read_integer(PyObject* o, const Where& at) {
  PyObject* as_long = nullptr;
  if (PyFloat_Check(o) || is_numpy_small_float(o)) {
    return read_integral_float(o, at);
  } else if (PyLong_Check(o)) {
    as_long = o;
    Py_INCREF(as_long);
  } else if (!PyFloat_Check(o) && !is_text(o) && PyIndex_Check(o)) {
    as_long = PyNumber_Index(o);  // numpy integer scalars
    if (!as_long) {
      PyErr_Clear();
      raise_type(at.str() + " must be an integer, got " + type_name(o));
    }
  } else {
    raise_type(at.str() + " must be an integer, got " + type_name(o));
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(as_long, &overflow);
  Py_DECREF(as_long);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    raise_value(at.str() + " must fit in a 64-bit integer");
  }
  return static_cast<int64_t>(v);
}


double read_number(PyObject* o, const Where& at) {
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  // A bool is an int to Python, but no score, coordinate or area: the table form rejects bool
  // arrays too, and pycocotools crashes on bool scores (it negates them to sort).
  if (PyBool_Check(o) || is_numpy_bool(o)) raise_type(at.str() + " must be a number, got " + type_name(o));
  if (PyLong_Check(o)) {
    const double v = PyLong_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      raise_value(at.str() + " is too large for a float64");
    }
    return v;
  }
  if (!is_text(o) && !PyComplex_Check(o)) {
    PyNumberMethods* nb = Py_TYPE(o)->tp_as_number;
    if (nb && (nb->nb_float || nb->nb_index)) {  // numpy float32/int scalars, Decimal, ...
      PyObject* f = PyNumber_Float(o);
      if (f) {
        const double v = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
        return v;
      }
      PyErr_Clear();
    }
  }
  raise_type(at.str() + " must be a number, got " + type_name(o));
}

void read_box(PyObject* o, const Where& at, double* out) {
  if (is_text(o) || PyDict_Check(o) || !PySequence_Check(o)) {
    raise_type(at.str() + " must be a list of 4 numbers [x, y, w, h], got " + type_name(o));
  }
  PyObject* seq = PySequence_Fast(o, "");
  if (!seq) {
    PyErr_Clear();
    raise_type(at.str() + " must be a list of 4 numbers [x, y, w, h], got " + type_name(o));
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n != 4) {
    Py_DECREF(seq);
    raise_value(at.str() + " must be 4 numbers [x, y, w, h], got " + std::to_string(n));
  }
  PyObject** items = PySequence_Fast_ITEMS(seq);
  try {
    for (int c = 0; c < 4; ++c) out[c] = read_number(items[c], Where{at.name, at.index, at.key, c});
  } catch (...) {
    Py_DECREF(seq);
    throw;
  }
  Py_DECREF(seq);
}

// numpy's bool scalar (no __index__ since numpy 2), recognised by its type name: a cached lookup
// of numpy.bool_ would need a function-local static initialised under the GIL, which can deadlock
// when another thread holds the static's guard while the import runs Python code.
bool is_numpy_bool(PyObject* o) {
  const char* name = Py_TYPE(o)->tp_name;
  return std::strcmp(name, "numpy.bool") == 0 || std::strcmp(name, "numpy.bool_") == 0;
}

uint8_t read_flag(PyObject* o, const Where& at) {
  // np.bool_ flags come from annotations built out of numpy/pandas columns; like Python's bool
  // they mean 0/1.
  if (is_numpy_bool(o)) return static_cast<uint8_t>(PyObject_IsTrue(o) == 1);
  if (PyFloat_Check(o) || is_numpy_small_float(o)) {  // 0.0 / 1.0, as ids accept integral floats
    PyObject* f = PyNumber_Float(o);
    if (!f) throw py::error_already_set();
    const double v = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
    if (v == 0.0 || v == 1.0) return static_cast<uint8_t>(v);
    raise_type(at.str() + " must be 0 or 1, got " + type_name(o) + " " + py::str(o).cast<std::string>());
  }
  if (is_text(o) || !(PyLong_Check(o) || PyIndex_Check(o))) {
    raise_type(at.str() + " must be 0 or 1, got " + type_name(o));
  }
  const int64_t v = read_integer(o, at);
  if (v != 0 && v != 1) raise_value(at.str() + " must be 0 or 1, got " + std::to_string(v));
  return static_cast<uint8_t>(v);
}

// Reads the named fields of every dict in `records` into columns: integer -> int64 (n,),
// number -> float64 (n,), box -> float64 (n, 4), flag -> uint8 (n,). Fields with a default may be
// absent. Errors name the record and field: "dt[12]['bbox'] must be 4 numbers [x, y, w, h], got 3".
py::list read_records(py::handle records, const std::string& name, const std::vector<py::tuple>& spec) {
  if (!PyList_Check(records.ptr()) && !PyTuple_Check(records.ptr())) {
    raise_type(name + " must be a list of dicts, got " + type_name(records.ptr()));
  }
  std::vector<Field> fields;
  for (const py::tuple& t : spec) {
    Field f;
    f.key = t[0].cast<std::string>();
    const std::string kind = t[1].cast<std::string>();
    if (kind == "int") f.kind = FieldKind::integer;
    else if (kind == "float") f.kind = FieldKind::number;
    else if (kind == "box") f.kind = FieldKind::box;
    else if (kind == "flag") f.kind = FieldKind::flag;
    else throw std::invalid_argument("read_records: unknown field kind " + kind);
    f.has_default = !t[2].is_none();
    f.default_value = f.has_default ? t[2].cast<double>() : 0.0;
    PyObject* key = PyUnicode_FromString(f.key.c_str());
    if (!key) throw py::error_already_set();
    PyUnicode_InternInPlace(&key);
    f.key_object = py::reinterpret_steal<py::object>(key);
    fields.push_back(std::move(f));
  }
  PyObject* seq = records.ptr();
  const size_t n = static_cast<size_t>(PySequence_Fast_GET_SIZE(seq));

  std::vector<py::array> columns;
  std::vector<void*> data;
  for (const Field& f : fields) {
    py::array col;
    switch (f.kind) {
      case FieldKind::integer: col = py::array_t<int64_t>(static_cast<py::ssize_t>(n)); break;
      case FieldKind::number: col = py::array_t<double>(static_cast<py::ssize_t>(n)); break;
      case FieldKind::box: col = py::array_t<double>({static_cast<py::ssize_t>(n), py::ssize_t(4)}); break;
      case FieldKind::flag: col = py::array_t<uint8_t>(static_cast<py::ssize_t>(n)); break;
    }
    data.push_back(col.mutable_data());
    columns.push_back(std::move(col));
  }
  for (size_t i = 0; i < n; ++i) {
    // Strong references throughout: a value's __float__ may run arbitrary code.
    if (static_cast<size_t>(PySequence_Fast_GET_SIZE(seq)) != n) raise_value(name + " changed size while being read");
    const py::object rec_ref = py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(seq, i));
    PyObject* rec = rec_ref.ptr();
    if (!PyDict_Check(rec)) raise_type(name + "[" + std::to_string(i) + "] must be a dict, got " + type_name(rec));
    for (size_t j = 0; j < fields.size(); ++j) {
      const Field& f = fields[j];
      PyObject* found = PyDict_GetItemWithError(rec, f.key_object.ptr());  // borrowed
      if (!found) {
        if (PyErr_Occurred()) throw py::error_already_set();
        if (!f.has_default) raise_value(name + "[" + std::to_string(i) + "] has no '" + f.key + "'");
      }
      const py::object value_ref = py::reinterpret_borrow<py::object>(found);
      PyObject* v = value_ref.ptr();
      switch (f.kind) {
        case FieldKind::integer:
          static_cast<int64_t*>(data[j])[i] =
              v ? read_integer(v, Where{name, i, f.key}) : static_cast<int64_t>(f.default_value);
          break;
        case FieldKind::number:
          static_cast<double*>(data[j])[i] = v ? read_number(v, Where{name, i, f.key}) : f.default_value;
          break;
        case FieldKind::box: {
          double* out = static_cast<double*>(data[j]) + 4 * i;
          if (v) read_box(v, Where{name, i, f.key}, out);
          else out[0] = out[1] = out[2] = out[3] = f.default_value;
          break;
        }
        case FieldKind::flag:
          static_cast<uint8_t*>(data[j])[i] =
              v ? read_flag(v, Where{name, i, f.key}) : static_cast<uint8_t>(f.default_value != 0.0);
          break;
      }
    }
  }
  py::list result;
  for (auto& c : columns) result.append(c);
  return result;
}

// ------------------------------------------------------------------ evaluation

template <class T> const T* checked(const carray<T>& a, int64_t rows, int64_t cols, const char* name) {
  const bool ok = cols == 0 ? (a.ndim() == 1 && a.shape(0) == rows)
                            : (a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols);
  if (!ok) throw std::invalid_argument(std::string("coco_eval: ") + name + " has the wrong shape");
  return a.data();
}

py::tuple coco_eval(const carray<int64_t>& gt_image, const carray<int64_t>& gt_category, const carray<double>& gt_box,
                    const carray<double>& gt_area, const carray<uint8_t>& gt_crowd, const carray<uint8_t>& gt_id_zero,
                    const carray<int64_t>& dt_image, const carray<int64_t>& dt_category,
                    const carray<double>& dt_box, const carray<double>& dt_score, int64_t n_images,
                    int64_t n_categories, const carray<double>& iou_thresholds,
                    const carray<double>& recall_thresholds, const carray<double>& area_ranges,
                    const carray<int64_t>& max_dets) {
  curata::CocoEvalInput in;
  in.n_gt = gt_image.ndim() == 1 ? gt_image.shape(0) : -1;
  in.gt_image = checked(gt_image, in.n_gt, 0, "gt_image");
  in.gt_category = checked(gt_category, in.n_gt, 0, "gt_category");
  in.gt_box = checked(gt_box, in.n_gt, 4, "gt_box");
  in.gt_area = checked(gt_area, in.n_gt, 0, "gt_area");
  in.gt_crowd = checked(gt_crowd, in.n_gt, 0, "gt_crowd");
  in.gt_id_zero = checked(gt_id_zero, in.n_gt, 0, "gt_id_zero");
  in.n_dt = dt_image.ndim() == 1 ? dt_image.shape(0) : -1;
  in.dt_image = checked(dt_image, in.n_dt, 0, "dt_image");
  in.dt_category = checked(dt_category, in.n_dt, 0, "dt_category");
  in.dt_box = checked(dt_box, in.n_dt, 4, "dt_box");
  in.dt_score = checked(dt_score, in.n_dt, 0, "dt_score");
  in.n_images = n_images;
  in.n_categories = n_categories;
  in.n_iou = iou_thresholds.ndim() == 1 ? iou_thresholds.shape(0) : -1;
  in.iou_thresholds = checked(iou_thresholds, in.n_iou, 0, "iou_thresholds");
  in.n_recall = recall_thresholds.ndim() == 1 ? recall_thresholds.shape(0) : -1;
  in.recall_thresholds = checked(recall_thresholds, in.n_recall, 0, "recall_thresholds");
  in.n_areas = area_ranges.ndim() == 2 ? area_ranges.shape(0) : -1;
  in.area_ranges = checked(area_ranges, in.n_areas, 2, "area_ranges");
  in.n_max_dets = max_dets.ndim() == 1 ? max_dets.shape(0) : -1;
  in.max_dets = checked(max_dets, in.n_max_dets, 0, "max_dets");
  curata::CocoEvalOutput out;
  {
    py::gil_scoped_release release;
    curata::coco_eval(in, out);
  }
  const auto T = static_cast<py::ssize_t>(in.n_iou), R = static_cast<py::ssize_t>(in.n_recall),
             K = static_cast<py::ssize_t>(in.n_categories), A = static_cast<py::ssize_t>(in.n_areas),
             M = static_cast<py::ssize_t>(in.n_max_dets);
  return py::make_tuple(vector_to_numpy(std::move(out.precision), {T, R, K, A, M}),
                        vector_to_numpy(std::move(out.recall), {T, K, A, M}),
                        vector_to_numpy(std::move(out.scores), {T, R, K, A, M}));
}

}  // namespace

namespace curata_py {

void bind_coco_eval(py::module_& m) {
  m.def("coco_eval", &coco_eval, py::arg("gt_image"), py::arg("gt_category"), py::arg("gt_box"), py::arg("gt_area"),
        py::arg("gt_crowd"), py::arg("gt_id_zero"), py::arg("dt_image"), py::arg("dt_category"), py::arg("dt_box"),
        py::arg("dt_score"), py::arg("n_images"), py::arg("n_categories"), py::arg("iou_thresholds"),
        py::arg("recall_thresholds"), py::arg("area_ranges"), py::arg("max_dets"));
  m.def("read_records", &read_records, py::arg("records"), py::arg("name"), py::arg("spec"));
}

}  // namespace curata_py
