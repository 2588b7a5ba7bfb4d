// Exact kNN: tiled dot products + a bounded heap per query kept in the query's output row.
//
// The dot products come from cpp/src/knn_kernels.hpp, whose kernels all evaluate a dot in one
// fixed order: results do not depend on the batch size or thread count, and a point's squared
// distance to an exact copy of itself is exactly 0.
//
// L2 is computed as |q'|^2 + |b'|^2 - 2<q', b'> on shifted rows q' = q - mu, b' = b - mu (a
// translation leaves distances unchanged). mu (l2_shift) is the mean of a fixed strided sample of
// base rows, rounded to a power-of-two grid a quarter of the data's rms spread wide, so data near the
// origin gets no shift (results bit-identical to the plain formula) and data far from it
// loses the cancellation of |q|^2 + |b|^2 against 2<q, b>: the error becomes about
// 1e-7 (|q'|^2 + |b'|^2) instead of 1e-7 (|q|^2 + |b|^2). No shifted copy of the base is ever made:
// the query-block path stages each base block, shifted, into the per-thread buffer the float16 path
// already uses (one subtraction per element per 96 queries); the scan path and the base norms, which
// read each row once, subtract mu inside the dot kernel as rows are loaded (same float32 values, so
// the same bits as staging: results stay independent of the path). Queries are staged per block. Both a row and its exact copy shift to the same floats,
// so the distance to an exact copy stays exactly 0; integer-valued data stays exact (mu on the grid).
#include "curata/search.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "curata/half.hpp"
#include "curata/parallel.hpp"
#include "curata/simd.hpp"
#include "knn_kernels.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define CURATA_HAVE_F16C_PATH 1
#endif

namespace curata {
namespace search {
namespace {

using kernels::dot_tile_any;
using kernels::kScanNR;
using kernels::pack_rows;
using kernels::packed_lanes_for;
using kernels::PackedRows;
using kernels::self_dots;

// Rows per query block, from the wanted count (<= kQueryBlock, which all units below divide):
// whole vectors of the outer-product kernel, else whole register blocks of the dot kernels (3 and
// 4 rows).
int64_t query_block_rows(int64_t rows) {
  const int lanes = packed_lanes_for(rows);
  const int64_t unit = lanes > 0 ? lanes : 12;
  return (rows + unit - 1) / unit * unit;
}

// The k best (score, index) pairs pushed, larger score better, ties to the lower index, kept in the
// caller's storage (score/index: a query's output row or a scratch row; finish() leaves them there,
// best first). Two ways to keep them, with the same result:
// - a bounded heap in score/index, the root being the worst kept pair: O(log k) per admitted pair;
// - for large k (use_buffer), a buffer of 2k candidates: pairs that beat the k-th best known are
//   appended, and a full buffer is cut back to its best k (nth_element), which gives the new k-th
//   best: O(1) amortised per admitted pair.
// Either way every pair is admitted until k have been, then only pairs that beat the k-th best (the
// buffer's k-th best may lag behind the true one: it then admits more pairs, never fewer), so both
// end with the k best of all pairs pushed. `full` and `threshold` are what consume_tile tests
// before pushing (a pair scoring below threshold cannot enter, and NaN cannot once full).
struct TopK {
  struct Candidate {
    float score;
    int64_t index;
  };
  float* score = nullptr;
  int64_t* index = nullptr;
  int64_t k = 0;
  int64_t size = 0;  // heap: pairs kept; buffer: candidates held
  bool full = false;  // k pairs admitted
  float threshold = -std::numeric_limits<float>::infinity();  // once full: heap root / buffer k-th best
  Candidate* buffer = nullptr;  // 2k candidates in buffer mode, else null
  bool cut_once = false;  // buffer: threshold/kth_index hold the k-th best of the last cut
  int64_t kth_index = 0;

  void reset(float* score_row, int64_t* index_row, int64_t k_, Candidate* buffer_ = nullptr) {
    score = score_row;
    index = index_row;
    k = k_;
    size = 0;
    full = false;
    threshold = -std::numeric_limits<float>::infinity();
    buffer = buffer_;
    cut_once = false;
  }

  // a worse than b
  static bool worse(float sa, int64_t ia, float sb, int64_t ib) { return sa < sb || (sa == sb && ia > ib); }
  static bool better(const Candidate& a, const Candidate& b) { return worse(b.score, b.index, a.score, a.index); }

  void sift_down(int64_t pos, int64_t n) {
    const float s = score[pos];
    const int64_t id = index[pos];
    for (;;) {
      int64_t child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && worse(score[child + 1], index[child + 1], score[child], index[child])) ++child;
      if (!worse(score[child], index[child], s, id)) break;
      score[pos] = score[child];
      index[pos] = index[child];
      pos = child;
    }
    score[pos] = s;
    index[pos] = id;
  }

  void push(float s, int64_t id) {
    if (buffer) return push_buffered(s, id);
    if (size < k) {
      int64_t pos = size++;
      while (pos > 0) {
        const int64_t parent = (pos - 1) / 2;
        if (!worse(s, id, score[parent], index[parent])) break;
        score[pos] = score[parent];
        index[pos] = index[parent];
        pos = parent;
      }
      score[pos] = s;
      index[pos] = id;
    } else {
      if (!worse(score[0], index[0], s, id)) return;
      score[0] = s;
      index[0] = id;
      sift_down(0, size);
    }
    if (size == k) {
      full = true;
      threshold = score[0];
    }
  }

  void push_buffered(float s, int64_t id) {
    if (cut_once && !worse(threshold, kth_index, s, id)) return;
    buffer[size++] = Candidate{s, id};
    full = full || size >= k;
    if (size == 2 * k) cut();
  }

  // Buffer: keep the best k candidates; the worst of them becomes the bar to beat.
  void cut() {
    std::nth_element(buffer, buffer + (k - 1), buffer + size, better);
    size = k;
    cut_once = true;
    threshold = buffer[k - 1].score;
    kth_index = buffer[k - 1].index;
  }

