// Host stand-ins for cuda/cub_ops.cuh: a stable sort on the low end_bit bits of the key (what
// CUB's radix sort guarantees) and plain prefix sums.
#include <algorithm>
#include <numeric>
#include <cstdlib>
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
// Caller-planned variants (cuda/postprocess.cu): a null temp only asks for the size (here a token
// 1 KB, so the workspace layout is exercised), segments come from device (here host) offsets and
// items outside every segment are left untouched, as CUB's segmented radix sort does.
namespace curata::cuda {
template <class K> static std::size_t seg(void* temp, const K* ki, K* ko, const int32_t* vi, int32_t* vo, int n,
                                          int segments, const int32_t* begin, const int32_t* end, int end_bit) {
  if (temp == nullptr || n <= 0 || segments <= 0) return 1024;
  const K mask = end_bit >= int(sizeof(K) * 8) ? ~K(0) : ((K(1) << end_bit) - 1);
  for (int s = 0; s < segments; ++s) {
    const int b = begin[s], e = end[s];
    if (b < 0 || e > n || b > e) std::abort();
    std::vector<int> idx(e - b); std::iota(idx.begin(), idx.end(), b);
    std::stable_sort(idx.begin(), idx.end(), [&](int x, int y) { return (ki[x] & mask) < (ki[y] & mask); });
    for (int r = 0; r < e - b; ++r) { ko[b + r] = ki[idx[r]]; vo[b + r] = vi[idx[r]]; }
  }
  return 1024;
}
std::size_t segmented_sort_pairs(void* t, std::size_t, const uint32_t* a, uint32_t* b, const int32_t* c, int32_t* d, int n,
                                 int s, const int32_t* be, const int32_t* en, int e, cudaStream_t) { return seg(t, a, b, c, d, n, s, be, en, e); }
std::size_t segmented_sort_pairs(void* t, std::size_t, const uint64_t* a, uint64_t* b, const int32_t* c, int32_t* d, int n,
                                 int s, const int32_t* be, const int32_t* en, int e, cudaStream_t) { return seg(t, a, b, c, d, n, s, be, en, e); }
std::size_t exclusive_sum(void* temp, std::size_t, const int32_t* in, int32_t* out, int n, cudaStream_t) {
  if (temp == nullptr || n <= 0) return 1024;
  int32_t s = 0; for (int i = 0; i < n; ++i) { int32_t v = in[i]; out[i] = s; s += v; }
  return 1024;
}
}
