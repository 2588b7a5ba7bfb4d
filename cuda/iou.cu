// Pairwise IoU / GIoU matrix on the GPU.
//
// Why tiled: every output element needs one box of a and one of b; staging a tile of 64 b-boxes
// and 32 a-boxes in shared memory turns 2 global box reads per element into 96 per 2048 elements,
// so the kernel is bound by the (unavoidable) N x M output writes, which are coalesced along rows.
// The formulas are the CURATA_HD ones of curata/box_math.hpp called with the same argument order as
// the CPU loop (row box first), and the build uses --fmad=false, so every element is bit-identical
// to curata::pairwise_iou.
//
// Work O(N·M); memory: the output only (shared tiles are 2.5 KiB for float64).
#include <algorithm>
#include <climits>
#include <vector>

#include "common.cuh"
#include "curata/box_math.hpp"
#include "curata/boxes.hpp"
#include "launchers.hpp"

namespace curata::cuda {
namespace {

constexpr int kTileCols = 64;    // b-boxes per tile: one per thread column, 64 consecutive outputs
constexpr int kTileRows = 32;    // a-boxes per tile
constexpr int kIouThreads = 256; // 64 columns x 4 row lanes; each thread computes 8 rows

// Lowest index of an invalid box (box_is_valid), or ULLONG_MAX: the CPU reports the first one.
template <class T>
__global__ void find_invalid_boxes(const T* boxes, int64_t n, unsigned long long* first_bad) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!box_is_valid(boxes + 4 * i)) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

template <class T>
__global__ void __launch_bounds__(kIouThreads)
    iou_matrix(const T* __restrict__ a, int64_t n, const T* __restrict__ b, int64_t m, T* __restrict__ out,
               bool generalized, int64_t col_tiles, int64_t total_tiles) {
  __shared__ T sb[4][kTileCols];
  __shared__ T sa[4][kTileRows];
  const int tx = threadIdx.x % kTileCols;
  const int ty = threadIdx.x / kTileCols;
  constexpr int kRowLanes = kIouThreads / kTileCols;
  // Grid-stride over tiles: any N and M fit one launch of a bounded grid.
  for (int64_t tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    const int64_t row0 = (tile / col_tiles) * kTileRows;
    const int64_t col0 = (tile % col_tiles) * kTileCols;
    __syncthreads();  // the previous tile's readers are done with sa / sb
    if (threadIdx.x < kTileCols) {
      const int64_t j = col0 + threadIdx.x;
      if (j < m) {
        for (int k = 0; k < 4; ++k) sb[k][threadIdx.x] = b[4 * j + k];
      }
    } else if (threadIdx.x < kTileCols + kTileRows) {
      const int r = threadIdx.x - kTileCols;
      const int64_t i = row0 + r;
      if (i < n) {
        for (int k = 0; k < 4; ++k) sa[k][r] = a[4 * i + k];
      }
    }
    __syncthreads();
    const int64_t j = col0 + tx;
    if (j >= m) continue;
    const T bb[4] = {sb[0][tx], sb[1][tx], sb[2][tx], sb[3][tx]};
    const T barea = box_area(bb[0], bb[1], bb[2], bb[3]);
    for (int r = ty; r < kTileRows; r += kRowLanes) {
      const int64_t i = row0 + r;
      if (i >= n) break;
      const T aa[4] = {sa[0][r], sa[1][r], sa[2][r], sa[3][r]};
      T value;
      if (generalized) {
        value = box_giou(aa, bb);
      } else {
        const T inter = box_intersection(aa[0], aa[1], aa[2], aa[3], bb[0], bb[1], bb[2], bb[3]);
        value = iou_from_parts(inter, box_area(aa[0], aa[1], aa[2], aa[3]), barea);
      }
      out[i * m + j] = value;
    }
  }
}

template <class T>
void raise_if_invalid(const T* boxes, unsigned long long first_bad, const char* name, cudaStream_t stream) {
  if (first_bad == ULLONG_MAX) return;
  std::vector<T> box;
  copy_to_host_and_wait(box, boxes + 4 * static_cast<int64_t>(first_bad), 4, stream);
  throw std::invalid_argument(
      invalid_box_message(box.data(), name, std::string(name) + "[" + std::to_string(first_bad) + "]"));
}

template <class T>
void pairwise_iou_impl(const T* a, int64_t n, const T* b, int64_t m, T* out, bool generalized, int device,
                       cudaStream_t stream) {
  Workspace ws(stream);
  unsigned long long* first_bad = ws.alloc<unsigned long long>(2, "error flags");
  CURATA_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, 2 * sizeof(unsigned long long), stream));
  const int sms = multiprocessor_count(device);
  if (n > 0) {
    const auto grid = static_cast<unsigned>(std::min<int64_t>(blocks_for(n, 256), 4 * sms));
    find_invalid_boxes<T><<<grid, 256, 0, stream>>>(a, n, first_bad);
    CURATA_CUDA_CHECK_LAUNCH();
  }
  if (m > 0) {
    const auto grid = static_cast<unsigned>(std::min<int64_t>(blocks_for(m, 256), 4 * sms));
    find_invalid_boxes<T><<<grid, 256, 0, stream>>>(b, m, first_bad + 1);
    CURATA_CUDA_CHECK_LAUNCH();
  }
  if (n > 0 && m > 0) {
    const int64_t col_tiles = (m + kTileCols - 1) / kTileCols;
    const int64_t total_tiles = ((n + kTileRows - 1) / kTileRows) * col_tiles;
    const int64_t grid = std::min<int64_t>(total_tiles, static_cast<int64_t>(sms) * 8);
    iou_matrix<T><<<static_cast<unsigned>(grid), kIouThreads, 0, stream>>>(a, n, b, m, out, generalized, col_tiles,
                                                                           total_tiles);
    CURATA_CUDA_CHECK_LAUNCH();
  }
  // The one sync: invalid boxes must raise (as on the CPU) before the caller sees the matrix.
  std::vector<unsigned long long> bad;
  copy_to_host_and_wait(bad, first_bad, 2, stream);
  raise_if_invalid(a, bad[0], "a", stream);
  raise_if_invalid(b, bad[1], "b", stream);
}

}  // namespace

void pairwise_iou(bool is_double, std::uintptr_t a, int64_t n, std::uintptr_t b, int64_t m, std::uintptr_t out,
                  bool generalized, int device, std::uintptr_t stream) {
  if (n < 0 || m < 0) throw std::invalid_argument("pairwise_iou: negative box count");
  DeviceGuard guard(device);
  const cudaStream_t s = as_stream(stream);
  if (is_double)
    pairwise_iou_impl(reinterpret_cast<const double*>(a), n, reinterpret_cast<const double*>(b), m,
                      reinterpret_cast<double*>(out), generalized, device, s);
  else
    pairwise_iou_impl(reinterpret_cast<const float*>(a), n, reinterpret_cast<const float*>(b), m,
                      reinterpret_cast<float*>(out), generalized, device, s);
}

}  // namespace curata::cuda
