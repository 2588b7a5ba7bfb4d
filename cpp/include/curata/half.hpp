// IEEE 754 binary16 ("half", numpy float16) to float32, one formula for CPU and CUDA code.
//
// Every half value is exactly representable as a float32, so the conversion is exact: normal
// numbers rebias the exponent (15 -> 127), subnormals are mant * 2^-24 (exact: mant < 2^10),
// infinities keep their sign, NaNs stay NaN with their payload shifted into the float mantissa.
#pragma once

#include <cstdint>
#include <cstring>

#include "curata/hd.hpp"

namespace curata {

CURATA_HD float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;  // 2^-24
    std::memcpy(&bits, &magnitude, sizeof(bits));
    bits |= sign;
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// float32 to half bits, rounding to nearest even (what numpy's astype(float16) and the F16C
// instruction do): magnitudes from 65520 up become infinity, below 2^-25 zero (2^-25 itself is a
// tie and goes to the even 0), NaN stays a (quiet) NaN.
CURATA_HD uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? static_cast<uint16_t>(0x7e00u | ((ax >> 13) & 0x3ffu)) : 0x7c00u);
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520: rounds past 65504
  if (ax < 0x38800000u) {                         // below 2^-14: a half subnormal (or zero)
    const uint32_t e = ax >> 23;
    if (e < 102) return sign;  // below 2^-25
    const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t m = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (m & 1u))) ++m;  // may carry into the smallest normal: right
    return sign | static_cast<uint16_t>(m);
  }
  uint32_t r = ax - 0x38000000u;  // exponent bias 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);  // round the 13 dropped bits to nearest even (carries are right)
  return sign | static_cast<uint16_t>(r >> 13);
}

// True for half bit patterns holding an infinity or a NaN.
CURATA_HD bool half_bits_nonfinite(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }

}  // namespace curata
