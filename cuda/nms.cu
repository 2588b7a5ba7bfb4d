// Segmented greedy NMS on the GPU, with the exact semantics of the CPU library (cpp/src/nms.cpp).
// YOLO post-processing has its own bounded, sync-free pipeline in cuda/postprocess.cu.
//
// Pipeline of batched_nms (N boxes; every step is a fixed number of launches, whatever the number
// of images or classes):
//
//   1. nms_prepare        validate boxes / scores into error flags, mark candidates, score keys
//   2. radix sorts        stable: score key (descending score, ties by index), then class, then
//                         image; non-candidates carry the largest key in every pass so they stay
//                         behind all candidates. Result: (image, class, rank) order.
//   3. nms_heads + scan   a flag where a new image / new (image, class) group starts, one inclusive
//      nms_segments       scan of both flags packed in 64 bits -> group starts, dense image ids
//   4. tile counts + scan each group of n boxes needs T(T+1)/2 mask tiles of 64x64 bits (T = n/64
//                         rounded up, upper triangle only), so the work is Σ n_g², not N²
//      -- host sync 1 --  the plan (tile total, group and image counts, error flags) comes back:
//                         this sizes the mask workspace, and bad input raises here
//   5. nms_mask           one 64-thread block per tile (grid-stride): bit (r, c) of a tile is set
//                         when box c, ranked after box r in the same group, has IoU > threshold
//   6. nms_reduce         one block per group walks its tiles in rank order: a warp resolves the 64
//                         rows of a diagonal tile sequentially (shuffles), the block ORs the kept
//                         rows into the "removed" words of later column blocks. The mask never
//                         leaves the device.
//   7. merge              kept boxes in global rank order, stably radix sorted by dense image id,
//                         per-image counts scanned; each image is cut at max_det
//   8. emit               kept indices written to the caller's output
//      -- host sync 2 --  the output count and per-image counts come back
//
// Memory: about 60 bytes per box of workspace plus the mask, 512 bytes per tile
// (Σ_g T_g(T_g+1)/2 tiles: 56 MB for one class of 30000 boxes), all stream-ordered
// (cudaMallocAsync) and released when the call returns.
//
// IoUs are computed by the CURATA_HD formulas of curata/box_math.hpp with the kept box first, as on
// the CPU, and compared with the same threshold_in<T>; the build uses --fmad=false: every
// suppression decision is identical to the CPU's.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.cuh"
#include "cub_ops.cuh"
#include "curata/box_math.hpp"
#include "curata/boxes.hpp"
#include "curata/sort_keys.hpp"
#include "launchers.hpp"

namespace curata::cuda {
namespace {

constexpr int kThreads = 256;        // one-thread-per-item kernels
constexpr int kTile = 64;            // boxes per mask tile side = bits per mask word
constexpr int kReduceThreads = 128;  // nms_reduce: warp 0 resolves rows, all threads propagate
constexpr unsigned long long kNone = ULLONG_MAX;

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// Number of mask tiles in the row bands 0 .. rb-1 of a group with `blocks` 64-box blocks (band b
// holds the tiles (b, b) .. (b, blocks - 1)).
__host__ __device__ __forceinline__ int64_t band_start(int64_t rb, int64_t blocks) {
  return rb * blocks - rb * (rb - 1) / 2;
}

// An integer key of item i: an int64 or int32 array, the implicit image i / divisor of a padded
// batch, or absent (every item has key 0). One runtime-uniform branch instead of a kernel per kind.
struct KeyView {
  const int64_t* p64 = nullptr;
  const int32_t* p32 = nullptr;
  int64_t divisor = 0;

