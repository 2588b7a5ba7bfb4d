// pybind11 glue for curata.search: C-contiguous float32 (n, d) arrays in, (distances, indices) out.
// Shapes and dtypes are checked by python/curata/search.py; non-finite rows come back as the last
// two tuple items (row or -1) and python/curata/search.py raises.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "curata/search.hpp"
#include "numpy_util.hpp"

namespace py = pybind11;
using curata_py::carray;
using curata_py::vector_to_numpy;

namespace {

// base (n, d) of any element type and float32 queries (m, d).
template <class B>
void check_base_queries(const carray<B>& base, const carray<float>& queries) {
  if (base.ndim() != 2 || queries.ndim() != 2 || base.shape(1) != queries.shape(1))
    throw std::invalid_argument("base and queries must be 2-D with the same number of columns");
}

// The (rows, k) float32 distances and int64 indices a kNN call fills.
struct KnnArrays {
  py::array_t<float> distances;
  py::array_t<int64_t> indices;
  KnnArrays(int64_t rows, int64_t k)
      : distances({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(k)}),
        indices({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(k)}) {}
};

// removed: None or n bytes, nonzero = the base row is skipped (the index's deleted rows).
const uint8_t* removed_flags(const std::optional<carray<uint8_t>>& removed, int64_t n) {
  if (!removed) return nullptr;
  if (removed->ndim() != 1 || removed->shape(0) != n)
    throw std::invalid_argument("removed must have one byte per base row");
  return removed->data();
}

py::tuple knn(const carray<float>& base, const carray<float>& queries, int64_t k, int metric, bool exclude_self,
              const std::optional<carray<uint8_t>>& removed) {
  check_base_queries(base, queries);
  const int64_t n = base.shape(0), m = queries.shape(0), d = base.shape(1);
  KnnArrays out(m, k);
  const float* pb = base.data();
  const float* pq = exclude_self ? pb : queries.data();
  const uint8_t* pr = removed_flags(removed, n);
  float* pd = out.distances.mutable_data();
  int64_t* pi = out.indices.mutable_data();
  curata::search::KnnStatus status;
  {
    py::gil_scoped_release release;
    status = curata::search::knn(pb, n, pq, m, d, k, static_cast<curata::search::Metric>(metric), exclude_self, pd, pi,
                                 pr);
  }
  return py::make_tuple(out.distances, out.indices, status.nonfinite_base_row, status.nonfinite_query_row);
}

// path: 0 auto, 1 the general query x base path, 2 the symmetric self-join (see search.hpp);
// block_rows: 0 = the default for d (tests use small blocks to get many of them).
py::tuple knn_graph(const carray<float>& x, int64_t k, int metric, int path, int64_t block_rows) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be 2-D");
  if (path < 0 || path > 2) throw std::invalid_argument("path must be 0, 1 or 2, got " + std::to_string(path));
  const int64_t n = x.shape(0), d = x.shape(1);
  KnnArrays out(n, k);
  const float* px = x.data();
  float* pd = out.distances.mutable_data();
  int64_t* pi = out.indices.mutable_data();
  curata::search::KnnStatus status;
  {
    py::gil_scoped_release release;
    status = curata::search::knn_graph(px, n, d, k, static_cast<curata::search::Metric>(metric), pd, pi,
                                       static_cast<curata::search::GraphPath>(path), block_rows);
  }
  return py::make_tuple(out.distances, out.indices, status.nonfinite_base_row);
}

py::tuple knn_f16(const carray<uint16_t>& base, const carray<float>& queries, int64_t k, int metric,
                  const std::optional<carray<uint8_t>>& removed) {
  check_base_queries(base, queries);
  const int64_t n = base.shape(0), m = queries.shape(0), d = base.shape(1);
  KnnArrays out(m, k);
  const uint16_t* pb = base.data();
  const float* pq = queries.data();
  const uint8_t* pr = removed_flags(removed, n);
  float* pd = out.distances.mutable_data();
  int64_t* pi = out.indices.mutable_data();
  curata::search::KnnStatus status;
  {
    py::gil_scoped_release release;
    status = curata::search::knn_f16(pb, n, pq, m, d, k, static_cast<curata::search::Metric>(metric), pd, pi, pr);
  }
  return py::make_tuple(out.distances, out.indices, status.nonfinite_base_row, status.nonfinite_query_row);
}

