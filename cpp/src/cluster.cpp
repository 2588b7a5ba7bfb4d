// k-means Lloyd step on the CPU (see curata/cluster.hpp).
//
// Assignment. Every row's squared distance to centroid j is |x|^2 + v_j with
// v_j = |c_j|^2 - 2 x.c_j; the row takes the first (lowest j) minimum of the computed v_j unless
// its runner-up lies within `tol` of that minimum, in which case it is re-decided with float64
// differences against every centroid whose v_j is within `tol` of the minimum (the rule of the
// former numpy version, python/curata/_cluster.py, and of the device path, _kmeans_device.py).
//
// The rounding bound (u = 2^-24 for float32 dots, U = 2^-53; gamma_m(u) = m u / (1 - m u)).
//  * Dots, float32 path. The kNN kernels (cpp/src/knn_kernels.hpp) evaluate x.c in float32 with W
//    lane sums (W = 8 or 16): lane l adds x_t c_t for t = l, l + W, ... in increasing t, one
//    multiply-add each (fused on FMA CPUs: one rounding; unfused on the baseline copy: two), then
//    the W lane sums go through a fixed tree of depth log2 W. Each product therefore passes
//    through at most h = ceil(d / W) + log2 W + 1 roundings, h <= ceil(d / 8) + 5 for both W, and
//    for any summation tree (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
//    sec. 3.1) |g - x.c| <= gamma_h(u) sum_t |x_t c_t| <= gamma_h(u) |x| |c| (Cauchy-Schwarz),
//    plus, if products underflow, at most 2^-150 per multiply-add (subnormal additions are exact),
//    at most d + 16 of them: abs = (d + 16) 2^-148 bounds twice that (the 2 of 2 g) with room for
//    the (1 + gamma) growth. The zero-padded tail adds exact zeros.
//    Float64 path: dots by any order (BLAS), <= d roundings per product: gamma_{d+2}(U) |x| |c|,
//    and abs = (d + 16) 2^-1072 for underflow (also covering that of |c|^2).
//  * |c|^2 in float64 (sequential sum; squares of float32 values are exact, of float64 ones
//    rounded): error <= gamma_d(U) |c|^2. v_j = fl(csq_j - 2 g_j) (2 g exact): one more rounding,
//    U |v_j| <= 1.01 U (|c|^2 + 2 |x| |c|).
//  So with t_j = |c_j|^2 - 2 x.c_j in real arithmetic, |v_j - t_j| <= E, where
//    E = 2 rel |x| cmax + (d + 2) U (cmax^2 + 2 |x| cmax) + abs,
//  rel/abs the dot terms above and cmax = max_j |c_j|. |x| and cmax come from float64 squares
//  (relative error <= gamma_d(U)): their square roots are scaled up by (1 + (d + 4) U).
//  tol = 4 E. A row is accepted when v_j > fl(v_b + tol) for every j != b (b the first argmin):
//  fl(v_b + tol) >= v_b + tol - U (|v_b| + tol) >= v_b + 3 E (U |v_b| <= E / 2 by the second
//  term of E), so t_j >= v_j - E > v_b + 2 E >= t_b + E > t_b: b is the unique real nearest
//  centroid. Otherwise the real nearest centroid j* is among the candidates re-checked
//  (v_j* <= t_j* + E <= t_b + E <= v_b + 2 E <= fl(v_b + tol)), and the float64 differences
//  decide (lowest index on exact float64 ties), so labels never depend on the dot kernel, only on
//  the float64 differences of the rows that are close calls.
//  Rows and centroids are finite and, through kmeans, scaled into [2^-40, 2^40] (no overflow of
//  float32 dots below d = 2^47).
//
// Per-cluster sums: row chunks whose number depends on (n, k) only, each summed in row order into
// its own partial, the partials added in chunk order: the bits do not depend on the thread count.
#include "curata/cluster.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "curata/parallel.hpp"
#include "curata/simd.hpp"
#include "knn_kernels.hpp"

