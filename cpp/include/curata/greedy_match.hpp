// The greedy matching step of pycocotools' COCOeval.evaluateImg for one detection, shared by
// curata::match (one IoU threshold, crowd GT as the only ignored ones) and curata::coco_eval (every
// area range and threshold, GT outside the area range ignored too).
#pragma once

#include <cstdint>

namespace curata {

// Ground truth is scanned in evaluation order: the n_regular non-ignored GT (positions
// [0, n_regular)), then the ignored ones ([n_regular, n)), each part in input order. A running bar
// starts at `threshold` (the caller passes min(t, 1 - 1e-10)); a GT for which skip(k, ignored) holds
// (already matched and not crowd) is passed over, else when its overlap(k, ignored) is >= the bar
// it becomes the match and raises the bar to that overlap, so equal overlaps go to the later GT.
// Ignored GT are scanned only when no regular GT matched (pycocotools stops at the first ignored GT
// once the match is a regular one). `ignored` is a constant in each of the two loops, so callers
// can branch on it for free.
//
// Returns the matched position in [0, n), or -1; *matched_overlap receives the final bar (the
// match's overlap when there is one).
template <class Skip, class Overlap>
inline int64_t greedy_match(int64_t n_regular, int64_t n, double threshold, Skip&& skip, Overlap&& overlap,
                            double* matched_overlap = nullptr) {
  double bar = threshold;
  int64_t m = -1;
  for (int64_t k = 0; k < n_regular; ++k) {
    if (skip(k, false)) continue;
    const double v = overlap(k, false);
    if (v < bar) continue;
    bar = v;
    m = k;
  }
  if (m < 0) {
    for (int64_t k = n_regular; k < n; ++k) {
      if (skip(k, true)) continue;
      const double v = overlap(k, true);
      if (v < bar) continue;
      bar = v;
      m = k;
    }
  }
  if (matched_overlap) *matched_overlap = bar;
  return m;
}

}  // namespace curata