  __host__ __device__ bool present() const { return p64 != nullptr || p32 != nullptr || divisor > 0; }
  __device__ int64_t operator()(int32_t i) const {
    if (p64) return p64[i];
    if (p32) return p32[i];
    if (divisor > 0) return i / divisor;
    return 0;
  }
};

inline KeyView key_of(const int64_t* p) { KeyView k; k.p64 = p; return k; }
inline KeyView key_of(const int32_t* p) { KeyView k; k.p32 = p; return k; }

// Device-side state of one call, copied to the host at the plan sync.
struct NmsHeader {
  unsigned long long bad_box;    // lowest index of an invalid box, kNone if none
  unsigned long long bad_score;  // lowest index of a NaN score, kNone if none
  int n_cand;                    // candidates (positions [0, n_cand) of the grouped order)
  int n_segments;                // (image, class) groups among them
  int n_images;                  // distinct images among them
  int pad;
  long long total_tiles;         // mask tiles of all groups
};

NmsHeader* new_header(Workspace& ws) {
  NmsHeader* hdr = ws.alloc<NmsHeader>(1, "NMS header");
  CURATA_CUDA_CHECK(cudaMemsetAsync(hdr, 0, sizeof(NmsHeader), ws.stream()));
  CURATA_CUDA_CHECK(cudaMemsetAsync(hdr, 0xFF, 2 * sizeof(unsigned long long), ws.stream()));
  return hdr;
}

// ------------------------------------------------------------------------------------ kernels

// Validation, candidate marking and the score sort key, one thread per box. Boxes and scores of
// every valid entry are checked (as check_boxes does on the CPU, also below the score threshold).
template <class T>
__global__ void __launch_bounds__(kThreads)
    nms_prepare(const T* __restrict__ boxes, const T* __restrict__ scores, const uint8_t* __restrict__ valid, int n,
                bool use_score_threshold, double score_threshold, score_key_t<T>* __restrict__ score_key,
                int32_t* __restrict__ items, uint8_t* __restrict__ is_candidate, NmsHeader* hdr) {
  using K = score_key_t<T>;
  const int64_t i = thread_index();
  bool candidate = false;
  if (i < n) {
    if (!valid || valid[i]) {
      const T s = scores[i];
      if (!box_is_valid(boxes + 4 * i)) atomicMin(&hdr->bad_box, static_cast<unsigned long long>(i));
      if (isnan(s)) atomicMin(&hdr->bad_score, static_cast<unsigned long long>(i));
      candidate = !use_score_threshold || static_cast<double>(s) > score_threshold;
    }
    score_key[i] = candidate ? descending_score_key(scores[i]) : ~K(0);
    items[i] = static_cast<int32_t>(i);
    is_candidate[i] = candidate ? 1 : 0;
  }
  const int count = __syncthreads_count(candidate);
  if (threadIdx.x == 0 && count > 0) atomicAdd(&hdr->n_cand, count);
}

// Sort key of the item at each position of `order`; non-candidates get the largest key so that a
// stable sort keeps them behind every candidate (they already are behind, and ties keep order).
__global__ void __launch_bounds__(kThreads)
    gather_sort_key(const int32_t* __restrict__ order, KeyView key, const uint8_t* __restrict__ is_candidate, int n,
                    uint64_t* __restrict__ out) {
  const int64_t r = thread_index();
  if (r >= n) return;
  const int32_t i = order[r];
  out[r] = (!is_candidate || is_candidate[i]) ? ascending_id_key(key(i)) : ~0ull;
}

// Bit 32: a new image starts here; bit 0: a new (image, class) group starts here.
__global__ void __launch_bounds__(kThreads)
    nms_heads(const int32_t* __restrict__ ord, KeyView image, KeyView cls, const NmsHeader* hdr, int n,
              uint64_t* __restrict__ packed) {
  const int64_t r = thread_index();
  if (r >= n) return;
  uint64_t v = 0;
  if (r < hdr->n_cand) {
    const int32_t i = ord[r];
    bool new_image = true, new_group = true;
    if (r > 0) {
      const int32_t p = ord[r - 1];
      new_image = image(i) != image(p);
      new_group = new_image || cls(i) != cls(p);
    }
    v = (static_cast<uint64_t>(new_image) << 32) | static_cast<uint64_t>(new_group);
  }
  packed[r] = v;
}

// From the inclusive scan of the head flags: group starts, the dense image of each group and of
// each candidate item, and the original key of each dense image.
__global__ void __launch_bounds__(kThreads)
    nms_segments(const int32_t* __restrict__ ord, const uint64_t* __restrict__ incl, KeyView image, int n,
                 NmsHeader* hdr, int32_t* __restrict__ seg_start, int32_t* __restrict__ seg_image,
                 int32_t* __restrict__ img_of_item, int64_t* __restrict__ img_key) {
  const int64_t r = thread_index();
  const int n_cand = hdr->n_cand;
  if (r >= n || r >= n_cand) return;
  const uint64_t v = incl[r];
  const uint64_t pv = r > 0 ? incl[r - 1] : 0;
  const int s = static_cast<int>(v & 0xFFFFFFFFu) - 1;
  const int d = static_cast<int>(v >> 32) - 1;
  const int32_t i = ord[r];
  img_of_item[i] = d;
  if ((v & 0xFFFFFFFFu) != (pv & 0xFFFFFFFFu)) {
    seg_start[s] = static_cast<int32_t>(r);
    seg_image[s] = d;
  }
  if ((v >> 32) != (pv >> 32)) img_key[d] = image(i);
  if (r == n_cand - 1) {
    seg_start[s + 1] = n_cand;
    hdr->n_segments = s + 1;
    hdr->n_images = d + 1;
  }
}

// Mask tiles of each group (0 beyond the last group), for the exclusive scan that places them.
__global__ void __launch_bounds__(kThreads)
    nms_segment_tiles(const int32_t* __restrict__ seg_start, int count, const NmsHeader* hdr,
                      int64_t* __restrict__ tiles) {
  const int64_t s = thread_index();
  if (s >= count) return;
  int64_t v = 0;
  if (s < hdr->n_segments) {
    const int64_t blocks = (seg_start[s + 1] - seg_start[s] + kTile - 1) / kTile;
    v = blocks * (blocks + 1) / 2;
  }
  tiles[s] = v;
}

__global__ void nms_finish_header(const int64_t* __restrict__ tile_off, NmsHeader* hdr) {
  hdr->total_tiles = tile_off[hdr->n_segments];
}

// One 64-thread block per tile (grid-stride over all tiles of all groups). Thread c loads column
// box c into shared memory, then computes row c's 64-bit word: bit k is set when column box k
// (ranked after row box c in the group) has IoU > threshold with it. Work O(Σ n_g²/2) IoUs,
// coalesced 512-byte writes per tile.
template <class T>
__global__ void __launch_bounds__(kTile)
    nms_mask(const T* __restrict__ boxes, const int32_t* __restrict__ ord, const int32_t* __restrict__ seg_start,
             const int64_t* __restrict__ tile_off, int n_segments, int64_t total_tiles, T threshold,
             uint64_t* __restrict__ mask) {
  __shared__ T s_box[4][kTile];
  __shared__ T s_area[kTile];
  __shared__ int s_seg, s_rb, s_cb;
  const int c = threadIdx.x;
  for (int64_t t = blockIdx.x; t < total_tiles; t += gridDim.x) {
    if (c == 0) {
      // Group: the last s with tile_off[s] <= t (every group has at least one tile).
      int lo = 0, hi = n_segments - 1;
      while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (tile_off[mid] <= t) lo = mid; else hi = mid - 1;
      }
      const int64_t local = t - tile_off[lo];
      const int64_t blocks = (seg_start[lo + 1] - seg_start[lo] + kTile - 1) / kTile;
      int64_t a = 0, b = blocks - 1;  // row band: the last rb with band_start(rb) <= local
      while (a < b) {
        const int64_t mid = a + (b - a + 1) / 2;
        if (band_start(mid, blocks) <= local) a = mid; else b = mid - 1;
      }
      s_seg = lo;
      s_rb = static_cast<int>(a);
      s_cb = static_cast<int>(a + (local - band_start(a, blocks)));
    }
    __syncthreads();
    const int s = s_seg, rb = s_rb, cb = s_cb;
    const int start = seg_start[s];
    const int len = seg_start[s + 1] - start;
    const int col = cb * kTile + c;
    if (col < len) {
      const T* bx = boxes + 4 * static_cast<int64_t>(ord[start + col]);
      const T x1 = bx[0], y1 = bx[1], x2 = bx[2], y2 = bx[3];
      s_box[0][c] = x1; s_box[1][c] = y1; s_box[2][c] = x2; s_box[3][c] = y2;
      s_area[c] = box_area(x1, y1, x2, y2);
    }
    __syncthreads();
    const int row = rb * kTile + c;
    uint64_t word = 0;
    if (row < len) {
      const T* ab = boxes + 4 * static_cast<int64_t>(ord[start + row]);
      const T ax1 = ab[0], ay1 = ab[1], ax2 = ab[2], ay2 = ab[3];
      const T aarea = box_area(ax1, ay1, ax2, ay2);
      const int cols = min(kTile, len - cb * kTile);
      for (int k = (cb == rb) ? c + 1 : 0; k < cols; ++k) {
        // Same call as the CPU's greedy loop: kept (earlier) box first, then the candidate.
        const T inter = box_intersection(ax1, ay1, ax2, ay2, s_box[0][k], s_box[1][k], s_box[2][k], s_box[3][k]);
        if (iou_from_parts(inter, aarea, s_area[k]) > threshold) word |= 1ull << k;
      }
    }
    mask[t * kTile + c] = word;
    __syncthreads();  // s_box and s_seg are rewritten by the next tile
  }
}

// Greedy resolution of one group per block, in rank order. removed[cb] holds the suppressed bits of
// column block cb (global memory, one word per block of the group, placed at the group's tile
// offset). For each row block rb: warp 0 walks its 64 rows sequentially (a row is kept when its
// bit is not yet removed; keeping ORs its diagonal word into the running word), then every thread
// ORs the kept rows' words of later column blocks into removed[]. Stops at max_keep kept, as the
// CPU loop does. O(T) sequential steps of 64 shuffles plus O(kept · T) word reads per group.
__global__ void __launch_bounds__(kReduceThreads)
    nms_reduce(const uint64_t* __restrict__ mask, const int64_t* __restrict__ tile_off,
               const int32_t* __restrict__ seg_start, const int32_t* __restrict__ seg_image,
               const int32_t* __restrict__ ord, int64_t max_keep, uint64_t* __restrict__ removed_all,
               uint8_t* __restrict__ kept_item, int32_t* __restrict__ img_count) {
  __shared__ uint64_t s_kept_bits;
  __shared__ int64_t s_n_kept;
  const int s = blockIdx.x;
  const int start = seg_start[s];
  const int len = seg_start[s + 1] - start;
  const int blocks = (len + kTile - 1) / kTile;
  const int64_t tile0 = tile_off[s];
  uint64_t* removed = removed_all + tile0;  // blocks <= tiles of the group: no overlap between groups
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) removed[k] = 0;
  __syncthreads();
  int64_t n_kept = 0;  // identical in every thread: read from shared memory after a barrier
  for (int rb = 0; rb < blocks && n_kept < max_keep; ++rb) {
    const int64_t band = tile0 + band_start(rb, blocks);  // tile (rb, rb)
    if (threadIdx.x < 32) {
      const int lane = threadIdx.x;
      const uint64_t* diag = mask + band * kTile;
      const uint64_t d_lo = diag[lane], d_hi = diag[lane + 32];
      const int rows = min(kTile, len - rb * kTile);
      uint64_t word = removed[rb];
      uint64_t kept_bits = 0;
      int64_t nk = n_kept;
      for (int r = 0; r < rows; ++r) {
        const uint64_t dr = __shfl_sync(0xFFFFFFFFu, r < 32 ? d_lo : d_hi, r & 31);
        if (!((word >> r) & 1ull) && nk < max_keep) {
          kept_bits |= 1ull << r;
          word |= dr;
          ++nk;
        }
      }
      for (int r = lane; r < rows; r += 32) {
        if ((kept_bits >> r) & 1ull) kept_item[ord[start + rb * kTile + r]] = 1;
      }
      if (lane == 0) {
        s_kept_bits = kept_bits;
        s_n_kept = nk;
      }
    }
    __syncthreads();
    const uint64_t kb = s_kept_bits;
    n_kept = s_n_kept;
    if (kb != 0) {
      for (int cb = rb + 1 + threadIdx.x; cb < blocks; cb += blockDim.x) {
        const uint64_t* tile = mask + (band + (cb - rb)) * kTile;
        uint64_t acc = 0;
        for (uint64_t bits = kb; bits != 0; bits &= bits - 1) acc |= tile[__ffsll(static_cast<long long>(bits)) - 1];
        removed[cb] |= acc;
      }
    }
    __syncthreads();  // removed[] complete, and s_kept_bits / s_n_kept read by all before rewriting
  }
  if (threadIdx.x == 0 && n_kept > 0) atomicAdd(&img_count[seg_image[s]], static_cast<int>(n_kept));
}

