// Sorting helpers shared by the core library: stable descending order by score, and stable
// grouping by an integer key. Ties always resolve to the lower input position, so every result of
// curata is deterministic.
#pragma once

#include <cstdint>
#include <vector>

namespace curata {

// Sorts `order` (positions into `scores`) by descending score; equal scores keep their input
// order. -0.0 and +0.0 compare equal. Scores must not be NaN. O(n) radix sort for large n.
template <class T> void sort_by_score_desc(const T* scores, std::vector<int32_t>& order);

// Reorders `order` stably by ascending key[order[i]]. Counting sort when the key range is small,
// std::stable_sort otherwise.
void stable_group_by(const int64_t* key, std::vector<int32_t>& order);

}  // namespace curata