  // Best first into score/index; size = the number of pairs there.
  void finish() {
    if (buffer) {
      if (size > k) cut();
      std::sort(buffer, buffer + size, better);
      for (int64_t e = 0; e < size; ++e) {
        score[e] = buffer[e].score;
        index[e] = buffer[e].index;
      }
      return;
    }
    for (int64_t n = size; n > 1; --n) {
      std::swap(score[0], score[n - 1]);
      std::swap(index[0], index[n - 1]);
      sift_down(0, n - 1);
    }
  }
};

// From this k on, search_all keeps candidates in TopK's buffer mode (2k x 16 bytes per query of a
// block) instead of heaps.
constexpr int64_t kBufferedTopK = 128;

struct Problem {
  const float* base;
  int64_t n;
  const float* queries;
  int64_t m;
  int64_t d;
  Metric metric;
  bool exclude_self;
  const float* base_norm;  // squared norms (L2) or inverse norms (cosine); null for IP
  const uint8_t* removed;  // nonzero: the base row is never a result; null: none
};

// The base as float32 rows, stored either as float32 (used in place) or as IEEE half (each block
// converted into the caller's buffer of base_block_rows(d) x d floats right before use).
// shift (L2 only, d floats, or null): subtracted from every row while its block is staged.
struct BaseRows {
  const float* f32;
  const uint16_t* f16;
  int64_t d;
  const float* shift = nullptr;

  // fused: a float32 base is returned in place and *kernel_shift = shift, for the dot kernel to
  // subtract as it loads (the scan path and the norms: each row is read once, so staging would
  // cost a store and a reload per element); otherwise the shift is applied here.
  const float* block(int64_t b0, int64_t nb, float* buffer, bool fused, const float** kernel_shift) const {
    *kernel_shift = nullptr;
    if (fused && f32 && shift) {
      *kernel_shift = shift;
      return f32 + b0 * d;
    }
    return block(b0, nb, buffer);
  }
  const float* block(int64_t b0, int64_t nb, float* buffer) const {
    if (f32 && !shift) return f32 + b0 * d;
    if (f32) {
      shift_rows(f32 + b0 * d, nb, buffer);
      return buffer;
    }
    half_to_float(f16 + b0 * d, nb * d, buffer);
    if (shift) shift_rows(buffer, nb, buffer);
    return buffer;
  }
  bool needs_buffer() const { return f32 == nullptr || shift != nullptr; }

  // out[r][j] = in[r][j] - shift[j] (in may equal out).
  void shift_rows(const float* in, int64_t rows, float* out) const {
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = in + r * d;
      float* dst = out + r * d;
      for (int64_t j = 0; j < d; ++j) dst[j] = src[j] - shift[j];
    }
  }
  // The query rows [0, rows) shifted into buffer (at least rows x d floats), or Q itself.
  const float* queries(const float* Q, int64_t rows, std::vector<float>& buffer) const {
    if (!shift) return Q;
    if (buffer.size() < static_cast<size_t>(rows * d)) buffer.resize(static_cast<size_t>(rows * d));
    shift_rows(Q, rows, buffer.data());
    return buffer.data();
  }
};

// The L2 shift mu (d floats), or empty when none is needed. mu is the float64 mean of up to
// kShiftSample base rows at evenly strided positions (a fixed sample: no extra pass over the base,
// and any mu near the data's centre removes the cancellation equally well), rounded to a multiple
// of g = 2^(floor(log2(rms)) - 2), rms the sample's spread per coordinate. Rounding keeps values
// on coarse grids (small integers) exact after the shift. No shift (empty) unless |mean|^2 exceeds
// 4x the mean squared distance of the sample to its mean.
// Non-finite samples: no shift (the search then reports the bad rows as before).
// removed (optional): the sample is taken among the live rows only, at the same live ranks as in
// the table with the removed rows deleted, so an Index with removed rows shifts (and so rounds)
// exactly as a search over its live rows alone.
constexpr int64_t kShiftSample = 1024;

// Positions of the shift sample: live ranks floor(t live / s), t < s = min(live, kShiftSample).
std::vector<int64_t> shift_sample_rows(int64_t n, const uint8_t* removed) {
  int64_t live = n;
  if (removed)
    for (int64_t i = 0; i < n; ++i) live -= removed[i] != 0;
  const int64_t s = std::min(live, kShiftSample);
  std::vector<int64_t> rows(static_cast<size_t>(std::max<int64_t>(s, 0)));
  int64_t i = -1, rank = -1;  // position and live rank of the last live row passed
  for (int64_t t = 0; t < s; ++t) {
    const int64_t want = t * (live / s) + (t * (live % s)) / s;  // floor(t live / s) without overflow
    if (!removed) {
      rows[static_cast<size_t>(t)] = want;
      continue;
    }
    while (rank < want) rank += removed[++i] == 0;
    rows[static_cast<size_t>(t)] = i;
  }
  return rows;
}

std::vector<float> l2_shift(const BaseRows& base, int64_t n, int64_t d, const uint8_t* removed) {
  std::vector<float> mu;
  const std::vector<int64_t> sample = shift_sample_rows(n, removed);
  const int64_t s = static_cast<int64_t>(sample.size());
  if (s < 2) return mu;
  // One pass, per-coordinate float64 sums (vectorisable); sum of squares minus s mean^2 loses
  // only ~1e-16 |mean|^2 / spread relatively, far below what the factor-4 rule below can notice.
  std::vector<double> mean(static_cast<size_t>(d), 0.0), square(static_cast<size_t>(d), 0.0);
  std::vector<float> row(static_cast<size_t>(d));
  for (const int64_t i : sample) {
    const float* r = base.f32 ? base.f32 + i * d : row.data();
    if (!base.f32) half_to_float(base.f16 + i * d, d, row.data(), true);
    for (int64_t j = 0; j < d; ++j) {
      const double v = r[j];
      mean[j] += v;
      square[j] += v * v;
    }
  }
  double spread = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    mean[j] /= static_cast<double>(s);
    spread += std::max(0.0, square[j] - static_cast<double>(s) * mean[j] * mean[j]);
  }
  const double rms = std::sqrt(spread / static_cast<double>(s * d));
  if (!std::isfinite(rms)) return mu;
  for (int64_t j = 0; j < d; ++j)
    if (!std::isfinite(mean[j])) return mu;
  // Worth it only when the centre is far from the origin compared with the spread: the error of the
  // plain formula is then at least 5x that of the shifted one. Otherwise (centred data, or a few
  // huge rows among small ones, where shifted small rows could overflow) the formula stays plain.
  double centre = 0.0;
  for (int64_t j = 0; j < d; ++j) centre += mean[j] * mean[j];
  if (!(centre > 4.0 * spread / static_cast<double>(s))) return mu;
  mu.resize(static_cast<size_t>(d));
  bool any = false;
  for (int64_t j = 0; j < d; ++j) {
    double v = mean[j];
    if (rms > 0.0) {
      const double g = std::ldexp(1.0, std::ilogb(rms) - 2);
      v = std::nearbyint(v / g) * g;
    }
    mu[j] = static_cast<float>(v);
    if (!std::isfinite(mu[j])) return std::vector<float>();
    any |= mu[j] != 0.0f;
  }
  if (!any) mu.clear();
  return mu;
}