// Merge key of each item in global rank order: its dense image if kept, else past the last image.
__global__ void __launch_bounds__(kThreads)
    merge_keys(const int32_t* __restrict__ order1, const uint8_t* __restrict__ kept_item,
               const int32_t* __restrict__ img_of_item, int n_images, int n, uint32_t* __restrict__ keys) {
  const int64_t r = thread_index();
  if (r >= n) return;
  const int32_t i = order1[r];
  keys[r] = kept_item[i] ? static_cast<uint32_t>(img_of_item[i]) : static_cast<uint32_t>(n_images);
}

// (kept << 32) | min(kept, max_det) per image, one extra 0 so the exclusive scan ends in totals.
__global__ void __launch_bounds__(kThreads)
    pack_image_counts(const int32_t* __restrict__ img_count, int n_images, int64_t max_det,
                      uint64_t* __restrict__ packed) {
  const int64_t d = thread_index();
  if (d > n_images) return;
  uint64_t v = 0;
  if (d < n_images) {
    const int64_t kept = img_count[d];
    const int64_t capped = kept < max_det ? kept : max_det;
    v = (static_cast<uint64_t>(kept) << 32) | static_cast<uint64_t>(capped);
  }
  packed[d] = v;
}

// Position of merged entry q in the output, or -1 when its image is already at max_det.
__device__ __forceinline__ int64_t output_position(const uint32_t* keys, const uint64_t* prefix, int n_images,
                                                   int64_t max_det, int64_t q) {
  const int64_t total = static_cast<int64_t>(prefix[n_images] >> 32);
  if (q >= total) return -1;
  const uint64_t base = prefix[keys[q]];
  const int64_t local = q - static_cast<int64_t>(base >> 32);
  if (local >= max_det) return -1;
  return static_cast<int64_t>(base & 0xFFFFFFFFu) + local;
}

