// pybind11 glue for curata.drift: (rows, columns) C-contiguous float32/float64 arrays in, dicts of
// (columns,) arrays out. Shapes and dtypes are checked by python/curata/drift.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "curata/drift.hpp"
#include "curata/drift_mmd.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;
using curata_py::vector_to_numpy;
namespace dr = curata::drift;

namespace {

template <class V> py::array as_numpy(V&& v) {
  const auto n = static_cast<py::ssize_t>(v.size());
  return vector_to_numpy(std::move(v), {n});
}

void add_counts(py::dict& out, dr::ColumnSummaries& s) {
  out["n_ref"] = as_numpy(std::move(s.n_ref));
  out["n_cur"] = as_numpy(std::move(s.n_cur));
  out["nan_ref"] = as_numpy(std::move(s.nan_ref));
  out["nan_cur"] = as_numpy(std::move(s.nan_cur));
}

template <class T> void check_pair(const carray<T>& ref, const carray<T>& cur) {
  if (ref.ndim() != 2 || cur.ndim() != 2 || ref.shape(1) != cur.shape(1))
    throw std::invalid_argument("ref and cur must be 2-D with the same number of columns");
}

py::dict result_dict(dr::TestResult&& r, bool ks = false) {
  py::dict out;
  out["statistic"] = as_numpy(std::move(r.statistic));
  out["pvalue"] = as_numpy(std::move(r.pvalue));
  out["exact"] = as_numpy(std::move(r.exact));
  if (ks) {
    out["location"] = as_numpy(std::move(r.location));
    out["sign"] = as_numpy(std::move(r.sign));
    out["fell_back"] = as_numpy(std::move(r.fell_back));
  }
  add_counts(out, r.summaries);
  return out;
}

template <class T>
py::dict ks(const carray<T>& ref, const carray<T>& cur, int alternative, int method, int nan_policy) {
  check_pair(ref, cur);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::ks_2samp(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1),
                     static_cast<dr::Alternative>(alternative), static_cast<dr::PMethod>(method),
                     static_cast<dr::NanPolicy>(nan_policy));
  }
  return result_dict(std::move(r), true);
}

template <class T> py::dict cvm(const carray<T>& ref, const carray<T>& cur, int method, int nan_policy) {
  check_pair(ref, cur);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::cvm_2samp(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1),
                      static_cast<dr::PMethod>(method), static_cast<dr::NanPolicy>(nan_policy));
  }
  return result_dict(std::move(r));
}

template <class T>
py::dict mwu(const carray<T>& ref, const carray<T>& cur, int alternative, int method, bool continuity,
             int nan_policy) {
  check_pair(ref, cur);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::mannwhitneyu(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1),
                         static_cast<dr::Alternative>(alternative), static_cast<dr::PMethod>(method), continuity,
                         static_cast<dr::NanPolicy>(nan_policy));
  }
  return result_dict(std::move(r));
}

template <class T> py::dict distances(const carray<T>& ref, const carray<T>& cur, unsigned what, int nan_policy) {
  check_pair(ref, cur);
  what &= (dr::kWasserstein | dr::kEnergy);
  dr::ColumnSummaries s;
  {
    py::gil_scoped_release release;
    s = dr::summarize(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1), what,
                      static_cast<dr::NanPolicy>(nan_policy), 1,
                      what == dr::kEnergy ? "energy" : "wasserstein");
  }
  py::dict out;
  if (what & dr::kWasserstein) out["wasserstein"] = as_numpy(std::move(s.wasserstein));
  if (what & dr::kEnergy) out["energy"] = as_numpy(std::move(s.energy));
  add_counts(out, s);
  return out;
}