int64_t base_block_rows(int64_t d) {
  // About 128 KiB of base rows per block: they stay in L2 while the query block streams by.
  int64_t rows = (int64_t(32768) / std::max<int64_t>(1, d)) / kScanNR * kScanNR;
  return std::clamp<int64_t>(rows, 16, kBaseBlockMax);
}

// Turn a tile row of dots into scores (larger is better) in place: one branch-free pass per
// metric so the selection loop below is the same for all of them.
void dots_to_scores(Metric metric, float* row, int64_t nb, float qnorm, const float* bnorm) {
  if (metric == Metric::L2) {
    for (int64_t j = 0; j < nb; ++j) {
      const float dist = qnorm + bnorm[j] - 2.0f * row[j];
      // NaN (overflowed huge rows) must rank last, not clamp to 0 and rank first.
      row[j] = dist != dist ? -std::numeric_limits<float>::infinity() : -(dist > 0.0f ? dist : 0.0f);
    }
  } else if (metric == Metric::Cosine) {
    for (int64_t j = 0; j < nb; ++j) row[j] = row[j] * qnorm * bnorm[j];
  }
}

constexpr int64_t kChunk = 16;
// Bit t set when p[t] >= worst, for the kChunk floats at p (clear for NaN, as in the scalar test).
CURATA_ALWAYS_INLINE uint32_t at_least_mask(const float* p, float worst) {
#if defined(__SSE2__)
  const __m128 w = _mm_set1_ps(worst);
  const uint32_t m0 = static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p), w)));
  const uint32_t m1 = static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 4), w)));
  const uint32_t m2 = static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 8), w)));
  const uint32_t m3 = static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 12), w)));
  return m0 | (m1 << 4) | (m2 << 8) | (m3 << 12);
#else
  uint32_t mask = 0;
  for (int64_t t = 0; t < kChunk; ++t) mask |= static_cast<uint32_t>(p[t] >= worst) << t;
  return mask;
#endif
}

// Feed the candidates of base rows [b0, b0 + nb) for queries [q0, q0 + mq) into heaps[0..mq).
// tile: mq x nb dots (overwritten by scores); qnorm: per query squared norm (L2) or inverse norm
// (cosine).
// Returns true when a dot product was NaN or infinite: a non-finite input row makes every dot
// product with it non-finite (NaN propagates, inf * 0 is NaN, inf + -inf is NaN), so this detects
// bad input without a separate pass over the data; finite rows can also get here by overflow.
// check_finite false skips that check (the caller checks the same dots elsewhere: false returned).
bool consume_tile(const Problem& p, int64_t q0, int64_t mq, int64_t b0, int64_t nb, float* tile, int64_t ldt,
                  const float* qnorm, TopK* heaps, bool check_finite = true) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const float max_float = std::numeric_limits<float>::max();
  int bad = 0;
  for (int64_t i = 0; i < mq; ++i) {
    TopK& h = heaps[i];
    float* row = tile + i * ldt;
    if (check_finite)
      for (int64_t j = 0; j < nb; ++j) bad |= !(std::fabs(row[j]) <= max_float);
    if (p.metric != Metric::InnerProduct) dots_to_scores(p.metric, row, nb, qnorm[i], p.base_norm + b0);
    const int64_t self = p.exclude_self ? q0 + i : -1;
    auto offer = [&](int64_t j) {
      float s = row[j];
      if (h.full && !(s >= h.threshold)) return;  // not good enough (or NaN)
      if (s != s) s = neg_inf;                    // overflowed arithmetic ranks last
      if (b0 + j == self || (p.removed && p.removed[b0 + j])) return;
      h.push(s, b0 + j);
    };
    for (int64_t c0 = 0; c0 < nb; c0 += kChunk) {
      const int64_t c1 = std::min(nb, c0 + kChunk);
      if (h.full && c1 - c0 == kChunk) {
        // Once full, only the chunk's floats at or above the threshold (a vector compare) are
        // offered. The threshold only rises while pushing, so this skips exactly what offer's own
        // test would, and NaN, which fails both, is never offered.
        for (uint32_t mask = at_least_mask(row + c0, h.threshold); mask != 0; mask &= mask - 1)
          offer(c0 + __builtin_ctz(mask));
        continue;
      }
      for (int64_t j = c0; j < c1; ++j) offer(j);
    }
  }
  return bad != 0;
}

// Cosine over a float32 base: watches the rows as their norms are computed for one whose scale
// would overflow or underflow float32 norms (cosine_row_needs_scale), so that knn() can rescale
// the base and search again. The squared norm s of a row of d values decides most rows for free:
// if d 2^-99 <= s <= 2^99, the largest |value| t has t^2 <= s <= 2^99 and t^2 >= s / d >= 2^-99,
// so t lies inside [2^-50, 2^50] with room for s's float32 rounding; only the other rows (zero,
// non-finite, or at the edges) get the exact test on their bits.
struct ScaleWatch {
  std::atomic<bool> found{false};
  void look(const float* rows, int64_t nb, int64_t d) {
    if (found.load(std::memory_order_relaxed)) return;
    for (int64_t r = 0; r < nb; ++r) {
      uint32_t top;
      row_abs_max_bits(reinterpret_cast<const uint32_t*>(rows + r * d), 1, d, &top);
      if (cosine_row_needs_scale(top)) {
        found.store(true, std::memory_order_relaxed);
        return;
      }
    }
  }
  void look_by_norms(const float* rows, const float* squared_norms, int64_t nb, int64_t d) {
    const float low = std::ldexp(static_cast<float>(d), -99), high = std::ldexp(1.0f, 99);
    for (int64_t r = 0; r < nb; ++r)
      if (!(squared_norms[r] >= low && squared_norms[r] <= high)) look(rows + r * d, 1, d);
  }
};

// Squared norms (L2) or inverse norms (cosine) of rows Q (watched, cosine: see ScaleWatch).
void query_norms(const Problem& p, const float* Q, int64_t mq, float* out, const float* mu = nullptr,
                 ScaleWatch* watch = nullptr) {
  if (p.metric == Metric::InnerProduct) return;
  self_dots(Q, mq, p.d, out, mu);
  if (watch) watch->look_by_norms(Q, out, mq, p.d);
  if (p.metric == Metric::Cosine)
    for (int64_t i = 0; i < mq; ++i) out[i] = out[i] > 0.0f ? 1.0f / std::sqrt(out[i]) : 0.0f;
}