__global__ void __launch_bounds__(kThreads)
    emit_indices(const uint32_t* __restrict__ keys, const int32_t* __restrict__ items,
                 const uint64_t* __restrict__ prefix, int n_images, int64_t max_det, int n, int64_t local_divisor,
                 int64_t* __restrict__ out) {
  const int64_t q = thread_index();
  if (q >= n) return;
  const int64_t pos = output_position(keys, prefix, n_images, max_det, q);
  if (pos < 0 || pos >= n) return;
  const int64_t i = items[q];
  out[pos] = local_divisor > 0 ? i % local_divisor : i;
}

// ------------------------------------------------------------------------------- host stages

// Device arrays describing the groups of a grouped order of n items.
struct Segments {
  int32_t* seg_start = nullptr;    // n + 1: first position of each group, then n_cand
  int32_t* seg_image = nullptr;    // n: dense image of each group
  int32_t* img_of_item = nullptr;  // n: dense image of each candidate item (by item index)
  int64_t* img_key = nullptr;      // n: original image key of each dense image
  int64_t* tile_off = nullptr;     // n + 1: first mask tile of each group, then the total
};

// Groups of `ord` (positions [0, n_cand) hold the candidates in (image, class, rank) order) and the
// mask plan. Ends with host sync 1 and returns the header.
NmsHeader plan_groups(const int32_t* ord, int n, KeyView image, KeyView cls, NmsHeader* hdr, Segments& seg,
                      Workspace& ws) {
  const cudaStream_t s = ws.stream();
  seg.seg_start = ws.alloc<int32_t>(static_cast<size_t>(n) + 1);
  seg.seg_image = ws.alloc<int32_t>(n);
  seg.img_of_item = ws.alloc<int32_t>(n);
  seg.img_key = ws.alloc<int64_t>(n);
  seg.tile_off = ws.alloc<int64_t>(static_cast<size_t>(n) + 1);
  uint64_t* packed = ws.alloc<uint64_t>(n);
  uint64_t* incl = ws.alloc<uint64_t>(n);
  nms_heads<<<blocks_for(n, kThreads), kThreads, 0, s>>>(ord, image, cls, hdr, n, packed);
  CURATA_CUDA_CHECK_LAUNCH();
  inclusive_sum(packed, incl, n, ws);
  nms_segments<<<blocks_for(n, kThreads), kThreads, 0, s>>>(ord, incl, image, n, hdr, seg.seg_start, seg.seg_image,
                                                            seg.img_of_item, seg.img_key);
  CURATA_CUDA_CHECK_LAUNCH();
  ws.release(incl);
  ws.release(packed);
  int64_t* tiles = ws.alloc<int64_t>(static_cast<size_t>(n) + 1);
  nms_segment_tiles<<<blocks_for(static_cast<int64_t>(n) + 1, kThreads), kThreads, 0, s>>>(seg.seg_start, n + 1,
                                                                                           hdr, tiles);
  CURATA_CUDA_CHECK_LAUNCH();
  exclusive_sum(tiles, seg.tile_off, n + 1, ws);
  ws.release(tiles);
  nms_finish_header<<<1, 1, 0, s>>>(seg.tile_off, hdr);
  CURATA_CUDA_CHECK_LAUNCH();
  return copy_value_and_wait(hdr, s);
}

