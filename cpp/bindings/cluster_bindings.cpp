// pybind11 glue for the k-means Lloyd step (python/curata/_cluster.py): C-contiguous arrays in,
// labels / distances / sums out. Shapes and finiteness are checked by the Python layer; the
// checks here only keep the library from reading or writing out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "curata/cluster.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;

namespace {

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T> void check_rows_centroids(const carray<T>& x, const carray<T>& c, const carray<double>& sq) {
  if (x.ndim() != 2) throw std::invalid_argument("x must have shape (N, D), got " + shape_str(x));
  if (c.ndim() != 2 || c.shape(1) != x.shape(1))
    throw std::invalid_argument("centroids must have shape (k, " + std::to_string(x.shape(1)) + "), got " +
                                shape_str(c));
  if (sq.ndim() != 1 || sq.shape(0) != x.shape(0))
    throw std::invalid_argument("sq must have shape (" + std::to_string(x.shape(0)) + ",), got " + shape_str(sq));
  if (c.shape(0) < 1) throw std::invalid_argument("centroids must have at least one row, got " + shape_str(c));
}

py::tuple assign_f32(const carray<float>& x, const carray<float>& c, const carray<double>& sq) {
  check_rows_centroids(x, c, sq);
  const int64_t n = x.shape(0), d = x.shape(1), k = c.shape(0);
  py::array_t<int64_t> labels(static_cast<py::ssize_t>(n));
  py::array_t<double> dist(static_cast<py::ssize_t>(n));
  const float *px = x.data(), *pc = c.data();
  const double* ps = sq.data();
  int64_t* pl = labels.mutable_data();
  double* pd = dist.mutable_data();
  {
    py::gil_scoped_release release;
    curata::cluster::nearest_centroids_f32(px, n, d, pc, k, ps, pl, pd);
  }
  return py::make_tuple(labels, dist);
}

py::tuple assign_f64(const carray<double>& x, const carray<double>& c, const carray<double>& sq,
                     const carray<double>& dots) {
  check_rows_centroids(x, c, sq);
  const int64_t n = x.shape(0), d = x.shape(1), k = c.shape(0);
  if (dots.ndim() != 2 || dots.shape(0) != k || dots.shape(1) != n)
    throw std::invalid_argument("dots must have shape (" + std::to_string(k) + ", " + std::to_string(n) + "), got " +
                                shape_str(dots));
  py::array_t<int64_t> labels(static_cast<py::ssize_t>(n));
  py::array_t<double> dist(static_cast<py::ssize_t>(n));
  const double *px = x.data(), *pc = c.data(), *ps = sq.data(), *pg = dots.data();
  int64_t* pl = labels.mutable_data();
  double* pd = dist.mutable_data();
  {
    py::gil_scoped_release release;
    curata::cluster::nearest_centroids_f64(px, n, d, pc, k, ps, pg, pl, pd);
  }
  return py::make_tuple(labels, dist);
}

template <class T> py::array_t<double> sums(const carray<T>& x, const carray<int64_t>& labels, int64_t k) {
  if (x.ndim() != 2) throw std::invalid_argument("x must have shape (N, D), got " + shape_str(x));
  if (labels.ndim() != 1 || labels.shape(0) != x.shape(0))
    throw std::invalid_argument("labels must have shape (" + std::to_string(x.shape(0)) + ",), got " +
                                shape_str(labels));
  if (k < 1) throw std::invalid_argument("k must be >= 1, got " + std::to_string(k));
  const int64_t n = x.shape(0), d = x.shape(1);
  py::array_t<double> out({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(d)});
  const T* px = x.data();
  const int64_t* pl = labels.data();
  double* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::cluster::cluster_sums(px, n, d, pl, k, po);
  }
  return out;
}

}  // namespace

namespace curata_py {
void bind_cluster(py::module_& m) {
  m.def("kmeans_assign_f32", &assign_f32, py::arg("x"), py::arg("centroids"), py::arg("sq"));
  m.def("kmeans_assign_f64", &assign_f64, py::arg("x"), py::arg("centroids"), py::arg("sq"), py::arg("dots"));
  m.def("cluster_sums", &sums<float>, py::arg("x"), py::arg("labels"), py::arg("k"));
  m.def("cluster_sums", &sums<double>, py::arg("x"), py::arg("labels"), py::arg("k"));
}
}  // namespace curata_py