void finish_rows(Metric metric, float* distances, int64_t rows, int64_t k, TopK* heaps) {
  for (int64_t i = 0; i < rows; ++i) {
    heaps[i].finish();
    if (metric == Metric::L2)
      for (int64_t j = 0; j < k; ++j) distances[i * k + j] = -distances[i * k + j] + 0.0f;  // no -0
  }
}

}  // namespace

int64_t first_nonfinite_row(const float* x, int64_t rows, int64_t d) {
  int64_t first = rows;
  const int threads = threads_for(rows * d, int64_t(1) << 18);
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first) if (threads > 1)
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x + i * d;
    int bad = 0;
    for (int64_t j = 0; j < d; ++j) bad |= !(std::fabs(r[j]) <= std::numeric_limits<float>::max());
    if (bad && i < first) first = i;
  }
  return first == rows ? -1 : first;
}

int64_t first_nonfinite_row_f16(const uint16_t* x, int64_t rows, int64_t d) {
  for (int64_t i = 0; i < rows; ++i) {
    int bad = 0;
    for (int64_t j = 0; j < d; ++j) bad |= half_bits_nonfinite(x[i * d + j]);
    if (bad) return i;
  }
  return -1;
}

#ifdef CURATA_HAVE_F16C_PATH
namespace {
__attribute__((target("avx,f16c"))) void half_to_float_f16c(const uint16_t* in, int64_t count, float* out) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < count; ++i) out[i] = half_bits_to_float(in[i]);
}
__attribute__((target("avx,f16c"))) void float_to_half_f16c(const float* in, int64_t count, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < count; ++i) out[i] = float_to_half_bits(in[i]);
}
bool have_f16c() {
  static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return yes;
}
}  // namespace
#endif

void half_to_float(const uint16_t* in, int64_t count, float* out, bool allow_hardware) {
#ifdef CURATA_HAVE_F16C_PATH
  if (allow_hardware && have_f16c()) return half_to_float_f16c(in, count, out);
#endif
  (void)allow_hardware;
  for (int64_t i = 0; i < count; ++i) out[i] = half_bits_to_float(in[i]);
}

int64_t float_to_half_rows(const float* in, int64_t rows, int64_t d, uint16_t* out, bool allow_hardware) {
  const int64_t count = rows * d;
#ifdef CURATA_HAVE_F16C_PATH
  if (allow_hardware && have_f16c()) {
    float_to_half_f16c(in, count, out);
  } else
#endif
  {
    for (int64_t i = 0; i < count; ++i) out[i] = float_to_half_bits(in[i]);
  }
  (void)allow_hardware;
  return first_nonfinite_row_f16(out, rows, d);
}

namespace {
void search_all(const BaseRows& base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
                Metric metric, bool exclude_self, const uint8_t* removed, float* distances, int64_t* indices,
                std::atomic<bool>& saw_nonfinite, ScaleWatch* watch);
void search_graph(const BaseRows& base, int64_t n, int64_t d, int64_t k, Metric metric, const uint8_t* removed,
                  float* distances, int64_t* indices, int64_t block_rows, std::atomic<bool>& saw_nonfinite,
                  ScaleWatch* watch);

void check_problem(int64_t n, int64_t d, Metric metric) {
  if (n < 0) throw std::invalid_argument("base must have at least zero rows, got " + std::to_string(n));
  if (d < 1) throw std::invalid_argument("vectors must have at least one dimension, got d = " + std::to_string(d));
  if (metric != Metric::InnerProduct && metric != Metric::L2 && metric != Metric::Cosine)
    throw std::invalid_argument("unknown metric code " + std::to_string(static_cast<int>(metric)));
}

// graph_block_rows > 0 (exclude_self only): the symmetric self-join with blocks of that many rows.
// watch (float32 base, cosine): see ScaleWatch; the results are to be discarded when it finds a row.
KnnStatus knn_any(const BaseRows& base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
                  Metric metric, bool exclude_self, const uint8_t* removed, float* distances, int64_t* indices,
                  int64_t graph_block_rows = 0, ScaleWatch* watch = nullptr) {
  if (n < 1) throw std::invalid_argument("base must have at least one row, got 0");
  check_problem(n, d, metric);
  const int64_t candidates = exclude_self ? n - 1 : n;
  if (exclude_self && m != n) throw std::invalid_argument("exclude_self needs queries == base");
  if (k < 1 || k > candidates)
    throw std::invalid_argument("k must be in [1, " + std::to_string(candidates) + "], got " + std::to_string(k));
  KnnStatus status;
  std::atomic<bool> saw_nonfinite{m == 0};  // no dot products: check the base directly
  if (m > 0) {
    const std::vector<float> mu = metric == Metric::L2 ? l2_shift(base, n, d, removed) : std::vector<float>();
    BaseRows shifted = base;
    shifted.shift = mu.empty() ? nullptr : mu.data();
    if (graph_block_rows > 0 && exclude_self)
      search_graph(shifted, n, d, k, metric, removed, distances, indices, graph_block_rows, saw_nonfinite, watch);
    else
      search_all(shifted, n, queries, m, d, k, metric, exclude_self, removed, distances, indices, saw_nonfinite,
                 watch);
  }
  if (saw_nonfinite.load()) {
    status.nonfinite_base_row =
        base.f32 ? first_nonfinite_row(base.f32, n, d) : first_nonfinite_row_f16(base.f16, n, d);
    if (!exclude_self) status.nonfinite_query_row = first_nonfinite_row(queries, m, d);
  }
  return status;
}

// Squared norms (L2) or inverse norms (Cosine) of every base row, through the same kernel as the
// queries' norms; empty for InnerProduct.
std::vector<float> base_norms(const BaseRows& base, int64_t n, int64_t d, Metric metric,
                              ScaleWatch* watch = nullptr) {
  std::vector<float> base_norm;
  if (metric == Metric::InnerProduct) return base_norm;
  base_norm.resize(static_cast<size_t>(n));
  Problem tmp{nullptr, n, nullptr, 0, d, metric, false, nullptr, nullptr};
  const int threads = threads_for(n * d, int64_t(1) << 18);
  const int64_t chunk = (n + threads - 1) / threads;
  const int64_t nb_max = base_block_rows(d);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int t = 0; t < threads; ++t) {
    std::vector<float> buffer(base.needs_buffer() ? static_cast<size_t>(nb_max * d) : 0);
    const int64_t r0 = t * chunk, r1 = std::min(n, r0 + chunk);
    for (int64_t b0 = r0; b0 < r1; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, r1 - b0);
      const float* mu;
      const float* rows = base.block(b0, nb, buffer.data(), true, &mu);
      query_norms(tmp, rows, nb, base_norm.data() + b0, mu, watch);
    }
  }
  return base_norm;
}