// Mask and greedy reduction of every group; kept_item[i] = 1 for kept items, img_count[d] = kept
// boxes of dense image d.
template <class T>
void suppress(const T* boxes, const int32_t* ord, const Segments& seg, const NmsHeader& plan, T threshold,
              int64_t max_keep, uint8_t* kept_item, int32_t* img_count, int n, int device, Workspace& ws) {
  const cudaStream_t s = ws.stream();
  CURATA_CUDA_CHECK(cudaMemsetAsync(kept_item, 0, static_cast<size_t>(n), s));
  CURATA_CUDA_CHECK(cudaMemsetAsync(img_count, 0, static_cast<size_t>(plan.n_images) * sizeof(int32_t), s));
  const int64_t total_tiles = plan.total_tiles;
  uint64_t* mask = ws.alloc<uint64_t>(static_cast<size_t>(total_tiles) * kTile, "NMS suppression mask");
  uint64_t* removed = ws.alloc<uint64_t>(static_cast<size_t>(total_tiles), "NMS suppression words");
  const int64_t grid = std::min<int64_t>(total_tiles, static_cast<int64_t>(multiprocessor_count(device)) * 32);
  nms_mask<T><<<static_cast<unsigned>(grid), kTile, 0, s>>>(boxes, ord, seg.seg_start, seg.tile_off, plan.n_segments,
                                                            total_tiles, threshold, mask);
  CURATA_CUDA_CHECK_LAUNCH();
  nms_reduce<<<static_cast<unsigned>(plan.n_segments), kReduceThreads, 0, s>>>(
      mask, seg.tile_off, seg.seg_start, seg.seg_image, ord, max_keep, removed, kept_item, img_count);
  CURATA_CUDA_CHECK_LAUNCH();
  ws.release(removed);
  ws.release(mask);
}

