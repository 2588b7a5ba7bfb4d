// Index arithmetic of the bounded, sync-free GPU post-processing (cuda/postprocess.cu), shared with
// the host so the simulator driver and the CPU reference can check it: the per-image candidate cap,
// and the radix selection of the cap-th best candidate of an image.
//
// A candidate of image b is identified by its ordinal: the anchor a (single-label) or a * C + c
// (multi-label), which is exactly the CPU's candidate order (anchors ascending, then classes). The
// CPU keeps the max_nms best candidates of an image by descending score, ties to the lower ordinal
// (cpp/src/postprocess.cpp, keep_top). On the GPU that set is found without materialising all
// candidates: with the composite key
//
//     V = (descending_score_key(score) << ord_bits) | ordinal          (unique within an image)
//
// the kept candidates are exactly those with V <= the cap-th smallest V, which a most-significant-
// digit radix selection finds in select_passes() histogram passes of kSelectRadixBits bits.
#pragma once

#include <cstdint>

#include "curata/hd.hpp"

namespace curata {

constexpr int kSelectRadixBits = 8;
constexpr int kSelectBins = 1 << kSelectRadixBits;
constexpr int kSelectMaxPasses = (64 + 32 + kSelectRadixBits - 1) / kSelectRadixBits;  // double keys

// Candidates per image entering NMS: at most max_nms, and never more than the image has slots for.
CURATA_HD int64_t candidate_cap(int64_t n_anchors, int64_t per_anchor, int64_t max_nms) {
  const int64_t slots = n_anchors * per_anchor;
  return slots < max_nms ? slots : max_nms;
}

// Bits of V: score_bits (32 for float, 64 for double) above ord_bits ordinal bits.
CURATA_HD int select_passes(int total_bits) { return (total_bits + kSelectRadixBits - 1) / kSelectRadixBits; }

// Digit `pass` of V, most significant first: bits [top - 8, top) with top = total_bits - 8 * pass;
// the last digit holds the bits left over when total_bits is not a multiple of kSelectRadixBits.
CURATA_HD uint32_t select_digit(uint64_t score_key, uint32_t ordinal, int ord_bits, int total_bits, int pass) {
  const int top = total_bits - kSelectRadixBits * pass;  // bits [shift, top) of V
  const int shift = top > kSelectRadixBits ? top - kSelectRadixBits : 0;
  const int width = top - shift;
  uint64_t bits;
  if (shift >= ord_bits) {
    bits = score_key >> (shift - ord_bits);
  } else {
    // The digit straddles (or lies in) the ordinal: score bits shifted up, ordinal bits down. Bits
    // pushed out of the 64-bit word are above the digit and masked off anyway.
    const int up = ord_bits - shift;  // < 64
    bits = (up < 64 ? (score_key << up) : 0) | (static_cast<uint64_t>(ordinal) >> shift);
  }
  return static_cast<uint32_t>(bits & ((uint64_t(1) << width) - 1));
}

// Whether V (given by its key parts) is <= the selected value, given as its digits.
CURATA_HD bool select_at_most(uint64_t score_key, uint32_t ordinal, int ord_bits, int total_bits,
                              const int32_t* selected_digits) {
  const int passes = select_passes(total_bits);
  for (int p = 0; p < passes; ++p) {
    const int32_t d = static_cast<int32_t>(select_digit(score_key, ordinal, ord_bits, total_bits, p));
    if (d != selected_digits[p]) return d < selected_digits[p];
  }
  return true;
}

// Whether V matches the selected digits of passes [0, pass): it takes part in pass `pass`.
CURATA_HD bool select_prefix_matches(uint64_t score_key, uint32_t ordinal, int ord_bits, int total_bits,
                                     const int32_t* selected_digits, int pass) {
  for (int p = 0; p < pass; ++p)
    if (static_cast<int32_t>(select_digit(score_key, ordinal, ord_bits, total_bits, p)) != selected_digits[p])
      return false;
  return true;
}

}  // namespace curata