void search_all(const BaseRows& base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
                Metric metric, bool exclude_self, const uint8_t* removed, float* distances, int64_t* indices,
                std::atomic<bool>& saw_nonfinite, ScaleWatch* watch) {
  // Few queries read the base once, so each block's norms are computed right before its dots, while
  // its rows are in cache, instead of in a pass of their own (same kernel, same bits).
  const bool norms_per_block = m < kScanMaxQueries && metric != Metric::InnerProduct;
  std::vector<float> base_norm;
  if (norms_per_block)
    base_norm.resize(static_cast<size_t>(n));
  else
    base_norm = base_norms(base, n, d, metric, watch);
  const Problem p{base.f32, n,  queries, m, d, metric, exclude_self, base_norm.empty() ? nullptr : base_norm.data(),
                  removed};
  const Problem norm_problem{nullptr, n, nullptr, 0, d, metric, false, nullptr, nullptr};
  const int64_t nb_max = base_block_rows(d);
  const int64_t work = m * n * d;

  if (m < kScanMaxQueries) {
    // Few queries: split the base across threads, merge the per-thread heaps.
    const int threads = std::max(1, std::min<int>(threads_for(work, int64_t(1) << 22),
                                                  static_cast<int>((n + nb_max - 1) / nb_max)));
    const int64_t chunk = (n + threads - 1) / threads;
    // Buffer mode: up to 2k candidates per query and thread, plus per query for the merge. A buffer
    // is cut only once it holds 2k, and a thread is offered at most `chunk` candidates per query
    // (the merge at most n), so room for fewer than 2k is enough there: k near n then costs
    // 2 x M x n candidates in all, not (threads + 1) x M x 2n. The threads' buffers go straight into
    // the merge (no heap rows of their own).
    const bool buffered = k >= kBufferedTopK;
    const int64_t per_thread_query = buffered ? std::min(2 * k, chunk) : 0;
    const int64_t per_merge_query = buffered && threads > 1 ? std::min(2 * k, n) : 0;
    std::vector<float> scratch_score(static_cast<size_t>(threads > 1 && !buffered ? threads * m * k : 0));
    std::vector<int64_t> scratch_index(scratch_score.size());
    std::vector<TopK> all_heaps(static_cast<size_t>(threads * m));
    std::vector<TopK::Candidate> pool(static_cast<size_t>(threads * m * per_thread_query + m * per_merge_query));
    auto candidates = [&](int64_t slot) {
      if (!buffered) return static_cast<TopK::Candidate*>(nullptr);
      return slot < threads * m ? pool.data() + slot * per_thread_query
                                : pool.data() + threads * m * per_thread_query + (slot - threads * m) * per_merge_query;
    };
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int t = 0; t < threads; ++t) {
      TopK* heaps = all_heaps.data() + t * m;
      for (int64_t i = 0; i < m; ++i) {
        if (threads > 1 && buffered)
          heaps[i].reset(nullptr, nullptr, k, candidates(t * m + i));  // never finished: merged from its buffer
        else if (threads > 1)
          heaps[i].reset(scratch_score.data() + (t * m + i) * k, scratch_index.data() + (t * m + i) * k, k,
                         candidates(t * m + i));
        else
          heaps[i].reset(distances + i * k, indices + i * k, k, candidates(i));
      }
      std::vector<float> tile(static_cast<size_t>(m * nb_max));
      std::vector<float> qnorm(static_cast<size_t>(m));
      std::vector<float> buffer(base.needs_buffer() ? static_cast<size_t>(nb_max * d) : 0);
      std::vector<float> qbuffer;
      const float* Q = base.queries(queries, m, qbuffer);
      query_norms(p, Q, m, qnorm.data());
      // (the outer-product kernel takes no shift: shifted L2 stays on the dot kernel, fused)
      const int lanes = base.shift ? 0 : packed_lanes_for(m);
      PackedRows packed;
      if (lanes > 0) pack_rows(Q, m, d, lanes, packed);
      const int64_t r0 = t * chunk, r1 = std::min(n, r0 + chunk);
      for (int64_t b0 = r0; b0 < r1; b0 += nb_max) {
        const int64_t nb = std::min(nb_max, r1 - b0);
        const float* mu;
        const float* rows = base.block(b0, nb, buffer.data(), true, &mu);
        if (norms_per_block) {
          query_norms(norm_problem, rows, nb, base_norm.data() + b0, mu, watch);
        }
        dot_tile_any(lanes > 0 ? &packed : nullptr, Q, m, rows, nb, d, tile.data(), nb_max, mu);
        if (consume_tile(p, 0, m, b0, nb, tile.data(), nb_max, qnorm.data(), heaps))
          saw_nonfinite.store(true, std::memory_order_relaxed);
      }
    }
    std::vector<TopK> out(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      if (threads == 1) {
        out[i] = all_heaps[i];
        continue;
      }
      out[i].reset(distances + i * k, indices + i * k, k, candidates(threads * m + i));
      for (int t = 0; t < threads; ++t) {
        TopK& h = all_heaps[t * m + i];
        if (h.buffer) {  // its candidates, a superset of its best k (the merge keeps the best k of all)
          for (int64_t e = 0; e < h.size; ++e) out[i].push(h.buffer[e].score, h.buffer[e].index);
          continue;
        }
        h.finish();  // the thread's best, into its scratch row
        for (int64_t e = 0; e < h.size; ++e) out[i].push(h.score[e], h.index[e]);
      }
    }
    finish_rows(metric, distances, m, k, out.data());
    return;
  }

  // Many queries: blocks of queries across threads, each block sweeps the whole base.
  const int threads = threads_for(work, int64_t(1) << 22);
  int64_t qb = std::min<int64_t>(kQueryBlock, (m + threads - 1) / threads);
  qb = query_block_rows(qb);
  const int64_t n_blocks = (m + qb - 1) / qb;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> tile(static_cast<size_t>(qb * nb_max));
    std::vector<float> qnorm(static_cast<size_t>(qb));
    std::vector<TopK> heaps(static_cast<size_t>(qb));
    // (a query is offered at most n candidates: a buffer of n never fills up to 2k > n)
    const int64_t per_query = k >= kBufferedTopK ? std::min(2 * k, n) : 0;
    std::vector<TopK::Candidate> pool(static_cast<size_t>(qb * per_query));
    std::vector<float> buffer(base.needs_buffer() ? static_cast<size_t>(nb_max * d) : 0);
    std::vector<float> qbuffer(base.shift ? static_cast<size_t>(qb * d) : 0);
    PackedRows packed;
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const int64_t q0 = blk * qb, mq = std::min(qb, m - q0);
      const float* Q = base.queries(queries + q0 * d, mq, qbuffer);
      const int lanes = packed_lanes_for(mq);
      const bool use_packed = lanes > 0;
      if (use_packed) pack_rows(Q, mq, d, lanes, packed);
      for (int64_t i = 0; i < mq; ++i)
        heaps[i].reset(distances + (q0 + i) * k, indices + (q0 + i) * k, k,
                       per_query ? pool.data() + i * per_query : nullptr);
      query_norms(p, Q, mq, qnorm.data());
      for (int64_t b0 = 0; b0 < n; b0 += nb_max) {
        const int64_t nb = std::min(nb_max, n - b0);
        dot_tile_any(use_packed ? &packed : nullptr, Q, mq, base.block(b0, nb, buffer.data()), nb, d, tile.data(),
                     nb_max);
        if (consume_tile(p, q0, mq, b0, nb, tile.data(), nb_max, qnorm.data(), heaps.data()))
          saw_nonfinite.store(true, std::memory_order_relaxed);
      }
      finish_rows(metric, distances + q0 * k, mq, k, heaps.data());
    }
  }
}