// Kept items of each image in global rank order (stable radix sort of the rank-ordered items by
// dense image, kept first), and the scanned (kept, capped) counts per image.
struct Merged {
  uint32_t* keys = nullptr;
  int32_t* items = nullptr;
  uint64_t* prefix = nullptr;  // n_images + 1 entries
};

Merged merge_by_image(const int32_t* order1, int n, const uint8_t* kept_item, const Segments& seg,
                      const int32_t* img_count, int n_images, int64_t max_det, Workspace& ws) {
  const cudaStream_t s = ws.stream();
  Merged m;
  uint32_t* keys_in = ws.alloc<uint32_t>(n);
  m.keys = ws.alloc<uint32_t>(n);
  m.items = ws.alloc<int32_t>(n);
  merge_keys<<<blocks_for(n, kThreads), kThreads, 0, s>>>(order1, kept_item, seg.img_of_item, n_images, n, keys_in);
  CURATA_CUDA_CHECK_LAUNCH();
  sort_pairs(keys_in, m.keys, order1, m.items, n, bits_for(static_cast<uint64_t>(n_images)), ws);
  ws.release(keys_in);
  uint64_t* packed = ws.alloc<uint64_t>(static_cast<size_t>(n_images) + 1);
  m.prefix = ws.alloc<uint64_t>(static_cast<size_t>(n_images) + 1);
  pack_image_counts<<<blocks_for(static_cast<int64_t>(n_images) + 1, kThreads), kThreads, 0, s>>>(img_count, n_images,
                                                                                                  max_det, packed);
  CURATA_CUDA_CHECK_LAUNCH();
  exclusive_sum(packed, m.prefix, n_images + 1, ws);
  ws.release(packed);
  return m;
}

