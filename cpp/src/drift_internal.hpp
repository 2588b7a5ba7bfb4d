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

namespace curata {
namespace drift {
namespace detail {

// Columns gathered together: 8 adjacent values are one 64-byte line of a float64 row.
constexpr int64_t kBlock = 8;

// Copies columns [j0, j0 + width) of a row-major (rows, columns) array into `keys` (column c at
// keys + c * rows, first count[c] entries), dropping NaN (counted in nan_count[c]).
template <class T>
void gather_block(const T* x, int64_t rows, int64_t columns, int64_t j0, int64_t width, uint64_t* keys,
                  int64_t* count, int64_t* nan_count) {
  for (int64_t c = 0; c < width; ++c) count[c] = nan_count[c] = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = x + i * columns + j0;
    for (int64_t c = 0; c < width; ++c) {
      const double v = static_cast<double>(row[c]);
      if (std::isnan(v)) {
        ++nan_count[c];
      } else {
        keys[c * rows + count[c]++] = order_key(v);
      }
    }
  }
}

// Ascending sort of keys. LSD radix sort with 11-bit digits; a digit shared by every key (the low
// mantissa bits of float32 data, the exponent bits of data in one binade) costs no pass.
inline void sort_keys(uint64_t* keys, int64_t n, std::vector<uint64_t>& scratch) {
  if (n < 512 || n > static_cast<int64_t>(UINT32_MAX)) {
    std::sort(keys, keys + n);
    return;
  }
  constexpr int kBits = 11, kBuckets = 1 << kBits, kPasses = 6;
  std::vector<uint32_t> hist(static_cast<size_t>(kPasses) * kBuckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = keys[i];
    for (int p = 0; p < kPasses; ++p) ++hist[p * kBuckets + ((k >> (p * kBits)) & (kBuckets - 1))];
  }
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  uint64_t* src = keys;
  uint64_t* dst = scratch.data();
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = hist.data() + p * kBuckets;
    const int shift = p * kBits;
    if (h[(keys[0] >> shift) & (kBuckets - 1)] == static_cast<uint32_t>(n)) continue;
    uint32_t running = 0;
    for (int d = 0; d < kBuckets; ++d) {
      const uint32_t c = h[d];
      h[d] = running;
      running += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t k = src[i];
      dst[h[(k >> shift) & (kBuckets - 1)]++] = k;
    }
    std::swap(src, dst);
  }
  if (src != keys) std::copy(src, src + n, keys);
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

}  // namespace detail
}  // namespace drift
}  // namespace curata