// Symmetric self-join (kNN graph): rows are cut into blocks of S rows; only the tiles (I, J) with
// J >= I are computed, and each off-diagonal tile feeds the heaps of row block I (block J as the
// base: the "row side") and, transposed, those of row block J (block I as the base: the "column
// side"). dot(x_i, x_j) is the same float as dot(x_j, x_i): per lane every step is one multiply-add
// whose product is commutative (fma(a, b, c) == fma(b, a, c), and so is a rounded a * b), the
// zero-padded tail and the reduction order are those of every other dot, and both rows are staged
// by the same BaseRows code (L2: both shifted by mu). The norms of row j as a query and as a base
// row are the same base_norm entry (the general path computes the query's through the same kernel:
// same bits). The scores are not symmetric (cosine: (dot * inv_i) * inv_j rounds differently from
// (dot * inv_j) * inv_i), so the kernel writes the raw dots and their transpose and each side goes
// through consume_tile with its own norms: every candidate gets the float the general path gives it.
//
// Order: every heap receives its candidates in increasing base index, as in the general path (so
// even NaN scores from overflow, which the heap's early-out skips, give the same bits). Heap block J
// gets the column sides of rows 0, 1, ..., J - 1 in that order, then its own row's row sides left to
// right. A thread claims row blocks in increasing order (a shared counter) and computes its row's
// tiles left to right. progress[I] = the first J whose column side row I has not applied yet; row I
// applies the column side of (I, J) once progress[I - 1] > J, and its row sides once
// progress[I - 1] > I (then every earlier row is done with heap I, transitively). So no two threads
// ever touch one heap, and results do not depend on the thread count or on the timing.
//
// Lag: a thread does not wait for the row ahead to apply a tile: it keeps computing its own tiles
// into up to kGraphLag slots (tile + transpose) and applies each side as soon as it may; it waits
// only when all slots hold tiles or its row is done. A row ahead preempted for a while (a shared
// machine) then stalls the rows behind it only after kGraphLag tiles. Waits spin briefly, then yield.
constexpr int64_t kGraphLag = 8;

void pause_or_yield(int& spins) {
  if (++spins < 256) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

void search_graph(const BaseRows& base, int64_t n, int64_t d, int64_t k, Metric metric, const uint8_t* removed,
                  float* distances, int64_t* indices, int64_t block_rows, std::atomic<bool>& saw_nonfinite,
                  ScaleWatch* watch) {
  const std::vector<float> base_norm = base_norms(base, n, d, metric, watch);
  const Problem p{base.f32, n, base.f32, n, d, metric, true, base_norm.empty() ? nullptr : base_norm.data(), removed};
  const int64_t S = block_rows;
  const int64_t blocks = (n + S - 1) / S;
  std::vector<TopK> heaps(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) heaps[i].reset(distances + i * k, indices + i * k, k);  // heaps: n rows live
  std::unique_ptr<std::atomic<int64_t>[]> progress(new std::atomic<int64_t>[static_cast<size_t>(blocks)]);
  for (int64_t b = 0; b < blocks; ++b) progress[b].store(b, std::memory_order_relaxed);
  std::atomic<int64_t> next_block{0};
  const float* norm = p.base_norm;
  const int threads = std::max(1, std::min<int>(threads_for(n * n * d / 2, int64_t(1) << 22),
                                                static_cast<int>(std::min<int64_t>(blocks, 1 << 20))));
  const int64_t lag = std::min(kGraphLag, blocks);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    // Slots of two S x S floats (tile, transpose). A tile takes the most recently freed slot, so
    // a row that never waits keeps reusing one slot (cache-hot) instead of cycling through all.
    std::vector<float> ring(static_cast<size_t>(2 * lag * S * S));
    std::vector<int64_t> free_slots(static_cast<size_t>(lag)), slot_of(static_cast<size_t>(lag));
    std::vector<float> row_buffer(base.needs_buffer() ? static_cast<size_t>(S * d) : 0);
    std::vector<float> col_buffer(row_buffer.size());
    PackedRows packed;
    bool bad = false;
    for (int64_t I = next_block.fetch_add(1); I < blocks; I = next_block.fetch_add(1)) {
      const int64_t i0 = I * S, mi = std::min(S, n - i0);
      const float* rows_i = base.block(i0, mi, row_buffer.data());
      const int lanes = packed_lanes_for(mi);
      const bool use_packed = lanes > 0;
      if (use_packed) pack_rows(rows_i, mi, d, lanes, packed);
      for (int64_t t = 0; t < lag; ++t) free_slots[t] = lag - 1 - t;
      int64_t n_free = lag;
      // Tiles (I, J) for J in [released, computed) hold a slot (slot_of[(J - I) % lag]); those
      // below row_applied / col_applied have had their row / column side applied.
      int64_t computed = I, row_applied = I, col_applied = I, released = I;
      auto slot = [&](int64_t J) { return ring.data() + slot_of[(J - I) % lag] * 2 * S * S; };
      // Applies what may be applied now; keeps waiting until `until` tiles are fully applied.
      auto apply = [&](int64_t until) {
        for (int spins = 0;; pause_or_yield(spins)) {
          const int64_t ready = I == 0 ? blocks : progress[I - 1].load(std::memory_order_acquire);
          for (; col_applied < computed && (col_applied == I || ready > col_applied); ++col_applied) {
            const int64_t J = col_applied;
            if (J == I) continue;  // the diagonal tile has no column side
            const int64_t j0 = J * S, nj = std::min(S, n - j0);
            // the same dots as the row side: their finiteness is checked there
            consume_tile(p, j0, nj, i0, mi, slot(J) + S * S, S, norm ? norm + j0 : nullptr, heaps.data() + j0,
                         false);
            progress[I].store(J + 1, std::memory_order_release);
          }
          if (ready > I) {
            for (; row_applied < computed; ++row_applied) {
              const int64_t J = row_applied;
              const int64_t j0 = J * S, nj = std::min(S, n - j0);
              bad |= consume_tile(p, i0, mi, j0, nj, slot(J), S, norm ? norm + i0 : nullptr, heaps.data() + i0);
            }
          }
          for (; released < std::min(row_applied, col_applied); ++released)
            free_slots[n_free++] = slot_of[(released - I) % lag];
          if (released >= until) return;
        }
      };
      for (int64_t J = I; J < blocks; ++J) {
        if (n_free == 0) apply(released + 1);
        slot_of[(J - I) % lag] = free_slots[--n_free];
        const int64_t j0 = J * S, nj = std::min(S, n - j0);
        const float* rows_j = J == I ? rows_i : base.block(j0, nj, col_buffer.data());
        float* tile = slot(J);
        dot_tile_any(use_packed ? &packed : nullptr, rows_i, mi, rows_j, nj, d, tile, S, nullptr,
                     J == I ? nullptr : tile + S * S);
        computed = J + 1;
        apply(I);  // whatever may be applied already, without waiting
      }
      apply(blocks);
      finish_rows(metric, distances + i0 * k, mi, k, heaps.data() + i0);
    }
    if (bad) saw_nonfinite.store(true, std::memory_order_relaxed);
  }
}