// Host sync 2: the scanned counts and the image keys.
void fetch_image_counts(const Merged& m, const Segments& seg, int n_images, cudaStream_t s, int64_t& total,
                        std::vector<int64_t>& image_keys, std::vector<int64_t>& image_counts) {
  std::vector<uint64_t> prefix(static_cast<size_t>(n_images) + 1);
  image_keys.resize(static_cast<size_t>(n_images));
  CURATA_CUDA_CHECK(cudaMemcpyAsync(prefix.data(), m.prefix, prefix.size() * sizeof(uint64_t),
                                    cudaMemcpyDeviceToHost, s));
  CURATA_CUDA_CHECK(cudaMemcpyAsync(image_keys.data(), seg.img_key, image_keys.size() * sizeof(int64_t),
                                    cudaMemcpyDeviceToHost, s));
  stream_sync(s);
  image_counts.resize(static_cast<size_t>(n_images));
  for (int d = 0; d < n_images; ++d)
    image_counts[d] = static_cast<int64_t>(prefix[d + 1] & 0xFFFFFFFFu) - static_cast<int64_t>(prefix[d] & 0xFFFFFFFFu);
  total = static_cast<int64_t>(prefix[n_images] & 0xFFFFFFFFu);
}

template <class T>
[[noreturn]] void raise_bad_box(const T* box_on_device, const char* name, const std::string& label, cudaStream_t s) {
  std::vector<T> box;
  copy_to_host_and_wait(box, box_on_device, 4, s);
  std::string message = invalid_box_message(box.data(), name, label);
  if (message.empty()) message = std::string(name) + " holds an invalid box at " + label;  // not reached
  throw std::invalid_argument(message);
}

// --------------------------------------------------------------------------------- batched_nms

template <class T>
NmsDeviceResult batched_nms_impl(const T* boxes, const T* scores, int n, const int64_t* classes,
                                 const int64_t* image_ids, int64_t per_image, const uint8_t* valid, double iou_threshold,
                                 bool use_score_threshold, double score_threshold, int64_t max_det, bool local_indices,
                                 int64_t* out, int device, cudaStream_t s) {
  using K = score_key_t<T>;
  NmsDeviceResult result;
  if (n == 0) return result;
  Workspace ws(s);
  NmsHeader* hdr = new_header(ws);

  // 1-2: candidates, then the stable sorts into (image, class, rank) order.
  K* score_key = ws.alloc<K>(n);
  K* score_key_sorted = ws.alloc<K>(n);
  int32_t* buffer_a = ws.alloc<int32_t>(n);
  int32_t* order1 = ws.alloc<int32_t>(n);  // rank order, kept to the end for the merge
  uint8_t* is_candidate = ws.alloc<uint8_t>(n);
  nms_prepare<T><<<blocks_for(n, kThreads), kThreads, 0, s>>>(boxes, scores, valid, n, use_score_threshold,
                                                              score_threshold, score_key, buffer_a, is_candidate, hdr);
  CURATA_CUDA_CHECK_LAUNCH();
  sort_pairs(score_key, score_key_sorted, buffer_a, order1, n, static_cast<int>(sizeof(K) * 8), ws);
  ws.release(score_key_sorted);
  ws.release(score_key);

  KeyView class_key = key_of(classes);
  KeyView image_key;
  image_key.p64 = image_ids;
  if (!image_ids && per_image > 0) image_key.divisor = per_image;
  int32_t* buffer_b = ws.alloc<int32_t>(n);
  uint64_t* keys_in = ws.alloc<uint64_t>(n);
  uint64_t* keys_out = ws.alloc<uint64_t>(n);
  const int32_t* ord = order1;
  int32_t* next = buffer_a;
  auto group_by = [&](KeyView key, int end_bit) {
    gather_sort_key<<<blocks_for(n, kThreads), kThreads, 0, s>>>(ord, key, is_candidate, n, keys_in);
    CURATA_CUDA_CHECK_LAUNCH();
    sort_pairs(keys_in, keys_out, ord, next, n, end_bit, ws);
    ord = next;
    next = (next == buffer_a) ? buffer_b : buffer_a;
  };
  if (classes) group_by(class_key, 64);
  // Implicit images are i / per_image, small non-negative keys: only their low bits are sorted.
  if (image_key.present()) group_by(image_key, image_ids ? 64 : bits_for(static_cast<uint64_t>((n - 1) / per_image)));
  ws.release(keys_out);
  ws.release(keys_in);

  // 3-4 and host sync 1.
  Segments seg;
  const NmsHeader plan = plan_groups(ord, n, image_key, class_key, hdr, seg, ws);
  if (plan.bad_box != kNone)
    raise_bad_box(boxes + 4 * static_cast<int64_t>(plan.bad_box), "boxes", "boxes[" + std::to_string(plan.bad_box) + "]",
                  s);
  if (plan.bad_score != kNone)
    throw std::invalid_argument("scores must not be NaN, got scores[" + std::to_string(plan.bad_score) + "] = nan");
  if (plan.n_cand == 0) return result;

  // 5-8 and host sync 2.
  const int64_t max_keep = max_det >= 0 ? max_det : std::numeric_limits<int64_t>::max();
  uint8_t* kept_item = ws.alloc<uint8_t>(n);
  int32_t* img_count = ws.alloc<int32_t>(plan.n_images);
  suppress(boxes, ord, seg, plan, threshold_in<T>(iou_threshold), max_keep, kept_item, img_count, n, device, ws);
  const Merged merged = merge_by_image(order1, n, kept_item, seg, img_count, plan.n_images, max_keep, ws);
  emit_indices<<<blocks_for(n, kThreads), kThreads, 0, s>>>(merged.keys, merged.items, merged.prefix, plan.n_images,
                                                            max_keep, n, local_indices ? per_image : 0, out);
  CURATA_CUDA_CHECK_LAUNCH();
  fetch_image_counts(merged, seg, plan.n_images, s, result.n_keep, result.image_ids, result.image_counts);
  return result;
}

}  // namespace

