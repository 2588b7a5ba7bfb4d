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

// True for half bit patterns holding an infinity or a NaN.
CURATA_HD bool half_bits_nonfinite(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }

}  // namespace curata
