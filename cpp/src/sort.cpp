#include "curata/sort.hpp"

#include "curata/sort_keys.hpp"

#include <algorithm>
#include <limits>

namespace curata {
namespace {

// LSD radix sort of (key, value) pairs, 8 bits a pass; passes where every key shares the digit
// are skipped (common for the high bits of scores in [0, 1]). Stable.
template <class K>
void radix_sort_pairs(std::vector<K>& keys, std::vector<int32_t>& values) {
  const size_t n = keys.size();
  std::vector<K> keys_tmp(n);
  std::vector<int32_t> values_tmp(n);
  for (unsigned shift = 0; shift < sizeof(K) * 8; shift += 8) {
    size_t count[256] = {0};
    for (size_t i = 0; i < n; ++i) ++count[(keys[i] >> shift) & 0xFF];
    if (count[(keys[0] >> shift) & 0xFF] == n) continue;
    size_t offset[256];
    size_t running = 0;
    for (int d = 0; d < 256; ++d) { offset[d] = running; running += count[d]; }
    for (size_t i = 0; i < n; ++i) {
      const size_t dst = offset[(keys[i] >> shift) & 0xFF]++;
      keys_tmp[dst] = keys[i];
      values_tmp[dst] = values[i];
    }
    keys.swap(keys_tmp);
    values.swap(values_tmp);
  }
}

}  // namespace

template <class T> void sort_by_score_desc(const T* scores, std::vector<int32_t>& order) {
  const size_t n = order.size();
  if (n < 2) return;
  using Key = decltype(descending_score_key(T()));
  if (n < 256) {
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return descending_score_key(scores[a]) < descending_score_key(scores[b]);
    });
    return;
  }
  std::vector<Key> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = descending_score_key(scores[order[i]]);
  radix_sort_pairs(keys, order);
}

template void sort_by_score_desc<float>(const float*, std::vector<int32_t>&);
template void sort_by_score_desc<double>(const double*, std::vector<int32_t>&);

void stable_group_by(const int64_t* key, std::vector<int32_t>& order) {
  const size_t n = order.size();
  if (n < 2) return;
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (int32_t i : order) { lo = std::min(lo, key[i]); hi = std::max(hi, key[i]); }
  if (lo == hi) return;
  // Range as unsigned so that extreme int64 keys cannot overflow.
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  if (range >= std::max<uint64_t>(4 * n, 1u << 16)) {
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key[a] < key[b]; });
    return;
  }
  std::vector<int32_t> count(range + 2, 0);
  for (int32_t i : order) ++count[static_cast<uint64_t>(key[i]) - static_cast<uint64_t>(lo) + 1];
  for (size_t d = 1; d < count.size(); ++d) count[d] += count[d - 1];
  std::vector<int32_t> out(n);
  for (int32_t i : order) out[count[static_cast<uint64_t>(key[i]) - static_cast<uint64_t>(lo)]++] = i;
  order.swap(out);
}

}  // namespace curata
