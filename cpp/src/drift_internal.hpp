// Helpers shared by the drift_*.cpp files: column gathering and key sorting.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "curata/drift.hpp"
#include "curata/drift_math.hpp"
#include "curata/parallel.hpp"

namespace curata {
namespace drift {
namespace detail {

// Columns gathered together: 8 adjacent values are one 64-byte line of a float64 row.
constexpr int64_t kBlock = 8;

// Rows the gather prefetches ahead. Rows of a wide array are KBs apart, so each 4 KB page holds
// only a few of the lines a block reads and the hardware's stride prefetcher does not follow
// them across pages: without this the gather waits on every load (ks on 250k x 512 float32,
// 1 thread: 5.5 s -> 4.7 s; 8 to 32 rows ahead measure the same).
constexpr int64_t kPrefetchRows = 16;

// gather_block's row loop for W columns (W = kBlock: a compile-time trip count, so the counters
// live in registers). A NaN's key is written too and overwritten by the column's next value: no
// branch on the data.
template <int64_t W, class T>
void gather_rows(const T* x, int64_t rows, int64_t columns, int64_t width, column_key_t<T>* keys, int64_t* count,
                 int64_t* nan_count) {
  int64_t kept[kBlock] = {}, dropped[kBlock] = {};
  const int64_t w = W > 0 ? W : width;
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = x + i * columns;
    if (i + kPrefetchRows < rows) __builtin_prefetch(row + kPrefetchRows * columns);
    for (int64_t c = 0; c < w; ++c) {
      const T v = row[c];
      const bool nan = std::isnan(v);
      keys[c * rows + kept[c]] = order_key(v);
      kept[c] += !nan;
      dropped[c] += nan;
    }
  }
  for (int64_t c = 0; c < w; ++c) {
    count[c] = kept[c];
    nan_count[c] = dropped[c];
  }
}

// Copies columns [j0, j0 + width) of a row-major (rows, columns) array into `keys` (column c at
// keys + c * rows, first count[c] entries), dropping NaN (counted in nan_count[c]).
template <class T>
void gather_block(const T* x, int64_t rows, int64_t columns, int64_t j0, int64_t width, column_key_t<T>* keys,
                  int64_t* count, int64_t* nan_count) {
  if (width == kBlock) {
    gather_rows<kBlock>(x + j0, rows, columns, width, keys, count, nan_count);
  } else {
    gather_rows<0>(x + j0, rows, columns, width, keys, count, nan_count);
  }
}

// Threads for a pass over `columns` columns of n_ref + n_cur values in blocks of kBlock: ~15 ns
// per value, and a thread is worth waking only for a few milliseconds of work (on a busy machine a
// sleeping worker can take that long to be scheduled).
inline int column_threads(int64_t columns, int64_t n_ref, int64_t n_cur) {
  const int64_t blocks = (columns + kBlock - 1) / kBlock;
  return static_cast<int>(std::min<int64_t>(threads_for(columns * (n_ref + n_cur + 1), int64_t(1) << 18), blocks));
}

// One block of columns of both samples: sort keys, per-column counts, and whether each column may
// be processed (false when nan_policy is raise and the column holds NaN; the error is offered).
struct PairBlock {
  int64_t j0 = 0, width = 0;
  int64_t n_ref[kBlock], n_cur[kBlock], nan_ref[kBlock], nan_cur[kBlock];
  bool usable[kBlock];
};

// LSD radix sort of keys with kBits-bit digits; a digit shared by every key (the exponent bits of
// data in one binade) costs no pass. 32-bit keys take 3 passes of 11 bits at most, 64-bit ones 6.
template <int kBits, class Key>
void radix_sort_keys(Key* keys, int64_t n, std::vector<Key>& scratch) {
  constexpr int kBuckets = 1 << kBits, kPasses = (8 * static_cast<int>(sizeof(Key)) + kBits - 1) / kBits;
  uint32_t hist[kPasses][kBuckets] = {};
  for (int64_t i = 0; i < n; ++i) {
    const Key k = keys[i];
    for (int p = 0; p < kPasses; ++p) ++hist[p][(k >> (p * kBits)) & (kBuckets - 1)];
  }
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(static_cast<size_t>(n));
  Key* src = keys;
  Key* dst = scratch.data();
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = hist[p];
    const int shift = p * kBits;
    if (h[(keys[0] >> shift) & (kBuckets - 1)] == static_cast<uint32_t>(n)) continue;
    uint32_t running = 0;
    for (int d = 0; d < kBuckets; ++d) {
      const uint32_t c = h[d];
      h[d] = running;
      running += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const Key k = src[i];
      dst[h[(k >> shift) & (kBuckets - 1)]++] = k;
    }
    std::swap(src, dst);
  }
  if (src != keys) std::copy(src, src + n, keys);
}

// Ascending sort of keys: comparison sort for tiny runs, 8-bit digits while the 11-bit digits'
// 2048-bucket histograms would cost more than the data, 11-bit digits above.
template <class Key>
void sort_keys(Key* keys, int64_t n, std::vector<Key>& scratch) {
  if (n < 64 || n > static_cast<int64_t>(UINT32_MAX)) {
    std::sort(keys, keys + n);
  } else if (n < 4096) {
    radix_sort_keys<8>(keys, n, scratch);
  } else {
    radix_sort_keys<11>(keys, n, scratch);
  }
}

// First-error capture for OpenMP regions (exceptions must not leave a parallel region).
struct ErrorSlot {
  bool set = false;
  int64_t column = 0;
  std::string message;
  void offer(int64_t col, std::string msg) {
#pragma omp critical(curata_drift_error)
    {
      if (!set || col < column) {
        set = true;
        column = col;
        message = std::move(msg);
      }
    }
  }
  void raise() const {
    if (set) throw std::invalid_argument(message);
  }
};

// Gathers columns [j0, j0 + width) of ref and cur into ref_keys / cur_keys (column c at
// c * rows), records the counts in the per-column vectors of `out` (n_ref, n_cur, nan_ref,
// nan_cur) and offers the NaN error of nan_policy=raise.
template <class T, class Out>
void gather_pair_block(const T* ref, int64_t rows_ref, const T* cur, int64_t rows_cur, int64_t columns, int64_t j0,
                       NanPolicy nan_policy, std::vector<column_key_t<T>>& ref_keys,
                       std::vector<column_key_t<T>>& cur_keys,
                       PairBlock& b, Out& out, ErrorSlot& error) {
  b.j0 = j0;
  b.width = std::min(kBlock, columns - j0);
  ref_keys.resize(static_cast<size_t>(b.width * rows_ref));
  cur_keys.resize(static_cast<size_t>(b.width * rows_cur));
  gather_block(ref, rows_ref, columns, j0, b.width, ref_keys.data(), b.n_ref, b.nan_ref);
  gather_block(cur, rows_cur, columns, j0, b.width, cur_keys.data(), b.n_cur, b.nan_cur);
  for (int64_t c = 0; c < b.width; ++c) {
    const int64_t j = j0 + c;
    out.n_ref[j] = b.n_ref[c];
    out.n_cur[j] = b.n_cur[c];
    out.nan_ref[j] = b.nan_ref[c];
    out.nan_cur[j] = b.nan_cur[c];
    b.usable[c] = !(nan_policy == NanPolicy::kRaise && (b.nan_ref[c] > 0 || b.nan_cur[c] > 0));
    if (!b.usable[c])
      error.offer(j, std::string(b.nan_ref[c] > 0 ? "ref" : "cur") + " contains NaN (column " + std::to_string(j) +
                         "); pass nan_policy='omit' to drop NaN values per column");
  }
}

}  // namespace detail
}  // namespace drift
}  // namespace curata