template <class T>
py::tuple range_search(const carray<T>& base, const carray<float>& queries, float radius, int metric,
                       const std::optional<carray<uint8_t>>& removed) {
  check_base_queries(base, queries);
  const int64_t n = base.shape(0), m = queries.shape(0), d = base.shape(1);
  const T* pb = base.data();
  const float* pq = queries.data();
  const auto code = static_cast<curata::search::Metric>(metric);
  const uint8_t* pr = removed_flags(removed, n);
  curata::search::RangeResult r;
  {
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>)
      r = curata::search::range_search(pb, n, pq, m, d, radius, code, pr);
    else
      r = curata::search::range_search_f16(pb, n, pq, m, d, radius, code, pr);
  }
  const auto total = static_cast<py::ssize_t>(r.indices.size());
  return py::make_tuple(vector_to_numpy(std::move(r.lims), {static_cast<py::ssize_t>(m + 1)}),
                        vector_to_numpy(std::move(r.distances), {total}),
                        vector_to_numpy(std::move(r.indices), {total}), r.status.nonfinite_base_row,
                        r.status.nonfinite_query_row);
}

py::array_t<float> half_to_float(const carray<uint16_t>& bits, bool allow_hardware) {
  py::array_t<float> out(bits.request().shape);
  const uint16_t* in = bits.data();
  float* o = out.mutable_data();
  const int64_t count = bits.size();
  {
    py::gil_scoped_release release;
    curata::search::half_to_float(in, count, o, allow_hardware);
  }
  return out;
}

// Converts float32 rows into `out`, a caller-owned writeable C-contiguous uint16 array of the same
// shape (the index's float16 table viewed as uint16), in place; returns the first non-finite row.
int64_t float_to_half(const carray<float>& rows, py::array out, bool allow_hardware) {
  if (rows.ndim() != 2 || out.ndim() != 2 || out.shape(0) != rows.shape(0) || out.shape(1) != rows.shape(1))
    throw std::invalid_argument("out must have the shape of rows");
  if (!out.dtype().is(py::dtype::of<uint16_t>()) || !(out.flags() & py::array::c_style) || !out.writeable())
    throw std::invalid_argument("out must be a writeable C-contiguous uint16 array");
  const float* in = rows.data();
  auto* o = static_cast<uint16_t*>(out.mutable_data());
  const int64_t n = rows.shape(0), d = rows.shape(1);
  py::gil_scoped_release release;
  return curata::search::float_to_half_rows(in, n, d, o, allow_hardware);
}

// Rows of `table` (any dtype, C-contiguous, first axis = rows) listed in `removed` (strictly
// increasing) are squeezed out of the first `rows` rows in place; returns the new row count.
int64_t remove_rows(py::array table, int64_t rows, const carray<int64_t>& removed) {
  if (table.ndim() < 1 || !(table.flags() & py::array::c_style) || !table.writeable())
    throw std::invalid_argument("table must be a writeable C-contiguous array");
  if (rows < 0 || rows > table.shape(0))
    throw std::invalid_argument("rows must be in [0, " + std::to_string(table.shape(0)) + "], got " + std::to_string(rows));
  const int64_t row_bytes = table.ndim() == 1 ? table.itemsize() : table.strides(0);
  void* data = table.mutable_data();
  const int64_t* pr = removed.data();
  const int64_t nr = removed.size();
  py::gil_scoped_release release;
  return curata::search::remove_rows(data, row_bytes, rows, pr, nr);
}