template <class T>
py::dict quantile_bins(const carray<T>& ref, const carray<T>& cur, int64_t n_bins, int nan_policy) {
  check_pair(ref, cur);
  dr::BinnedCounts b;
  {
    py::gil_scoped_release release;
    b = dr::quantile_bin_counts(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1), n_bins,
                                static_cast<dr::NanPolicy>(nan_policy));
  }
  const auto D = static_cast<py::ssize_t>(b.columns), B = static_cast<py::ssize_t>(b.bins);
  py::dict out;
  out["edges"] = vector_to_numpy(std::move(b.edges), {D, B - 1});
  out["ref_counts"] = vector_to_numpy(std::move(b.ref_counts), {D, B});
  out["cur_counts"] = vector_to_numpy(std::move(b.cur_counts), {D, B});
  out["n_ref"] = as_numpy(std::move(b.n_ref));
  out["n_cur"] = as_numpy(std::move(b.n_cur));
  out["nan_ref"] = as_numpy(std::move(b.nan_ref));
  out["nan_cur"] = as_numpy(std::move(b.nan_cur));
  return out;
}

// Elementwise null-distribution helpers, exposed for tests against scipy.
py::array_t<double> kstwo_sf(const carray<int64_t>& n, const carray<double>& d) {
  if (n.size() != d.size()) throw std::invalid_argument("n and d must have the same size");
  py::array_t<double> out(d.size());
  const int64_t* pn = n.data();
  const double* pd = d.data();
  double* po = out.mutable_data();
  const py::ssize_t size = d.size();
  {
    py::gil_scoped_release release;
    for (py::ssize_t i = 0; i < size; ++i) po[i] = dr::kstwo_sf(pn[i], pd[i]);
  }
  return out;
}

py::array_t<double> smirnov_sf(const carray<int64_t>& n, const carray<double>& d) {
  if (n.size() != d.size()) throw std::invalid_argument("n and d must have the same size");
  py::array_t<double> out(d.size());
  for (py::ssize_t i = 0; i < d.size(); ++i) out.mutable_data()[i] = dr::smirnov_sf(n.data()[i], d.data()[i]);
  return out;
}

template <class T>
py::array mmd_stats(const carray<T>& ref, const carray<T>& cur, const carray<uint8_t>& labels, double sigma) {
  check_pair(ref, cur);
  if (labels.ndim() != 2 || labels.shape(0) != ref.shape(0) + cur.shape(0))
    throw std::invalid_argument("labels must have shape (n_ref + n_cur, B)");
  std::vector<double> s;
  {
    py::gil_scoped_release release;
    s = dr::mmd_permutation_statistics(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1),
                                       labels.data(), labels.shape(1), sigma);
  }
  return as_numpy(std::move(s));
}

template <class T> void bind_typed(py::module_& m) {
  m.def("drift_mmd", &mmd_stats<T>, py::arg("ref"), py::arg("cur"), py::arg("labels"), py::arg("sigma"));
  m.def("drift_ks", &ks<T>, py::arg("ref"), py::arg("cur"), py::arg("alternative"), py::arg("method"),
        py::arg("nan_policy"));
  m.def("drift_cvm", &cvm<T>, py::arg("ref"), py::arg("cur"), py::arg("method"), py::arg("nan_policy"));
  m.def("drift_mwu", &mwu<T>, py::arg("ref"), py::arg("cur"), py::arg("alternative"), py::arg("method"),
        py::arg("continuity"), py::arg("nan_policy"));
  m.def("drift_distances", &distances<T>, py::arg("ref"), py::arg("cur"), py::arg("what"), py::arg("nan_policy"));
  m.def("drift_quantile_bins", &quantile_bins<T>, py::arg("ref"), py::arg("cur"), py::arg("n_bins"),
        py::arg("nan_policy"));
}

}  // namespace

namespace curata_py {

void bind_drift(py::module_& m) {
  bind_typed<float>(m);
  bind_typed<double>(m);
  m.def("drift_kstwo_sf", &kstwo_sf, py::arg("n"), py::arg("d"));
  m.def("drift_exp_nonpositive", &dr::exp_nonpositive, py::arg("x"));
  m.def("drift_smirnov_sf", &smirnov_sf, py::arg("n"), py::arg("d"));
  m.def("drift_ks_exact_sf", [](int64_t n1, int64_t n2, int64_t h, int alternative) {
    double p = 0.0;
    const bool ok = dr::ks_2samp_exact_sf(n1, n2, h, static_cast<dr::Alternative>(alternative), &p);
    return py::make_tuple(ok, p);
  }, py::arg("n1"), py::arg("n2"), py::arg("h"), py::arg("alternative"));
}

}  // namespace curata_py
