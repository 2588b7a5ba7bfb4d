// CRC-32C: a portable slicing-by-8 version and an SSE4.2 one with three interleaved streams.
//
// Notation: "raw" CRC = the shift register without the initial/final inversion, so
// crc32c(data, crc) = ~raw(~crc, data). raw is linear over GF(2):
//   raw(c, M)          = shift(c, |M|) ^ raw(0, M)         shift(c, n) = raw(c, n zero bytes)
//   raw(c, A || B || C) = shift(shift(raw(c, A), L) ^ raw(0, B), L) ^ raw(0, C)   (|B| = |C| = L)
// The crc32 instruction has a latency of 3 cycles and a throughput of one per cycle, so one
// dependency chain uses a third of it: the SSE4.2 path runs three chains over three adjacent
// blocks of L bytes and joins them with the identity above. shift(., L) is linear in the 32-bit
// register, so it is four 256-entry table lookups, the tables being built once from the images
// of the 32 unit registers (each computed by feeding L zero bytes through the byte table).
#include "curata/checksum.hpp"

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CURATA_CRC32C_X86 1
#endif

namespace curata {
namespace checksum {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // x^32 + x^28 + ... reflected (Castagnoli)
constexpr size_t kLong = 8192;           // bytes per stream in the long interleaved blocks
constexpr size_t kShort = 256;           // ... in the short ones (inputs below 3 * kLong)

struct ShiftTable {
  uint32_t t[4][256];
  uint32_t apply(uint32_t c) const {
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
  }
};

struct Tables {
  uint32_t slice[8][256];  // slice[0]: one byte; slice[k][b]: byte b followed by k zero bytes
  ShiftTable shift_long, shift_short;

  Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ ((c & 1u) ? kPoly : 0u);
      slice[0][b] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (uint32_t b = 0; b < 256; ++b) slice[k][b] = (slice[k - 1][b] >> 8) ^ slice[0][slice[k - 1][b] & 0xFF];
    build_shift(shift_long, kLong);
    build_shift(shift_short, kShort);
  }

  uint32_t shift_slow(uint32_t c, size_t zeros) const {
    for (size_t i = 0; i < zeros; ++i) c = (c >> 8) ^ slice[0][c & 0xFF];
    return c;
  }

  void build_shift(ShiftTable& s, size_t zeros) const {
    uint32_t unit[32];
    for (int i = 0; i < 32; ++i) unit[i] = shift_slow(1u << i, zeros);
    for (int k = 0; k < 4; ++k)
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t v = 0;
        for (int j = 0; j < 8; ++j)
          if (b & (1u << j)) v ^= unit[8 * k + j];
        s.t[k][b] = v;
      }
  }
};

const Tables& tables() {
  static const Tables t;  // thread-safe one-time initialisation (C++11), ~0.5 ms
  return t;
}

[[maybe_unused]] inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t raw_portable(uint32_t crc, const unsigned char* p, size_t n) {
  const Tables& tb = tables();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (n >= 8) {
    const uint64_t v = load64(p) ^ crc;
    crc = tb.slice[7][v & 0xFF] ^ tb.slice[6][(v >> 8) & 0xFF] ^ tb.slice[5][(v >> 16) & 0xFF] ^
          tb.slice[4][(v >> 24) & 0xFF] ^ tb.slice[3][(v >> 32) & 0xFF] ^ tb.slice[2][(v >> 40) & 0xFF] ^
          tb.slice[1][(v >> 48) & 0xFF] ^ tb.slice[0][v >> 56];
    p += 8;
    n -= 8;
  }
#endif
  for (; n; --n) crc = (crc >> 8) ^ tb.slice[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#ifdef CURATA_CRC32C_X86
template <size_t L>
__attribute__((target("sse4.2"))) inline uint32_t blocks3(uint32_t crc, const unsigned char*& p, size_t& n,
                                                          const ShiftTable& shift) {
  while (n >= 3 * L) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (size_t i = 0; i < L; i += 8) {
      c0 = _mm_crc32_u64(c0, load64(p + i));
      c1 = _mm_crc32_u64(c1, load64(p + L + i));
      c2 = _mm_crc32_u64(c2, load64(p + 2 * L + i));
    }
    crc = shift.apply(shift.apply(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1)) ^ static_cast<uint32_t>(c2);
    p += 3 * L;
    n -= 3 * L;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t raw_sse42(uint32_t crc, const unsigned char* p, size_t n) {
  // Aligned 8-byte loads from here on (unaligned ones work too, but cost a split line now and then).
  while (n && (reinterpret_cast<uintptr_t>(p) & 7u)) {
    crc = _mm_crc32_u8(crc, *p++);
    --n;
  }
  const Tables& tb = tables();
  crc = blocks3<kLong>(crc, p, n, tb.shift_long);
  crc = blocks3<kShort>(crc, p, n, tb.shift_short);
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, load64(p));
  crc = static_cast<uint32_t>(c);
  for (; n; --n) crc = _mm_crc32_u8(crc, *p++);
  return crc;
}
#endif

}  // namespace

bool has_hardware_crc32c() {
#ifdef CURATA_CRC32C_X86
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
#else
  return false;
#endif
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc, bool allow_hardware) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t raw = ~crc;
#ifdef CURATA_CRC32C_X86
  if (allow_hardware && has_hardware_crc32c()) return ~raw_sse42(raw, p, size);
#else
  (void)allow_hardware;
#endif
  return ~raw_portable(raw, p, size);
}

}  // namespace checksum
}  // namespace curata