// Hits of one query within one base chunk, in increasing base index.
struct Hits {
  std::vector<int64_t> index;
  std::vector<float> score;
};

// One pass over the tiles: every (query block, base chunk) pair is a task; a query's hits from
// chunk c go to hits[c * m + query], so concatenating chunks in order gives increasing base index.
void range_all(const BaseRows& base, int64_t n, const float* queries, int64_t m, int64_t d, float radius,
               Metric metric, const uint8_t* removed, std::vector<Hits>& hits, int64_t& chunks,
               std::atomic<bool>& saw_nonfinite) {
  const std::vector<float> base_norm = base_norms(base, n, d, metric);
  const Problem p{base.f32, n,     queries, m, d, metric, false, base_norm.empty() ? nullptr : base_norm.data(),
                  removed};
  const int64_t nb_max = base_block_rows(d);
  const int threads = threads_for(m * n * d, int64_t(1) << 22);
  int64_t qb;
  if (m < kScanMaxQueries) {
    qb = m;
    chunks = std::max<int64_t>(1, std::min<int64_t>(threads, (n + nb_max - 1) / nb_max));
  } else {
    qb = std::min<int64_t>(kQueryBlock, (m + threads - 1) / threads);
    qb = query_block_rows(qb);
    chunks = 1;
  }
  const int64_t chunk_rows = (n + chunks - 1) / chunks;
  const int64_t n_blocks = (m + qb - 1) / qb;
  hits.assign(static_cast<size_t>(chunks * m), Hits{});
  // Scores are "larger is better" (L2: negated squared distance), as in consume_tile.
  const float threshold = metric == Metric::L2 ? -radius : radius;
  const float max_float = std::numeric_limits<float>::max();
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> tile(static_cast<size_t>(qb * nb_max));
    std::vector<float> qnorm(static_cast<size_t>(qb));
    std::vector<float> buffer(base.needs_buffer() ? static_cast<size_t>(nb_max * d) : 0);
    std::vector<float> qbuffer(base.shift ? static_cast<size_t>(qb * d) : 0);
    PackedRows packed;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_blocks * chunks; ++task) {
      const int64_t blk = task / chunks, c = task % chunks;
      const int64_t q0 = blk * qb, mq = std::min(qb, m - q0);
      const float* Q = base.queries(queries + q0 * d, mq, qbuffer);
      // (the scan case, m < kScanMaxQueries, passes the L2 shift to the kernel: the dot kernel's)
      const int lanes = m >= kScanMaxQueries ? packed_lanes_for(mq) : 0;
      const bool use_packed = lanes > 0;
      if (use_packed) pack_rows(Q, mq, d, lanes, packed);
      query_norms(p, Q, mq, qnorm.data());
      const int64_t r0 = c * chunk_rows, r1 = std::min(n, r0 + chunk_rows);
      int bad = 0;
      for (int64_t b0 = r0; b0 < r1; b0 += nb_max) {
        const int64_t nb = std::min(nb_max, r1 - b0);
        const float* mu;
        const float* rows = base.block(b0, nb, buffer.data(), m < kScanMaxQueries, &mu);
        dot_tile_any(use_packed ? &packed : nullptr, Q, mq, rows, nb, d, tile.data(), nb_max, mu);
        for (int64_t i = 0; i < mq; ++i) {
          float* row = tile.data() + i * nb_max;
          for (int64_t j = 0; j < nb; ++j) bad |= !(std::fabs(row[j]) <= max_float);
          if (metric != Metric::InnerProduct) dots_to_scores(metric, row, nb, qnorm[i], p.base_norm + b0);
          Hits& h = hits[static_cast<size_t>(c * m + q0 + i)];
          for (int64_t j = 0; j < nb; ++j) {
            if (row[j] >= threshold && !(removed && removed[b0 + j])) {  // false for NaN
              h.index.push_back(b0 + j);
              h.score.push_back(row[j]);
            }
          }
        }
      }
      if (bad) saw_nonfinite.store(true, std::memory_order_relaxed);
    }
  }
}