// First row of a C-contiguous (n, d) table of float bit patterns (uint32 for float32, uint16 for
// float16) holding a NaN or an infinity, or -1.
int64_t first_nonfinite_row(const py::array& bits, bool allow_hardware) {
  if (bits.ndim() != 2 || !(bits.flags() & py::array::c_style))
    throw std::invalid_argument("bits must be a C-contiguous 2-D uint32 or uint16 array");
  const int64_t n = bits.shape(0), d = bits.shape(1);
  if (bits.dtype().is(py::dtype::of<uint32_t>())) {
    const auto* p = static_cast<const uint32_t*>(bits.data());
    py::gil_scoped_release release;
    return curata::search::first_nonfinite_row(p, n, d, allow_hardware);
  }
  if (bits.dtype().is(py::dtype::of<uint16_t>())) {
    const auto* p = static_cast<const uint16_t*>(bits.data());
    py::gil_scoped_release release;
    return curata::search::first_nonfinite_row(p, n, d, allow_hardware);
  }
  throw std::invalid_argument("bits must be a C-contiguous 2-D uint32 or uint16 array");
}

// Per row of a C-contiguous (n, d) uint32 table of float32 bit patterns: the bits of the largest
// |value| (see curata::search::row_abs_max_bits).
py::array_t<uint32_t> row_abs_max_bits(const carray<uint32_t>& bits, bool allow_hardware) {
  if (bits.ndim() != 2) throw std::invalid_argument("bits must be a C-contiguous 2-D uint32 array");
  const int64_t n = bits.shape(0), d = bits.shape(1);
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(n));
  const uint32_t* p = bits.data();
  uint32_t* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::search::row_abs_max_bits(p, n, d, po, allow_hardware);
  }
  return out;
}

// x (n, d) C-contiguous float32 with the rows whose scale breaks float32 cosine arithmetic
// rescaled (curata::search::cosine_rescale_rows), or None when no row needs it (no copy made).
py::object cosine_safe_rows(const carray<float>& x) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a C-contiguous 2-D float32 array");
  const int64_t n = x.shape(0), d = x.shape(1);
  const float* px = x.data();
  std::vector<uint32_t> top(static_cast<size_t>(n));
  bool any = false;
  {
    py::gil_scoped_release release;
    curata::search::row_abs_max_bits(reinterpret_cast<const uint32_t*>(px), n, d, top.data());
    for (const uint32_t t : top) any = any || curata::search::cosine_row_needs_scale(t);
  }
  if (!any) return py::none();
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(d)});
  float* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    curata::search::cosine_rescale_rows(px, n, d, po);
  }
  return out;
}

}  // namespace

namespace curata_py {
void bind_search(py::module_& m) {
  m.def("knn", &knn, py::arg("base"), py::arg("queries"), py::arg("k"), py::arg("metric"),
        py::arg("exclude_self") = false, py::arg("removed") = py::none());
  m.def("knn_graph", &knn_graph, py::arg("x"), py::arg("k"), py::arg("metric"), py::arg("path") = 0,
        py::arg("block_rows") = 0);
  m.def("knn_f16", &knn_f16, py::arg("base"), py::arg("queries"), py::arg("k"), py::arg("metric"),
        py::arg("removed") = py::none());
  m.def("range_search", &range_search<float>, py::arg("base"), py::arg("queries"), py::arg("radius"),
        py::arg("metric"), py::arg("removed") = py::none());
  m.def("range_search_f16", &range_search<uint16_t>, py::arg("base"), py::arg("queries"), py::arg("radius"),
        py::arg("metric"), py::arg("removed") = py::none());
  m.def("half_to_float", &half_to_float, py::arg("bits"), py::arg("allow_hardware") = true);
  m.def("float_to_half", &float_to_half, py::arg("rows"), py::arg("out"), py::arg("allow_hardware") = true);
  m.def("remove_rows", &remove_rows, py::arg("table"), py::arg("rows"), py::arg("removed"));
  m.def("first_nonfinite_row", &first_nonfinite_row, py::arg("bits"), py::arg("allow_hardware") = true);
  m.def("row_abs_max_bits", &row_abs_max_bits, py::arg("bits"), py::arg("allow_hardware") = true);
  m.def("cosine_safe_rows", &cosine_safe_rows, py::arg("x"));
}
}  // namespace curata_py
