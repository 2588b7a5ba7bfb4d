// kNN dot-product kernels (see knn_kernels.hpp): one order of evaluation, several kernels.
//
// Every dot product, whichever kernel computes it, is the same arithmetic: W lane-wise partial sums
// over the dimension (W = 16 on AVX-512 CPUs, else 8), a multiply-add per element (fused where the
// CPU has FMA: this file is built with -ffp-contract=fast), a zero-padded tail, then one fixed
// reduction order. So results do not depend on the batch size or thread count, and a point's
// squared distance to an exact copy of itself is exactly 0. Distances may differ in the last bits
// between CPUs (lane count, FMA or not).
#include "knn_kernels.hpp"

// The vector helpers below are always inlined, so the ABI of passing GCC vector types by value
// (which differs with and without AVX) never matters.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "curata/simd.hpp"

namespace curata {
namespace search {
namespace kernels {
namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

CURATA_ALWAYS_INLINE float reduce(v8f v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}
CURATA_ALWAYS_INLINE float reduce(v16f v) {
  const v8f lo = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
  const v8f hi = {v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
  return reduce(lo + hi);
}

// out[r * C + c] = dot(q[r], b[c]) over d elements, W lanes of partial sums. Shift (mu, d floats):
// 1 subtracts mu from every b element as it is loaded, 2 from the q elements too (self dots); the
// float32 differences are exactly those of rows staged as b - mu, so the results are the same bits.
template <class V, int W, int R, int C, int Shift = 0>
CURATA_ALWAYS_INLINE void dot_block(const float* const* q, const float* const* b, int64_t d, float* out,
                                    const float* mu = nullptr) {
  V acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = V{} * 0.0f;
  const int64_t full = d / W * W;
  for (int64_t t = 0; t < full; t += W) {
    V bv[C];
    V mv = V{} * 0.0f;
    if (Shift) mv = simd::load_unaligned<V>(mu + t);
    for (int c = 0; c < C; ++c) {
      bv[c] = simd::load_unaligned<V>(b[c] + t);
      if (Shift) bv[c] -= mv;
    }
    for (int r = 0; r < R; ++r) {
      V qv = simd::load_unaligned<V>(q[r] + t);
      if (Shift == 2) qv -= mv;
      for (int c = 0; c < C; ++c) acc[r][c] += qv * bv[c];
    }
  }
  if (full < d) {
    const int64_t rest = d - full;
    V bv[C];
    V mv = V{} * 0.0f;
    if (Shift) {
      float tmp[W] = {};
      std::memcpy(tmp, mu + full, static_cast<size_t>(rest) * sizeof(float));
      mv = simd::load_unaligned<V>(tmp);
    }
    for (int c = 0; c < C; ++c) {
      float tmp[W] = {};
      std::memcpy(tmp, b[c] + full, static_cast<size_t>(rest) * sizeof(float));
      bv[c] = simd::load_unaligned<V>(tmp);
      if (Shift) bv[c] -= mv;
    }
    for (int r = 0; r < R; ++r) {
      float tmp[W] = {};
      std::memcpy(tmp, q[r] + full, static_cast<size_t>(rest) * sizeof(float));
      V qv = simd::load_unaligned<V>(tmp);
      if (Shift == 2) qv -= mv;
      for (int c = 0; c < C; ++c) acc[r][c] += qv * bv[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = reduce(acc[r][c]);
}

// tile[i * ldt + j] = dot(Q[i], B[j]) for i < mq, j < nb, and the transpose tile_t[j * ldt + i] when
// tile_t is not null (the symmetric self-join). Edge blocks repeat the last row (results discarded)
// so every dot goes through the same kernel.
template <class V, int W, int MR, int NR, int Shift>
CURATA_ALWAYS_INLINE void dot_tile_impl(const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d,
                                        float* tile, int64_t ldt, const float* mu, float* tile_t) {
  if (mq >= MR) {
    for (int64_t j = 0; j < nb; j += NR) {
      const float* bp[NR];
      for (int c = 0; c < NR; ++c) bp[c] = B + std::min<int64_t>(j + c, nb - 1) * d;
      for (int64_t i = 0; i < mq; i += MR) {
        const float* qp[MR];
        for (int r = 0; r < MR; ++r) qp[r] = Q + std::min<int64_t>(i + r, mq - 1) * d;
        float out[MR * NR];
        dot_block<V, W, MR, NR, Shift>(qp, bp, d, out, mu);
        for (int r = 0; r < MR && i + r < mq; ++r)
          for (int c = 0; c < NR && j + c < nb; ++c) tile[(i + r) * ldt + j + c] = out[r * NR + c];
        if (tile_t)
          for (int c = 0; c < NR && j + c < nb; ++c)
            for (int r = 0; r < MR && i + r < mq; ++r) tile_t[(j + c) * ldt + i + r] = out[r * NR + c];
      }
    }
    return;
  }
  for (int64_t i = 0; i < mq; ++i) {
    const float* qp[1] = {Q + i * d};
    for (int64_t j = 0; j < nb; j += kScanNR) {
      const float* bp[kScanNR];
      for (int c = 0; c < kScanNR; ++c) bp[c] = B + std::min<int64_t>(j + c, nb - 1) * d;
      float out[kScanNR];
      dot_block<V, W, 1, kScanNR, Shift>(qp, bp, d, out, mu);
      for (int c = 0; c < kScanNR && j + c < nb; ++c) tile[i * ldt + j + c] = out[c];
      if (tile_t)
        for (int c = 0; c < kScanNR && j + c < nb; ++c) tile_t[(j + c) * ldt + i] = out[c];
    }
  }
}

template <class V, int W>
CURATA_ALWAYS_INLINE void self_dots_impl(const float* X, int64_t rows, int64_t d, float* out, const float* mu) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* p[1] = {X + i * d};
    if (mu)
      dot_block<V, W, 1, 1, 2>(p, p, d, out + i, mu);
    else
      dot_block<V, W, 1, 1>(p, p, d, out + i);
  }
}

// Eight lanes (3 x 4 register block: 12 accumulators fit AVX2's 16 registers), one copy per
// vector width. On AVX-512 CPUs a 16-lane 4 x 4 kernel is used instead (32 registers); every
// dot product of one process then uses it, so the batch/thread independence holds per machine.
CURATA_SIMD_CLONES
void dot_tile_w8(const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d, float* tile, int64_t ldt,
                 const float* mu, float* tile_t) {
  if (mu)
    dot_tile_impl<v8f, 8, 3, 4, 1>(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
  else
    dot_tile_impl<v8f, 8, 3, 4, 0>(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
}
CURATA_SIMD_CLONES
void self_dots_w8(const float* X, int64_t rows, int64_t d, float* out, const float* mu) {
  self_dots_impl<v8f, 8>(X, rows, d, out, mu);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CURATA_KNN_W16 1
__attribute__((target("arch=x86-64-v4"))) void dot_tile_w16(const float* Q, int64_t mq, const float* B, int64_t nb,
                                                            int64_t d, float* tile, int64_t ldt, const float* mu,
                                                            float* tile_t) {
  if (mu)
    dot_tile_impl<v16f, 16, 4, 4, 1>(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
  else
    dot_tile_impl<v16f, 16, 4, 4, 0>(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
}
__attribute__((target("arch=x86-64-v4"))) void self_dots_w16(const float* X, int64_t rows, int64_t d, float* out,
                                                             const float* mu) {
  self_dots_impl<v16f, 16>(X, rows, d, out, mu);
}
#endif

bool use_w16() {
#ifdef CURATA_KNN_W16
  // CURATA_KNN_NO_AVX512=1 forces the 8-lane kernel (tests run it on AVX-512 machines too).
  static const bool yes = !std::getenv("CURATA_KNN_NO_AVX512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

// ---- Outer-product kernel for blocks of queries (hand-written AVX-512) ----------------------------
//
// The same arithmetic as dot_tile_w16, evaluated in another order. There, lane l of a dot's
// 16-lane accumulator sums q[t] b[t] for t = l, l + 16, ... in increasing t (one fused multiply-add
// each, from +0; the zero-padded tail adds +0 to the lanes past d, which changes nothing but a lane
// sum of -0 into +0 (a fused multiply-add onto +0 of a product that underflows past the smallest
// subnormal rounds to -0), so such a dot is never -0: this kernel adds +0 to its finished dots
// then), and the 16 lane sums are added in reduce()'s tree ((S0 + S4) + (S2 + S6)) + ((S1 + S5) + (S3 + S7)), S_i = lane i + lane i + 8; a vector holds
// the 16 lane sums of one dot and is reduced across its lanes at the end. Here a vector holds one
// lane sum of 16 different queries. The queries of a block are packed once, lane class by lane class
// ([l][s][i]: element 16 s + l of query i), so pass l walks elements l, l + 16, ... of 16 queries
// contiguously and broadcasts the base element: 24 independent accumulators, 11 loads per 24 FMAs,
// no horizontal reduction. The 16 passes run in the order 0, 8, 4, 12, 2, 10, 6, 14, 1, 9, ...:
// merged like a binary counter (after pass p, as many merges as p has trailing one bits), they add
// exactly the operands of reduce()'s tree. Same floats, same operations, same order: the same bits
// as dot_tile_w16, which stays the portable twin (simd::hand_avx512() off) and serves the query
// blocks too small to fill the vectors.

#if defined(CURATA_KNN_W16)
// Pass p handles lane class bit_reverse(p): 0, 8, 4, 12, 2, ... (W = 16) or 0, 4, 2, 6, ... (W = 8).
template <int W> constexpr int pass_lane(int p) {
  int l = 0;
  for (int bit = 1, rev = W / 2; bit < W; bit <<= 1, rev >>= 1)
    if (p & bit) l |= rev;
  return l;
}

// out[j * MV * W + i] = dot(packed row i0 + i, b[j]) for j < NR, i < MV * W; qp points at column i0
// of the packed rows. MV * NR accumulators (+ MV query vectors + 1 broadcast) fit the registers.
template <class V, int W, int MV, int NR>
CURATA_ALWAYS_INLINE void packed_micro(const float* qp, int64_t stride, int64_t steps, const float* const* b,
                                       int64_t d, float* out) {
  constexpr int A = MV * NR;
  V stack[4][A];  // pending subtrees of reduce()'s tree (at most log2(W) of them)
  V acc[A];
  const int64_t full = d / W, rem = d % W;
  int depth = 0;
  for (int p = 0; p < W; ++p) {
    const int l = pass_lane<W>(p);
#pragma GCC unroll 24
    for (int x = 0; x < A; ++x) acc[x] = V{} * 0.0f;
    const float* q = qp + l * steps * stride;
    const float* bl[NR];
    for (int j = 0; j < NR; ++j) bl[j] = b[j] + l;
    const int64_t n = full + (l < rem ? 1 : 0);
    for (int64_t s = 0; s < n; ++s) {
      V qv[MV];
#pragma GCC unroll 4
      for (int v = 0; v < MV; ++v) qv[v] = simd::load_unaligned<V>(q + s * stride + v * W);
#pragma GCC unroll 24
      for (int j = 0; j < NR; ++j) {
        const float bj = bl[j][s * W];
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) acc[v * NR + j] += qv[v] * bj;  // fused: -ffp-contract=fast
      }
    }
    for (int m = p; m & 1; m >>= 1) {
      --depth;
#pragma GCC unroll 24
      for (int x = 0; x < A; ++x) acc[x] = stack[depth][x] + acc[x];
    }
    if (p + 1 < W) {
#pragma GCC unroll 24
      for (int x = 0; x < A; ++x) stack[depth][x] = acc[x];
      ++depth;
    }
  }
  if (rem != 0) {
    // The dot kernel's zero-padded tail adds +0 * +0 to the lanes past d, which turns a lane sum of
    // -0 (every product below the smallest subnormal: a fused multiply-add onto +0 rounds to -0)
    // into +0 there, so its dot is never -0 when d % W != 0 (x + y is -0 only when both are). Signed
    // zeros change no other sum, so adding +0 to the finished dot gives exactly its bits.
#pragma GCC unroll 24
    for (int x = 0; x < A; ++x) acc[x] += V{} * 0.0f;
  }
  for (int v = 0; v < MV; ++v)
    for (int j = 0; j < NR; ++j) std::memcpy(out + j * MV * W + v * W, &acc[v * NR + j], sizeof(V));
}

// dot_tile for packed query rows: tile[i * ldt + j] = dot(row i, B[j]) for i < P.rows, j < nb, and
// tile_t[j * ldt + i] when tile_t is not null. Micro-tiles of up to MV x W rows by NR base rows
// (fewer query vectors at the end of the block); edge micro-tiles repeat the last base row.
template <class V, int W, int MV, int NR>
CURATA_ALWAYS_INLINE void dot_tile_packed_impl(const PackedRows& P, const float* B, int64_t nb, float* tile,
                                               int64_t ldt, float* tile_t) {
  const int64_t d = P.d;
  alignas(64) float out[NR * MV * W];
  for (int64_t j0 = 0; j0 < nb; j0 += NR) {
    const float* b[NR];
    for (int c = 0; c < NR; ++c) b[c] = B + std::min<int64_t>(j0 + c, nb - 1) * d;
    const int64_t nj = std::min<int64_t>(NR, nb - j0);
    for (int64_t i0 = 0; i0 < P.rows;) {
      const int64_t vectors = std::min<int64_t>(MV, (P.stride - i0) / W);
      const float* qp = P.data.data() + i0;
      if (vectors == MV)
        packed_micro<V, W, MV, NR>(qp, P.stride, P.steps, b, d, out);
      else if (MV > 2 && vectors == 2)
        packed_micro<V, W, (MV > 2 ? 2 : 1), NR>(qp, P.stride, P.steps, b, d, out);
      else
        packed_micro<V, W, 1, NR>(qp, P.stride, P.steps, b, d, out);
      const int64_t width = vectors * W, ni = std::min(width, P.rows - i0);
      for (int64_t i = 0; i < ni; ++i)
        for (int64_t j = 0; j < nj; ++j) tile[(i0 + i) * ldt + j0 + j] = out[j * width + i];
      if (tile_t)
        for (int64_t j = 0; j < nj; ++j)
          std::memcpy(tile_t + (j0 + j) * ldt + i0, out + j * width, static_cast<size_t>(ni) * sizeof(float));
      i0 += width;
    }
  }
}

// Micro-tiles: AVX-512's 32 vector registers hold 3 x 8 accumulators; AVX2's 16 hold 2 x 6. A block
// of a single vector of rows takes 1 x 12 on both (wider would need more base-row pointers than
// there are general registers: measured 1 x 24 slower than 1 x 12). One wrapper per target: the
// template is compiled for each instruction set.
__attribute__((target("arch=x86-64-v4"))) void dot_tile_packed_w16(const PackedRows& P, const float* B, int64_t nb,
                                                                   float* tile, int64_t ldt, float* tile_t) {
  if (P.stride == 16)
    dot_tile_packed_impl<v16f, 16, 1, 12>(P, B, nb, tile, ldt, tile_t);
  else
    dot_tile_packed_impl<v16f, 16, 3, 8>(P, B, nb, tile, ldt, tile_t);
}
__attribute__((target("arch=x86-64-v3"))) void dot_tile_packed_w8(const PackedRows& P, const float* B, int64_t nb,
                                                                  float* tile, int64_t ldt, float* tile_t) {
  if (P.stride == 8)
    dot_tile_packed_impl<v8f, 8, 1, 12>(P, B, nb, tile, ldt, tile_t);
  else
    dot_tile_packed_impl<v8f, 8, 2, 6>(P, B, nb, tile, ldt, tile_t);
}
#endif

}  // namespace

void dot_tile(const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d, float* tile, int64_t ldt,
              const float* mu, float* tile_t) {
#ifdef CURATA_KNN_W16
  if (use_w16()) return dot_tile_w16(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
#endif
  dot_tile_w8(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
}

void self_dots(const float* X, int64_t rows, int64_t d, float* out, const float* mu) {
#ifdef CURATA_KNN_W16
  if (use_w16()) return self_dots_w16(X, rows, d, out, mu);
#endif
  self_dots_w8(X, rows, d, out, mu);
}

int packed_lanes_for(int64_t rows) {
#if defined(CURATA_KNN_W16)
  // The 8-lane kernel is compiled for x86-64-v3 and must only run where dot_tile_w8's clone
  // resolver also picks its x86-64-v3 (fused) copy: that resolver tests the whole ISA level, not
  // just AVX2 and FMA (a CPU or VM reporting those without, say, MOVBE or BMI2 gets the baseline,
  // unfused copy, whose bits differ, and could fault on the v3 code).
  static const bool v3 = __builtin_cpu_supports("x86-64-v3");
  const int lanes = use_w16() ? 16 : v3 ? 8 : 0;
  if (lanes == 0 || rows <= 0 || !simd::hand_kernels()) return 0;
  const int64_t stride = (rows + lanes - 1) / lanes * lanes;
  return 3 * rows >= 2 * stride ? lanes : 0;
#else
  (void)rows;
  return 0;
#endif
}

void pack_rows(const float* X, int64_t rows, int64_t d, int lanes, PackedRows& P) {
  P.rows = rows;
  P.d = d;
  P.lanes = lanes;
  P.steps = (d + lanes - 1) / lanes;
  P.stride = (rows + lanes - 1) / lanes * lanes;
  P.data.assign(static_cast<size_t>(lanes * P.steps * P.stride), 0.0f);
  // W x W sub-blocks: the W rows' cache lines are read once and every write run is contiguous.
  for (int64_t i0 = 0; i0 < rows; i0 += lanes) {
    const int64_t ni = std::min<int64_t>(lanes, rows - i0);
    for (int64_t s = 0; s < P.steps; ++s)
      for (int64_t l = 0; l < lanes && s * lanes + l < d; ++l) {
        float* dst = P.data.data() + (l * P.steps + s) * P.stride + i0;
        const float* src = X + i0 * d + s * lanes + l;
        for (int64_t i = 0; i < ni; ++i) dst[i] = src[i * d];
      }
  }
}

void dot_tile_any(const PackedRows* P, const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d, float* tile,
                  int64_t ldt, const float* mu, float* tile_t) {
#if defined(CURATA_KNN_W16)
  if (P && !mu && P->rows == mq && P->d == d && mq > 0) {
    if (P->lanes == 16) return dot_tile_packed_w16(*P, B, nb, tile, ldt, tile_t);
    if (P->lanes == 8) return dot_tile_packed_w8(*P, B, nb, tile, ldt, tile_t);
  }
#else
  (void)P;
#endif
  dot_tile(Q, mq, B, nb, d, tile, ldt, mu, tile_t);
}

}  // namespace kernels
}  // namespace search
}  // namespace curata