namespace curata {
namespace cluster {
namespace {

namespace kern = curata::search::kernels;

constexpr double kU = 0x1p-53;

double gamma(double m, double u) { return m * u / (1.0 - m * u); }

// Rows per assignment block (the tile is chunk rows x kRows float32).
constexpr int64_t kRows = 64;

// The bound of the file comment: tol for a row of norm bound xn, given the dot terms.
struct Bound {
  double rel = 0.0;   // |g - x.c| <= rel |x| |c| + abs
  double abs = 0.0;
  double dterm = 0.0;  // (d + 2) U
  double cmax = 0.0;
  double tol(double xn) const {
    const double e = 2.0 * rel * xn * cmax + dterm * (cmax * cmax + 2.0 * xn * cmax) + abs;
    return 4.0 * e;
  }
};

double norm_up(double sq, int64_t d) { return std::sqrt(std::max(sq, 0.0)) * (1.0 + static_cast<double>(d + 4) * kU); }

template <class T> std::vector<double> centroid_sq(const T* C, int64_t k, int64_t d) {
  std::vector<double> csq(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    const T* c = C + j * d;
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) s += static_cast<double>(c[t]) * static_cast<double>(c[t]);
    csq[static_cast<size_t>(j)] = s;
  }
  return csq;
}

Bound make_bound(const std::vector<double>& csq, int64_t d, double rel, double abs) {
  Bound b;
  b.rel = rel;
  b.abs = abs;
  b.dterm = static_cast<double>(d + 2) * kU;
  double mx = 0.0;
  for (double v : csq) mx = std::max(mx, v);
  b.cmax = norm_up(mx, d);
  return b;
}

// Fused tile consumer: v = csq[j] - 2 tile[jj][i] for the centroids j = j0 + jj of a chunk against
// the rows i < nb of a block, folded into each row's first minimum (best, idx) and the minimum of
// the others (second). Eight rows at a time in vector registers, the chunk's centroids streamed
// past them (the state is loaded and stored once per chunk, not once per centroid).
typedef double v8d __attribute__((vector_size(64)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

template <class TT>
CURATA_ALWAYS_INLINE void consume_impl(const TT* tile, int64_t kc, int64_t nb, int64_t ldt, const double* csq,
                                       int64_t j0, double* best, double* second, int64_t* idx) {
  const int64_t full = nb / 8 * 8;
  for (int64_t i0 = 0; i0 < full; i0 += 8) {
    v8d b = simd::load_unaligned<v8d>(best + i0), s = simd::load_unaligned<v8d>(second + i0);
    v8l id = simd::load_unaligned<v8l>(idx + i0);
    for (int64_t jj = 0; jj < kc; ++jj) {
      v8d g;
      if constexpr (sizeof(TT) == 4)
        g = __builtin_convertvector(simd::load_unaligned<v8f>(tile + jj * ldt + i0), v8d);
      else
        g = simd::load_unaligned<v8d>(tile + jj * ldt + i0);
      const v8d v = (v8d{} + csq[jj]) - 2.0 * g;
      const v8l lt = v < b;
      const v8d s2 = v < s ? v : s;
      s = lt ? b : s2;
      b = lt ? v : b;
      id = lt ? (v8l{} + (j0 + jj)) : id;
    }
    std::memcpy(best + i0, &b, sizeof(b));
    std::memcpy(second + i0, &s, sizeof(s));
    std::memcpy(idx + i0, &id, sizeof(id));
  }
  for (int64_t i = full; i < nb; ++i)  // the same operations, one row at a time
    for (int64_t jj = 0; jj < kc; ++jj) {
      const double v = csq[jj] - 2.0 * static_cast<double>(tile[jj * ldt + i]);
      const bool lt = v < best[i];
      const double s2 = v < second[i] ? v : second[i];
      second[i] = lt ? best[i] : s2;
      best[i] = lt ? v : best[i];
      idx[i] = lt ? j0 + jj : idx[i];
    }
}

CURATA_SIMD_CLONES
void consume_tile(const float* tile, int64_t kc, int64_t nb, int64_t ldt, const double* csq, int64_t j0, double* best,
                  double* second, int64_t* idx) {
  consume_impl(tile, kc, nb, ldt, csq, j0, best, second, idx);
}
CURATA_SIMD_CLONES
void consume_tile(const double* tile, int64_t kc, int64_t nb, int64_t ldt, const double* csq, int64_t j0,
                  double* best, double* second, int64_t* idx) {
  consume_impl(tile, kc, nb, ldt, csq, j0, best, second, idx);
}

// The re-check works on a transposed, zero-padded copy of the centroids, CT[t * kpad + j] =
// C[j][t] (kpad = k rounded up to 8), so eight centroids' float64 squared differences to a row are
// summed side by side in the lanes of a vector, each lane in increasing t: the bits of the scalar
// loop s += (x_t - c_t)^2, 8 to 32 times faster (rows far from the origin, |x| ~ 1e3 times the
// spread, are nearly all close calls against most centroids).
template <class T> struct Transposed {
  std::vector<T> data;
  int64_t kpad = 0;
};

template <class T> Transposed<T> transpose_centroids(const T* C, int64_t k, int64_t d) {
  Transposed<T> ct;
  ct.kpad = (k + 7) / 8 * 8;
  ct.data.assign(static_cast<size_t>(ct.kpad * d), T(0));
  for (int64_t j = 0; j < k; ++j)
    for (int64_t t = 0; t < d; ++t) ct.data[static_cast<size_t>(t * ct.kpad + j)] = C[j * d + t];
  return ct;
}

template <class T> CURATA_ALWAYS_INLINE v8d load8(const T* p) {
  if constexpr (sizeof(T) == 4)
    return __builtin_convertvector(simd::load_unaligned<v8f>(p), v8d);
  else
    return simd::load_unaligned<v8d>(p);
}

// out[g * 8 + l] = sum_t (x_t - CT[t][j0s[g] + l])^2 in float64, for NG groups at once (independent
// chains hide the addition latency).
template <int NG, class T>
CURATA_ALWAYS_INLINE void exact_groups_n(const T* x, const T* ct, int64_t kpad, int64_t d, const int64_t* j0s,
                                         double* out) {
  v8d acc[NG];
  for (int g = 0; g < NG; ++g) acc[g] = v8d{} * 0.0;
  for (int64_t t = 0; t < d; ++t) {
    const v8d xt = v8d{} + static_cast<double>(x[t]);
    const T* row = ct + t * kpad;
    for (int g = 0; g < NG; ++g) {
      const v8d e = xt - load8(row + j0s[g]);
      acc[g] = acc[g] + e * e;
    }
  }
  for (int g = 0; g < NG; ++g) std::memcpy(out + g * 8, &acc[g], sizeof(v8d));
}

template <class T>
CURATA_ALWAYS_INLINE void exact_groups(const T* x, const T* ct, int64_t kpad, int64_t d, const int64_t* j0s,
                                       int64_t ng, double* out) {
  int64_t g = 0;
  for (; g + 4 <= ng; g += 4) exact_groups_n<4>(x, ct, kpad, d, j0s + g, out + g * 8);
  for (; g < ng; ++g) exact_groups_n<1>(x, ct, kpad, d, j0s + g, out + g * 8);
}

CURATA_SIMD_CLONES
void exact_groups_any(const float* x, const float* ct, int64_t kpad, int64_t d, const int64_t* j0s, int64_t ng,
                      double* out) {
  exact_groups(x, ct, kpad, d, j0s, ng, out);
}
CURATA_SIMD_CLONES
void exact_groups_any(const double* x, const double* ct, int64_t kpad, int64_t d, const int64_t* j0s, int64_t ng,
                      double* out) {
  exact_groups(x, ct, kpad, d, j0s, ng, out);
}

// Per-thread buffers of the re-check.
struct RecheckScratch {
  std::vector<int64_t> groups;
  std::vector<double> exact;
};

// The re-check of one row: float64 nearest among the centroids with v_j <= threshold (lowest
// index among equal float64 distances).
template <class T, class V>
void recheck_row(const T* x, const Transposed<T>& ct, int64_t k, int64_t d, V v_of, double threshold,
                 RecheckScratch& scratch, int64_t* label, double* dist) {
  scratch.groups.clear();
  for (int64_t j0 = 0; j0 < k; j0 += 8) {
    bool any = false;
    for (int64_t j = j0; j < std::min(k, j0 + 8); ++j) any = any || v_of(j) <= threshold;
    if (any) scratch.groups.push_back(j0);
  }
  const int64_t ng = static_cast<int64_t>(scratch.groups.size());
  scratch.exact.resize(static_cast<size_t>(ng * 8));
  exact_groups_any(x, ct.data.data(), ct.kpad, d, scratch.groups.data(), ng, scratch.exact.data());
  double eb = std::numeric_limits<double>::infinity();
  int64_t jb = -1;
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t l = 0; l < 8; ++l) {
      const int64_t j = scratch.groups[static_cast<size_t>(g)] + l;
      if (j >= k || !(v_of(j) <= threshold)) continue;
      const double e = scratch.exact[static_cast<size_t>(g * 8 + l)];
      if (e < eb || jb < 0) {
        eb = e;
        jb = j;
      }
    }
  *label = jb;
  *dist = eb;
}

}  // namespace

void nearest_centroids_f32(const float* X, int64_t n, int64_t d, const float* C, int64_t k, const double* sq,
                           int64_t* labels, double* dist) {
  if (n <= 0 || k <= 0 || d <= 0) return;
  const std::vector<double> csq = centroid_sq(C, k, d);
  const int64_t h = (d + 7) / 8 + 5;
  const Bound bound = make_bound(csq, d, gamma(static_cast<double>(h), 0x1p-24),
                                        static_cast<double>(d + 16) * 0x1p-148);
  // Centroid chunks of at most ~256 KiB of packed floats (they stay in L2 while a row block
  // streams past). The outer-product kernel works on micro-tiles of 48 packed rows (16 lanes; 16
  // rows with 8 lanes) and pads a chunk to whole vectors, so chunks hold whole micro-tiles and the
  // k mod 48 last centroids form a chunk of their own (k = 100: 96 + 4 rather than 100 padded to
  // 112, of which 16 in a one-vector micro-tile).
  struct Chunk {
    int64_t j0 = 0, m = 0;
    bool packed = false;
    kern::PackedRows P;
  };
  std::vector<Chunk> chunks;
  {
    const int lanes = kern::packed_lanes_for(k);
    const int64_t micro = lanes == 16 ? 48 : lanes == 8 ? 16 : 1;
    const int64_t kc_max = std::max(micro, std::min<int64_t>(1024, (int64_t(1) << 16) / d) / micro * micro);
    const int64_t whole = k / micro * micro, units = whole / micro;
    const int64_t nmain = (whole + kc_max - 1) / kc_max;
    const int64_t per = nmain > 0 ? (units + nmain - 1) / nmain * micro : 0;
    for (int64_t j0 = 0; j0 < whole; j0 += per) chunks.push_back(Chunk{j0, std::min(per, whole - j0)});
    if (whole < k) chunks.push_back(Chunk{whole, k - whole});
    for (Chunk& ch : chunks) {
      const int l = kern::packed_lanes_for(ch.m);
      if (l > 0) {
        kern::pack_rows(C + ch.j0 * d, ch.m, d, l, ch.P);
        ch.packed = true;
      }
    }
  }
  int64_t kc = 0;
  for (const Chunk& ch : chunks) kc = std::max(kc, ch.m);
  const Transposed<float> ct = transpose_centroids(C, k, d);
  // Row blocks of kRows rows, handed out kSuper at a time so that a thread can prefetch the block
  // it works on next (a few per cent at 100k x 128, k = 100).
  const int64_t blocks = (n + kRows - 1) / kRows;
  const int threads = threads_for(n * k * d, int64_t(1) << 22);
  // At most 8 blocks per hand-out, fewer when that would leave threads idle (few rows, many
  // centroids): at least 4 hand-outs per thread where there are enough blocks.
  const int64_t kSuper = std::max<int64_t>(1, std::min<int64_t>(8, blocks / (4 * static_cast<int64_t>(threads))));
  const int64_t supers = (blocks + kSuper - 1) / kSuper;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> tile(static_cast<size_t>(kc * kRows));
    std::vector<float> row_dots;
    RecheckScratch scratch;
    double best[kRows], second[kRows];
    int64_t idx[kRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t sb = 0; sb < supers; ++sb) {
      const int64_t blk_end = std::min(blocks, (sb + 1) * kSuper);
      for (int64_t blk = sb * kSuper; blk < blk_end; ++blk) {
        const int64_t r0 = blk * kRows, nb = std::min(kRows, n - r0);
        const float* xb = X + r0 * d;
        if (blk + 1 < blk_end) {
          const char* p = reinterpret_cast<const char*>(xb + kRows * d);
          const int64_t bytes = std::min(kRows, n - r0 - kRows) * d * static_cast<int64_t>(sizeof(float));
          for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
        }
        for (int64_t i = 0; i < nb; ++i) {
          best[i] = std::numeric_limits<double>::infinity();
          second[i] = std::numeric_limits<double>::infinity();
          idx[i] = 0;
        }
        for (const Chunk& ch : chunks) {
          // tile[jj * kRows + i] = dot(C[j0 + jj], X[r0 + i]): the same bits as any other kernel or
          // blocking (knn_kernels.hpp), and dot(c, x) == dot(x, c) (products commute).
          kern::dot_tile_any(ch.packed ? &ch.P : nullptr, C + ch.j0 * d, ch.m, xb, nb, d, tile.data(), kRows);
          consume_tile(tile.data(), ch.m, nb, kRows, csq.data() + ch.j0, ch.j0, best, second, idx);
        }
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = r0 + i;
          const double b = best[i];
          const double threshold = b + bound.tol(norm_up(sq[r], d));
          if (k > 1 && second[i] <= threshold) {
            if (row_dots.empty()) row_dots.resize(static_cast<size_t>(k));
            kern::dot_tile(X + r * d, 1, C, k, d, row_dots.data(), k);
            const float* g = row_dots.data();
            const auto v_of = [&](int64_t j) {
              return csq[static_cast<size_t>(j)] - 2.0 * static_cast<double>(g[j]);
            };
            recheck_row(X + r * d, ct, k, d, v_of, threshold, scratch, labels + r, dist + r);
          } else {
            labels[r] = idx[i];
            dist[r] = std::max(b + sq[r], 0.0);
          }
        }
      }
    }
  }
}