RangeResult range_any(const BaseRows& base, int64_t n, const float* queries, int64_t m, int64_t d, float radius,
                      Metric metric, const uint8_t* removed) {
  check_problem(n, d, metric);
  if (m < 0) throw std::invalid_argument("queries must have at least zero rows, got " + std::to_string(m));
  if (radius != radius) throw std::invalid_argument("radius must not be NaN");
  RangeResult out;
  out.lims.assign(static_cast<size_t>(m + 1), 0);
  if (m == 0 || n == 0) return out;
  std::vector<Hits> hits;
  int64_t chunks = 1;
  std::atomic<bool> saw_nonfinite{false};
  const std::vector<float> mu = metric == Metric::L2 ? l2_shift(base, n, d, removed) : std::vector<float>();
  BaseRows shifted = base;
  shifted.shift = mu.empty() ? nullptr : mu.data();
  range_all(shifted, n, queries, m, d, radius, metric, removed, hits, chunks, saw_nonfinite);
  for (int64_t i = 0; i < m; ++i) {
    int64_t count = 0;
    for (int64_t c = 0; c < chunks; ++c) count += static_cast<int64_t>(hits[c * m + i].index.size());
    out.lims[i + 1] = out.lims[i] + count;
  }
  const int64_t total = out.lims[m];
  out.distances.resize(static_cast<size_t>(total));
  out.indices.resize(static_cast<size_t>(total));
  const bool l2 = metric == Metric::L2;
  const int threads = threads_for(total, int64_t(1) << 16);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16) if (threads > 1)
  for (int64_t i = 0; i < m; ++i) {
    int64_t pos = out.lims[i];
    for (int64_t c = 0; c < chunks; ++c) {
      Hits& h = hits[c * m + i];
      const int64_t cnt = static_cast<int64_t>(h.index.size());
      for (int64_t e = 0; e < cnt; ++e) {
        out.indices[pos + e] = h.index[e];
        out.distances[pos + e] = l2 ? -h.score[e] + 0.0f : h.score[e];  // no -0
      }
      pos += cnt;
      std::vector<int64_t>().swap(h.index);  // free as we go: the peak stays near one copy
      std::vector<float>().swap(h.score);
    }
  }
  if (saw_nonfinite.load()) {
    out.status.nonfinite_base_row =
        base.f32 ? first_nonfinite_row(base.f32, n, d) : first_nonfinite_row_f16(base.f16, n, d);
    out.status.nonfinite_query_row = first_nonfinite_row(queries, m, d);
  }
  return out;
}

}  // namespace

namespace {
// search(base, watch) over the float32 base x; for cosine, the watch looks at the base rows while
// their norms are computed, and if one's scale breaks float32 arithmetic (cosine_row_needs_scale:
// rare, values beyond about 1e15 or below 1e-15) the search runs again on a copy with such rows
// rescaled by powers of two (exact; cosine is scale-free). So no caller needs a pass of its own.
template <class Search>
KnnStatus with_cosine_scale_watch(const float* x, int64_t n, int64_t d, Metric metric, const Search& search) {
  if (metric != Metric::Cosine) return search(x, nullptr);
  ScaleWatch watch;
  const KnnStatus status = search(x, &watch);
  if (!watch.found.load()) return status;
  std::vector<float> scaled(static_cast<size_t>(n * d));
  cosine_rescale_rows(x, n, d, scaled.data());
  return search(scaled.data(), nullptr);
}
}  // namespace

KnnStatus knn(const float* base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k, Metric metric,
              bool exclude_self, float* distances, int64_t* indices, const uint8_t* removed) {
  // Cosine: the queries get an explicit look (m x d values, next to the search's m x n x d).
  std::vector<float> scaled_queries;
  if (metric == Metric::Cosine && queries != base) {
    ScaleWatch look;
    look.look(queries, m, d);
    if (look.found.load()) {
      scaled_queries.resize(static_cast<size_t>(m * d));
      cosine_rescale_rows(queries, m, d, scaled_queries.data());
      queries = scaled_queries.data();
    }
  }
  return with_cosine_scale_watch(base, n, d, metric, [&](const float* b, ScaleWatch* watch) {
    const float* q = queries == base ? b : queries;  // a self-search keeps both sides identical
    return knn_any(BaseRows{b, nullptr, d}, n, q, m, d, k, metric, exclude_self, removed, distances, indices, 0,
                   watch);
  });
}

KnnStatus knn_graph(const float* x, int64_t n, int64_t d, int64_t k, Metric metric, float* distances,
                    int64_t* indices, GraphPath path, int64_t block_rows) {
  if (block_rows < 0 || block_rows > kBaseBlockMax)
    throw std::invalid_argument("block_rows must be in [0, " + std::to_string(kBaseBlockMax) + "], got " +
                                std::to_string(block_rows));
  if (path != GraphPath::Auto && path != GraphPath::General && path != GraphPath::Symmetric)
    throw std::invalid_argument("unknown graph path code " + std::to_string(static_cast<int>(path)));
  const int64_t rows = block_rows > 0 ? block_rows : kQueryBlock;
  bool symmetric = path == GraphPath::Symmetric;
  if (path == GraphPath::Auto) {
    // The row blocks form a pipeline whose critical path is about 2 x blocks tiles, against
    // blocks^2 / 2 tiles of work: with fewer than 4 blocks per thread the threads would wait and
    // the general path (twice the dots, no waiting) is as fast or faster.
    const int threads = threads_for(n * n * d, int64_t(1) << 22);
    symmetric = (n + rows - 1) / rows >= std::max<int64_t>(2, int64_t(4) * threads);
  }
  return with_cosine_scale_watch(x, n, d, metric, [&](const float* b, ScaleWatch* watch) {
    return knn_any(BaseRows{b, nullptr, d}, n, b, n, d, k, metric, true, nullptr, distances, indices,
                   symmetric ? rows : 0, watch);
  });
}

KnnStatus knn_f16(const uint16_t* base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
                  Metric metric, float* distances, int64_t* indices, const uint8_t* removed) {
  return knn_any(BaseRows{nullptr, base, d}, n, queries, m, d, k, metric, false, removed, distances, indices);
}

RangeResult range_search(const float* base, int64_t n, const float* queries, int64_t m, int64_t d, float radius,
                         Metric metric, const uint8_t* removed) {
  return range_any(BaseRows{base, nullptr, d}, n, queries, m, d, radius, metric, removed);
}

RangeResult range_search_f16(const uint16_t* base, int64_t n, const float* queries, int64_t m, int64_t d,
                             float radius, Metric metric, const uint8_t* removed) {
  return range_any(BaseRows{nullptr, base, d}, n, queries, m, d, radius, metric, removed);
}

}  // namespace search
}  // namespace curata
