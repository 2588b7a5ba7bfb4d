// Row helpers for the persistent index (python/curata/_index.py). In-place row deletion: its storage is a
// growing table whose removed rows are squeezed out at once, so a remove() of r ids costs one pass
// over the rows after the first removed one, not one pass per id.
// The finiteness scan of a loaded table (first_nonfinite_row) works on the bit patterns.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "curata/search.hpp"
#include "curata/simd.hpp"

namespace curata {
namespace search {

int64_t remove_rows(void* data, int64_t row_bytes, int64_t rows, const int64_t* removed, int64_t n_removed) {
  if (row_bytes < 0 || rows < 0 || n_removed < 0 || n_removed > rows)
    throw std::invalid_argument("remove_rows: bad sizes");
  for (int64_t i = 0; i < n_removed; ++i) {
    if (removed[i] < 0 || removed[i] >= rows || (i > 0 && removed[i] <= removed[i - 1]))
      throw std::invalid_argument("removed positions must be strictly increasing in [0, " + std::to_string(rows) +
                                  "), got " + std::to_string(removed[i]) + " at " + std::to_string(i));
  }
  char* base = static_cast<char*>(data);
  int64_t write = n_removed > 0 ? removed[0] : rows;
  for (int64_t i = 0; i < n_removed; ++i) {
    const int64_t run_begin = removed[i] + 1;
    const int64_t run_end = i + 1 < n_removed ? removed[i + 1] : rows;
    const int64_t run = run_end - run_begin;
    if (run > 0) {
      std::memmove(base + write * row_bytes, base + run_begin * row_bytes, static_cast<size_t>(run * row_bytes));
      write += run;
    }
  }
  return rows - n_removed;
}

namespace {
// A float is NaN or infinite iff its bits without the sign are >= the all-ones exponent
// (abs_mask = 0x7FFFFFFF / 0x7FFF, limit = 0x7F800000 / 0x7C00). Per block of rows: an unsigned
// max of the masked bits (two vector instructions per vector), compared once; the row is
// located only on a hit.
template <class Bits>
CURATA_ALWAYS_INLINE int64_t first_nonfinite_body(const Bits* bits, int64_t rows, int64_t d,
                                                  Bits abs_mask, Bits limit) {
  constexpr int64_t kBlockRows = 64;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlockRows) {
    const int64_t r1 = r0 + kBlockRows < rows ? r0 + kBlockRows : rows;
    const Bits* p = bits + r0 * d;
    const int64_t count = (r1 - r0) * d;
    Bits top = 0;
    for (int64_t i = 0; i < count; ++i) {
      const Bits v = static_cast<Bits>(p[i] & abs_mask);
      top = v > top ? v : top;
    }
    if (top >= limit) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < d; ++j)
          if (static_cast<Bits>(bits[r * d + j] & abs_mask) >= limit) return r;
    }
  }
  return -1;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CURATA_ROWS_AVX2 1
__attribute__((target("avx2"))) int64_t first_nonfinite_avx2(const uint32_t* bits, int64_t rows, int64_t d) {
  return first_nonfinite_body<uint32_t>(bits, rows, d, 0x7FFFFFFFu, 0x7F800000u);
}
__attribute__((target("avx2"))) int64_t first_nonfinite_avx2(const uint16_t* bits, int64_t rows, int64_t d) {
  return first_nonfinite_body<uint16_t>(bits, rows, d, 0x7FFFu, 0x7C00u);
}
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

// Per row, the largest float32 bit pattern without the sign: for finite rows the bits of the
// largest |value| (the bit order of non-negative floats is their numeric order), >= 0x7F800000
// when the row holds NaN or infinity. One pass, vectorised per row (AVX2 where available).
CURATA_ALWAYS_INLINE void row_abs_max_bits_body(const uint32_t* bits, int64_t rows, int64_t d, uint32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t* p = bits + r * d;
    uint32_t top = 0;
    for (int64_t j = 0; j < d; ++j) {
      const uint32_t v = p[j] & 0x7FFFFFFFu;
      top = v > top ? v : top;
    }
    out[r] = top;
  }
}
#ifdef CURATA_ROWS_AVX2
__attribute__((target("avx2"))) void row_abs_max_bits_avx2(const uint32_t* bits, int64_t rows, int64_t d,
                                                           uint32_t* out) {
  row_abs_max_bits_body(bits, rows, d, out);
}
#endif

void check_sizes(int64_t rows, int64_t d) {
  if (rows < 0 || d < 0) throw std::invalid_argument("first_nonfinite_row: bad sizes");
}
}  // namespace

// The AVX2 build of a loop where the CPU has AVX2 and the caller allows it (tests compare both).
#ifdef CURATA_ROWS_AVX2
#define CURATA_ROWS_TRY_AVX2(call) \
  if (allow_hardware && has_avx2()) return call
#else
#define CURATA_ROWS_TRY_AVX2(call) (void)allow_hardware
#endif

int64_t first_nonfinite_row(const uint32_t* bits, int64_t rows, int64_t d, bool allow_hardware) {
  check_sizes(rows, d);
  CURATA_ROWS_TRY_AVX2(first_nonfinite_avx2(bits, rows, d));
  return first_nonfinite_body<uint32_t>(bits, rows, d, 0x7FFFFFFFu, 0x7F800000u);
}

void row_abs_max_bits(const uint32_t* bits, int64_t rows, int64_t d, uint32_t* out, bool allow_hardware) {
  check_sizes(rows, d);
  CURATA_ROWS_TRY_AVX2(row_abs_max_bits_avx2(bits, rows, d, out));
  row_abs_max_bits_body(bits, rows, d, out);
}

int64_t first_nonfinite_row(const uint16_t* bits, int64_t rows, int64_t d, bool allow_hardware) {
  check_sizes(rows, d);
  CURATA_ROWS_TRY_AVX2(first_nonfinite_avx2(bits, rows, d));
  return first_nonfinite_body<uint16_t>(bits, rows, d, 0x7FFFu, 0x7C00u);
}

#undef CURATA_ROWS_TRY_AVX2

bool cosine_row_needs_scale(uint32_t top) {
  constexpr uint32_t kHigh = 0x58800000u;  // 2^50
  constexpr uint32_t kLow = 0x26800000u;   // 2^-50
  constexpr uint32_t kInf = 0x7F800000u;
  return top != 0 && top < kInf && (top > kHigh || top < kLow);
}

int64_t cosine_rescale_rows(const float* x, int64_t rows, int64_t d, float* out) {
  check_sizes(rows, d);
  int64_t scaled = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * d;
    float* dst = out + r * d;
    uint32_t top;
    row_abs_max_bits(reinterpret_cast<const uint32_t*>(src), 1, d, &top);
    if (!cosine_row_needs_scale(top)) {
      if (dst != src) std::memcpy(dst, src, static_cast<size_t>(d) * sizeof(float));
      continue;
    }
    float largest;
    std::memcpy(&largest, &top, sizeof largest);
    int exponent;
    std::frexp(largest, &exponent);
    for (int64_t j = 0; j < d; ++j) dst[j] = std::ldexp(src[j], -exponent);
    ++scaled;
  }
  return scaled;
}

}  // namespace search
}  // namespace curata