NmsDeviceResult batched_nms(bool is_double, std::uintptr_t boxes, std::uintptr_t scores, int64_t n,
                            std::uintptr_t classes, std::uintptr_t image_ids, int64_t per_image, std::uintptr_t valid,
                            double iou_threshold, bool use_score_threshold, double score_threshold, int64_t max_det,
                            bool local_indices, std::uintptr_t out, int device, std::uintptr_t stream) {
  if (n < 0) throw std::invalid_argument("batched_nms: n must be >= 0, got " + std::to_string(n));
  if (n >= INT32_MAX)
    throw std::invalid_argument("nms on the GPU supports at most 2^31 - 2 boxes, got " + std::to_string(n));
  if (!(iou_threshold >= 0.0 && iou_threshold <= 1.0))
    throw std::invalid_argument("iou_threshold must be in [0, 1], got " + std::to_string(iou_threshold));
  if (per_image < 0) throw std::invalid_argument("per_image must be >= 0, got " + std::to_string(per_image));
  if (local_indices && (per_image <= 0 || image_ids))
    throw std::invalid_argument("local_indices needs implicit images (per_image > 0, no image_ids)");
  DeviceGuard guard(device);
  const cudaStream_t s = as_stream(stream);
  const auto* c = reinterpret_cast<const int64_t*>(classes);
  const auto* im = reinterpret_cast<const int64_t*>(image_ids);
  const auto* v = reinterpret_cast<const uint8_t*>(valid);
  auto* o = reinterpret_cast<int64_t*>(out);
  const int count = static_cast<int>(n);
  if (is_double)
    return batched_nms_impl(reinterpret_cast<const double*>(boxes), reinterpret_cast<const double*>(scores), count, c, im,
                            per_image, v, iou_threshold, use_score_threshold, score_threshold, max_det, local_indices, o,
                            device, s);
  return batched_nms_impl(reinterpret_cast<const float*>(boxes), reinterpret_cast<const float*>(scores), count, c, im,
                          per_image, v, iou_threshold, use_score_threshold, score_threshold, max_det, local_indices, o,
                          device, s);
}

}  // namespace curata::cuda