void nearest_centroids_f64(const double* X, int64_t n, int64_t d, const double* C, int64_t k, const double* sq,
                           const double* GT, int64_t* labels, double* dist) {
  if (n <= 0 || k <= 0 || d <= 0) return;
  const std::vector<double> csq = centroid_sq(C, k, d);
  const Bound bound = make_bound(csq, d, gamma(static_cast<double>(d + 2), kU),
                                         static_cast<double>(d + 16) * 0x1p-1072);
  const Transposed<double> ct = transpose_centroids(C, k, d);
  RecheckScratch scratch;
  double best[kRows], second[kRows];
  int64_t idx[kRows];
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int64_t nb = std::min(kRows, n - r0);
    for (int64_t i = 0; i < nb; ++i) {
      best[i] = std::numeric_limits<double>::infinity();
      second[i] = std::numeric_limits<double>::infinity();
      idx[i] = 0;
    }
    consume_tile(GT + r0, k, nb, n, csq.data(), 0, best, second, idx);
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t r = r0 + i;
      const double b = best[i];
      const double threshold = b + bound.tol(norm_up(sq[r], d));
      if (k > 1 && second[i] <= threshold) {
        const auto v_of = [&](int64_t j) { return csq[static_cast<size_t>(j)] - 2.0 * GT[j * n + r]; };
        recheck_row(X + r * d, ct, k, d, v_of, threshold, scratch, labels + r, dist + r);
      } else {
        labels[r] = idx[i];
        dist[r] = std::max(b + sq[r], 0.0);
      }
    }
  }
}

