// pybind11 glue for curata.drift: (rows, columns) C-contiguous float32/float64 arrays in, dicts of
// (columns,) arrays out. Shapes and dtypes are checked by python/curata/drift.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

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

py::dict summaries_dict(dr::ColumnSummaries& s, unsigned what) {
  py::dict out;
  if (what & dr::kKs) {
    out["gap_max"] = as_numpy(std::move(s.gap_max));
    out["gap_min"] = as_numpy(std::move(s.gap_min));
    out["gap_max_at"] = as_numpy(std::move(s.gap_max_at));
    out["gap_min_at"] = as_numpy(std::move(s.gap_min_at));
  }
  if (what & dr::kCvm) {
    out["cvm_u"] = as_numpy(std::move(s.cvm_u));
    out["cvm_u4_hi"] = as_numpy(std::move(s.cvm_u4_hi));
    out["cvm_u4_lo"] = as_numpy(std::move(s.cvm_u4_lo));
  }
  if (what & dr::kMwu) {
    out["mwu_u1"] = as_numpy(std::move(s.mwu_u1));
    out["mwu_tie_sum"] = as_numpy(std::move(s.mwu_tie_sum));
    out["mwu_ties"] = as_numpy(std::move(s.mwu_ties));
  }
  if (what & dr::kWasserstein) out["wasserstein"] = as_numpy(std::move(s.wasserstein));
  if (what & dr::kEnergy) out["energy"] = as_numpy(std::move(s.energy));
  add_counts(out, s);
  return out;
}

// All requested summaries of one sort per column (curata.drift.column_tests on host input).
template <class T>
py::dict summaries(const carray<T>& ref, const carray<T>& cur, unsigned what, int nan_policy, int64_t min_size,
                   const std::string& test) {
  check_pair(ref, cur);
  what &= (dr::kKs | dr::kCvm | dr::kMwu | dr::kWasserstein | dr::kEnergy);
  dr::ColumnSummaries s;
  {
    py::gil_scoped_release release;
    s = dr::summarize(ref.data(), ref.shape(0), cur.data(), cur.shape(0), ref.shape(1), what,
                      static_cast<dr::NanPolicy>(nan_policy), min_size, test.c_str());
  }
  return summaries_dict(s, what);
}

// Reference columns sorted once (curata.drift._SortedReference): keys (columns, rows), uint32 for
// float32 input and uint64 for float64, column j's first n[j] entries ascending; n and nan
// (columns,) int64.
template <class T> py::dict sort_columns(const carray<T>& x) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  dr::SortedColumns<dr::column_key_t<T>> c;
  {
    py::gil_scoped_release release;
    c = dr::sort_columns(x.data(), x.shape(0), x.shape(1));
  }
  py::dict out;
  const auto rows = static_cast<py::ssize_t>(c.rows), cols = static_cast<py::ssize_t>(c.columns);
  out["keys"] = vector_to_numpy(std::move(c.keys), {cols, rows});
  out["n"] = as_numpy(std::move(c.n));
  out["nan"] = as_numpy(std::move(c.nan));
  return out;
}

