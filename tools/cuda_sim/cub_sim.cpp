// Host stand-ins for cuda/cub_ops.cuh: a stable sort on the low end_bit bits of the key (what
// CUB's radix sort guarantees) and plain prefix sums.
#include <algorithm>
#include <numeric>
#include <vector>
#include "cub_ops.cuh"
namespace curata::cuda {
template <class K> static void sp(const K* ki, K* ko, const int32_t* vi, int32_t* vo, int n, int end_bit) {
  const K mask = end_bit >= int(sizeof(K) * 8) ? ~K(0) : ((K(1) << end_bit) - 1);
  std::vector<int> idx(n); std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return (ki[a] & mask) < (ki[b] & mask); });
  for (int r = 0; r < n; ++r) { ko[r] = ki[idx[r]]; vo[r] = vi[idx[r]]; }
}
void sort_pairs(const uint32_t* a, uint32_t* b, const int32_t* c, int32_t* d, int n, int e, Workspace&) { sp(a, b, c, d, n, e); }
void sort_pairs(const uint64_t* a, uint64_t* b, const int32_t* c, int32_t* d, int n, int e, Workspace&) { sp(a, b, c, d, n, e); }
void inclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace&) { uint64_t s = 0; for (int i = 0; i < n; ++i) { s += in[i]; out[i] = s; } }
void exclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace&) { uint64_t s = 0; for (int i = 0; i < n; ++i) { uint64_t v = in[i]; out[i] = s; s += v; } }
void exclusive_sum(const int64_t* in, int64_t* out, int n, Workspace&) { int64_t s = 0; for (int i = 0; i < n; ++i) { int64_t v = in[i]; out[i] = s; s += v; } }
}