namespace {

// Columns [t0, t1) of the sums: rows streamed in increasing order, each added into its cluster's
// row of `sums` (zeroed here). A thread reads only its columns of every row (a constant stride the
// hardware prefetcher follows); measured 2x faster than gathering the rows cluster by cluster.
template <class T>
CURATA_ALWAYS_INLINE void sum_columns(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, int64_t t0,
                                      int64_t t1, double* sums) {
  for (int64_t j = 0; j < k; ++j)
    for (int64_t t = t0; t < t1; ++t) sums[j * d + t] = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const T* x = X + i * d;
    double* s = sums + labels[i] * d;
    for (int64_t t = t0; t < t1; ++t) s[t] += static_cast<double>(x[t]);
  }
}

CURATA_SIMD_CLONES
void sum_columns_any(const float* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, int64_t t0, int64_t t1,
                     double* sums) {
  sum_columns(X, n, d, labels, k, t0, t1, sums);
}
CURATA_SIMD_CLONES
void sum_columns_any(const double* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, int64_t t0, int64_t t1,
                     double* sums) {
  sum_columns(X, n, d, labels, k, t0, t1, sums);
}

template <class T>
void cluster_sums_impl(const T* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* sums) {
  if (k <= 0 || d <= 0) return;
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= k)
      throw std::invalid_argument("labels must lie in [0, " + std::to_string(k - 1) + "], got " +
                                  std::to_string(labels[i]) + " at row " + std::to_string(i));
  // Row chunks: their count depends on n and k only (never on the thread count), at most 16 and
  // at most n / (16 k) so their partial sums (k d doubles each) stay below a sixteenth of the
  // rows' doubles. Each chunk streams its rows in order into its partial; the partials are then
  // added in chunk order. So the bits depend on (n, k) alone.
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(16, n / std::max<int64_t>(1, 16 * k)));
  if (nchunks == 1) {
    // Few rows per cluster: column ranges of whole 64-byte lines in parallel instead, each a
    // sequential loop over all rows (the bits of the one-thread loop whatever the split).
    constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
    const int64_t lines = (d + kLine - 1) / kLine;
    const int threads = static_cast<int>(std::min<int64_t>(threads_for(n * d, int64_t(1) << 18), lines));
    const int64_t per = (lines + threads - 1) / threads * kLine;
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (threads > 1)
    for (int p = 0; p < threads; ++p) {
      const int64_t t0 = std::min(d, p * per), t1 = std::min(d, t0 + per);
      if (t0 < t1) sum_columns_any(X, n, d, labels, k, t0, t1, sums);
    }
    return;
  }
  std::vector<double> partial(static_cast<size_t>(nchunks * k * d));
  const int threads = static_cast<int>(std::min<int64_t>(threads_for(n * d, int64_t(1) << 18), nchunks));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t r0 = n * c / nchunks, r1 = n * (c + 1) / nchunks;
      sum_columns_any(X + r0 * d, r1 - r0, d, labels + r0, k, 0, d, partial.data() + c * k * d);
    }
#pragma omp for schedule(static)
    for (int64_t j = 0; j < k; ++j) {
      double* out = sums + j * d;
      for (int64_t t = 0; t < d; ++t) out[t] = partial[static_cast<size_t>(j * d + t)];
      for (int64_t c = 1; c < nchunks; ++c) {
        const double* p = partial.data() + (c * k + j) * d;
        for (int64_t t = 0; t < d; ++t) out[t] += p[t];
      }
    }
  }
}

}  // namespace

void cluster_sums(const float* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* sums) {
  cluster_sums_impl(X, n, d, labels, k, sums);
}
void cluster_sums(const double* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* sums) {
  cluster_sums_impl(X, n, d, labels, k, sums);
}

}  // namespace cluster
}  // namespace curata