// drift_summaries with the reference given as sort_columns() output.
template <class T>
py::dict summaries_sorted(const carray<dr::column_key_t<T>>& keys, const carray<int64_t>& n_ref, const carray<int64_t>& nan_ref,
                          const carray<T>& cur, unsigned what, int nan_policy, int64_t min_size,
                          const std::string& test) {
  if (keys.ndim() != 2 || cur.ndim() != 2 || keys.shape(0) != cur.shape(1))
    throw std::invalid_argument("keys must be (D, n) and cur (m, D) with the same D");
  if (n_ref.ndim() != 1 || nan_ref.ndim() != 1 || n_ref.shape(0) != keys.shape(0) || nan_ref.shape(0) != keys.shape(0))
    throw std::invalid_argument("n_ref and nan_ref must have shape (D,)");
  what &= (dr::kKs | dr::kCvm | dr::kMwu | dr::kWasserstein | dr::kEnergy);
  dr::ColumnSummaries s;
  {
    py::gil_scoped_release release;
    s = dr::summarize_sorted(keys.data(), keys.shape(1), n_ref.data(), nan_ref.data(), cur.data(), cur.shape(0),
                             cur.shape(1), what, static_cast<dr::NanPolicy>(nan_policy), min_size, test.c_str());
  }
  return summaries_dict(s, what);
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

// Summaries computed outside the core (the torch device path), as a dict of (D,) arrays.
template <class T> std::vector<T> column_vector(const py::dict& d, const char* key, int64_t columns) {
  if (!d.contains(key)) throw std::invalid_argument(std::string("summaries lack '") + key + "'");
  const carray<T> a = py::cast<carray<T>>(d[key]);
  if (a.ndim() != 1 || a.shape(0) != columns)
    throw std::invalid_argument(std::string("summaries['") + key + "'] must have shape (" + std::to_string(columns) +
                                ",)");
  return std::vector<T>(a.data(), a.data() + columns);
}

dr::ColumnSummaries summaries_from(const py::dict& d, unsigned what, int64_t min_size) {
  dr::ColumnSummaries s;
  const carray<int64_t> n_ref = py::cast<carray<int64_t>>(d["n_ref"]);
  s.columns = n_ref.ndim() == 1 ? n_ref.shape(0) : -1;
  if (s.columns < 0) throw std::invalid_argument("summaries['n_ref'] must be 1-D");
  const int64_t D = s.columns;
  s.n_ref = column_vector<int64_t>(d, "n_ref", D);
  s.n_cur = column_vector<int64_t>(d, "n_cur", D);
  s.nan_ref = column_vector<int64_t>(d, "nan_ref", D);
  s.nan_cur = column_vector<int64_t>(d, "nan_cur", D);
  for (int64_t j = 0; j < D; ++j)
    if (s.n_ref[j] < min_size || s.n_cur[j] < min_size)
      throw std::invalid_argument("summaries: column " + std::to_string(j) + " has fewer than " +
                                  std::to_string(min_size) + " values in a sample");
  if (what & dr::kKs) {
    s.gap_max = column_vector<double>(d, "gap_max", D);
    s.gap_min = column_vector<double>(d, "gap_min", D);
    s.gap_max_at = column_vector<double>(d, "gap_max_at", D);
    s.gap_min_at = column_vector<double>(d, "gap_min_at", D);
  }
  if (what & dr::kCvm) {
    // The exact 4U (two uint64 limbs) is what the statistic is formed from; U as a double is
    // derived from it rather than trusted from the caller.
    s.cvm_u4_hi = column_vector<uint64_t>(d, "cvm_u4_hi", D);
    s.cvm_u4_lo = column_vector<uint64_t>(d, "cvm_u4_lo", D);
    s.cvm_u.resize(static_cast<size_t>(D));
    for (size_t j = 0; j < static_cast<size_t>(D); ++j)
      s.cvm_u[j] = static_cast<double>((static_cast<unsigned __int128>(s.cvm_u4_hi[j]) << 64) | s.cvm_u4_lo[j]) / 4.0;
  }
  if (what & dr::kMwu) {
    s.mwu_u1 = column_vector<double>(d, "mwu_u1", D);
    s.mwu_tie_sum = column_vector<double>(d, "mwu_tie_sum", D);
    s.mwu_ties = column_vector<uint8_t>(d, "mwu_ties", D);
  }
  return s;
}

py::dict ks_from_summaries(const py::dict& d, int alternative, int method) {
  dr::ColumnSummaries s = summaries_from(d, dr::kKs, 1);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::ks_from_summaries(std::move(s), static_cast<dr::Alternative>(alternative),
                              static_cast<dr::PMethod>(method));
  }
  return result_dict(std::move(r), true);
}

py::dict cvm_from_summaries(const py::dict& d, int method) {
  dr::ColumnSummaries s = summaries_from(d, dr::kCvm, 2);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::cvm_from_summaries(std::move(s), static_cast<dr::PMethod>(method));
  }
  return result_dict(std::move(r));
}

py::dict mwu_from_summaries(const py::dict& d, int alternative, int method, bool continuity) {
  dr::ColumnSummaries s = summaries_from(d, dr::kMwu, 1);
  dr::TestResult r;
  {
    py::gil_scoped_release release;
    r = dr::mwu_from_summaries(std::move(s), static_cast<dr::Alternative>(alternative),
                               static_cast<dr::PMethod>(method), continuity);
  }
  return result_dict(std::move(r));
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
  m.def("drift_summaries", &summaries<T>, py::arg("ref"), py::arg("cur"), py::arg("what"), py::arg("nan_policy"),
        py::arg("min_size"), py::arg("test"));
  m.def("drift_sort_columns", &sort_columns<T>, py::arg("x"));
  m.def("drift_summaries_sorted", &summaries_sorted<T>, py::arg("keys"), py::arg("n_ref"), py::arg("nan_ref"),
        py::arg("cur"), py::arg("what"), py::arg("nan_policy"), py::arg("min_size"), py::arg("test"));
  m.def("drift_quantile_bins", &quantile_bins<T>, py::arg("ref"), py::arg("cur"), py::arg("n_bins"),
        py::arg("nan_policy"));
}

}  // namespace

namespace curata_py {

void bind_drift(py::module_& m) {
  bind_typed<float>(m);
  bind_typed<double>(m);
  m.def("drift_ks_from_summaries", &ks_from_summaries, py::arg("summaries"), py::arg("alternative"),
        py::arg("method"));
  m.def("drift_cvm_from_summaries", &cvm_from_summaries, py::arg("summaries"), py::arg("method"));
  m.def("drift_mwu_from_summaries", &mwu_from_summaries, py::arg("summaries"), py::arg("alternative"),
        py::arg("method"), py::arg("continuity"));
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
