// Private helpers of the core library shared by the grouped ops (WBF, soft-NMS, matching): cut an
// ordering into contiguous runs of equal keys, and order runs largest first for a balanced
// dynamic schedule.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace curata {
namespace detail {

// order is already grouped by (key_a, key_b) (either key may be null = all equal). Returns the
// start of every run plus order.size() as the last entry.
inline std::vector<int64_t> run_starts(const std::vector<int32_t>& order, const int64_t* key_a,
                                       const int64_t* key_b) {
  std::vector<int64_t> starts;
  const int64_t n = static_cast<int64_t>(order.size());
  for (int64_t r = 0; r < n; ++r) {
    if (r == 0) { starts.push_back(0); continue; }
    const int32_t i = order[r], prev = order[r - 1];
    if ((key_a && key_a[i] != key_a[prev]) || (key_b && key_b[i] != key_b[prev])) starts.push_back(r);
  }
  starts.push_back(n);
  return starts;
}

// Run numbers sorted by descending length (stable), so a dynamic schedule starts the big ones.
inline std::vector<int64_t> largest_first(const std::vector<int64_t>& starts) {
  const int64_t n_runs = static_cast<int64_t>(starts.size()) - 1;
  std::vector<int64_t> runs(static_cast<size_t>(std::max<int64_t>(n_runs, 0)));
  for (int64_t g = 0; g < n_runs; ++g) runs[g] = g;
  std::stable_sort(runs.begin(), runs.end(), [&](int64_t a, int64_t b) {
    return starts[a + 1] - starts[a] > starts[b + 1] - starts[b];
  });
  return runs;
}

}  // namespace detail
}  // namespace curata
