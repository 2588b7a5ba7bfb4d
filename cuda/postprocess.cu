// YOLO-head post-processing on the GPU with a bounded workspace and no host sync: the same
// detections as the CPU library (cpp/src/postprocess.cpp), written to a padded (B, max_det, 6)
// output plus (B,) int32 counts, all on the caller's stream.
//
// Shapes: B images, A anchors, C classes, P candidates per anchor (C with multi-label, else 1),
// M = A * P candidate ordinals per image, K = min(max_nms, M) the per-image cap, D = max_det,
// G = the NMS groups per image (1 when agnostic or C == 1, else C). Every buffer is sized from
// these on the host (postprocess_workspace_bytes), so nothing waits for a count:
//
//   1. pp_scan          per (image, anchor): NaN check (first one recorded, image flagged), best
//                       class, candidates of the slot, candidates per image (atomics)
//   2. radix select     only images with more than K candidates (not launched at all when
//                       A * P <= max_nms, as for single-label defaults): select_passes() rounds of
//      pp_hist          per-image 256-bin histograms of the next 8-bit digit of the composite key
//      pp_select_step   (score key, ordinal) and one block per image picking the digit holding the
//                       K-th smallest key (curata/postprocess_math.hpp). Images under the cap
//                       return at once: with a typical conf_threshold these rounds are launch
//                       cost only.
//   3. pp_select_count  selected candidates per slot, one exclusive scan (B*A + 1 entries):
//      + scan           per-image compaction offsets, in the CPU's candidate order
//      pp_images        n_b, and the segment bounds [b*K, b*K + n_b) on the device
//      pp_compact       decoded box, score, class, anchor, score key, written to image b's K slots
//   4. segmented sort   stable radix sort by score key within each image (device offsets, so the
//                       sizes never reach the host): rank order = descending score, ties by ordinal
//      pp_after_rank    box validation in the CPU's candidate order, class keys
//      segmented sort   stable by class: (class, rank) groups inside each image (skipped when G==1)
//      scan             group offsets from the per-(image, class) counts of pp_compact
//   5. pp_nms           one block per (image, class) group: greedy NMS in 64-box row blocks; each
//                       block's boxes are tested against the group's kept boxes (in parallel),
//                       then a 64x64 in-block IoU bitmask in shared memory is resolved in rank
//                       order. No global mask at all: memory O(K) per image, work Σ n_g·kept_g as
//                       on the CPU; stops at max_det kept boxes per group (as the CPU does)
//   6. pp_flags + scan  kept flags in rank order, scanned: each kept box's output row
//      pp_emit          rows [0, min(kept, D)) of each image; pp_counts the counts (-1 = invalid)
//
// Workspace: about 100 bytes per candidate slot (B*K) plus 16 bytes per (image, anchor) and 1 KB
// per image, plus CUB's temporary storage (one block reused by every CUB call, which run one after
// another on the stream). It comes from the caller (torch's or CuPy's caching allocator, via
// python/curata/_cuda_ops.py) in one piece, or else from cudaMallocAsync's stream-ordered pool.
//
// IoUs use the CURATA_HD formulas of curata/box_math.hpp with the kept box first, the threshold is
// threshold_in<T>, and the build uses --fmad=false: every decision matches the CPU's.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common.cuh"
#include "cub_ops.cuh"
#include "curata/box_math.hpp"
#include "curata/boxes.hpp"
#include "curata/postprocess_math.hpp"
#include "curata/sort_keys.hpp"
#include "launchers.hpp"

namespace curata::cuda {
namespace {

constexpr int kThreads = 256;      // one-thread-per-item kernels
constexpr int kBlock = 64;         // NMS row block: boxes resolved together, bits of a word
constexpr int kNmsThreads = 256;   // pp_nms: all threads test against kept boxes
constexpr int kLanes = kNmsThreads / kBlock;  // pp_nms threads per row of a block
constexpr int kFilterWords = 32;   // class filter passed by value up to 2048 classes
constexpr unsigned long long kNone = ULLONG_MAX;

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// Allowed classes (classes=): a bitmask passed by value, or a device byte mask for more classes.
struct ClassFilter {
  uint64_t words[kFilterWords];
  const uint8_t* bytes;
  bool on;
  __device__ bool allows(int64_t c) const {
    if (!on) return true;
    if (bytes) return bytes[c] != 0;
    return (words[c >> 6] >> (c & 63)) & 1ull;
  }
};

// Everything the kernels need to know about the shapes.
struct Shape {
  int64_t batch, anchors, channels, n_classes;
  int64_t slots;       // B * A
  int64_t items;       // B * K
  int cap;             // K
  int groups;          // G
  int per_anchor;      // P
  bool multi;
  int ord_bits, total_bits, passes;
};

// Calls fn(score, class, ordinal) for every candidate of slot g = (image b, anchor a), in the CPU's
// candidate order (classes ascending).
template <class T, class F>
__device__ __forceinline__ void for_each_candidate(const T* pred, const Shape& sh, T conf, const ClassFilter& filter,
                                                   const int32_t* best_class, int64_t g, F&& fn) {
  const int64_t b = g / sh.anchors, a = g % sh.anchors;
  const T* cls0 = pred + (b * sh.channels + 4) * sh.anchors + a;
  if (sh.multi) {
    for (int64_t c = 0; c < sh.n_classes; ++c) {
      const T s = cls0[c * sh.anchors];
      if (s > conf && filter.allows(c)) fn(s, c, static_cast<uint32_t>(a * sh.n_classes + c));
    }
  } else {
    const int64_t c = best_class[g];
    const T s = cls0[c * sh.anchors];
    if (s > conf && filter.allows(c)) fn(s, c, static_cast<uint32_t>(a));
  }
}

__device__ __forceinline__ bool over_cap(const int32_t* img_cand, int64_t b, int cap) { return img_cand[b] > cap; }

// ------------------------------------------------------------------------------------ kernels

// Per (image, anchor): NaN check, best class (first maximum, as torch.max), candidate count.
template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_scan(const T* __restrict__ pred, Shape sh, T conf, ClassFilter filter, int32_t* __restrict__ slot_count,
            int32_t* __restrict__ best_class, int32_t* __restrict__ img_cand, int32_t* __restrict__ img_err,
            unsigned long long* first_nan) {
  const int64_t g = thread_index();
  if (g >= sh.slots) return;
  const int64_t b = g / sh.anchors, a = g % sh.anchors;
  const T* cls0 = pred + (b * sh.channels + 4) * sh.anchors + a;
  int64_t nan_class = -1;
  int count = 0;
  T best = cls0[0];
  int32_t bc = 0;
  for (int64_t c = 0; c < sh.n_classes; ++c) {
    const T s = cls0[c * sh.anchors];
    if (isnan(s) && nan_class < 0) nan_class = c;
    if (sh.multi) {
      count += (s > conf && filter.allows(c)) ? 1 : 0;
    } else if (s > best) {  // strictly greater: the first maximum wins
      best = s;
      bc = static_cast<int32_t>(c);
    }
  }
  if (nan_class >= 0) {
    atomicMin(first_nan, static_cast<unsigned long long>((b * sh.n_classes + nan_class) * sh.anchors + a));
    img_err[b] = 1;  // every writer stores the same value
  }
  if (!sh.multi) {
    count = (best > conf && filter.allows(bc)) ? 1 : 0;
    best_class[g] = bc;
  }
  slot_count[g] = count;
  if (count > 0) atomicAdd(&img_cand[b], count);
}

// One radix-select round: histogram of digit `pass` of the candidates still matching the digits
// chosen so far, for the images over the cap.
template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_hist(const T* __restrict__ pred, Shape sh, T conf, ClassFilter filter, const int32_t* __restrict__ best_class,
            const int32_t* __restrict__ img_cand, const int32_t* __restrict__ img_err,
            const int32_t* __restrict__ sel_digits, int pass, int32_t* __restrict__ hist) {
  const int64_t g = thread_index();
  if (g >= sh.slots) return;
  const int64_t b = g / sh.anchors;
  if (img_err[b] || !over_cap(img_cand, b, sh.cap)) return;
  const int32_t* digits = sel_digits + b * kSelectMaxPasses;
  int32_t* h = hist + b * kSelectBins;
  for_each_candidate(pred, sh, conf, filter, best_class, g, [&](T s, int64_t, uint32_t ordinal) {
    const uint64_t key = descending_score_key(s);
    if (select_prefix_matches(key, ordinal, sh.ord_bits, sh.total_bits, digits, pass))
      atomicAdd(&h[select_digit(key, ordinal, sh.ord_bits, sh.total_bits, pass)], 1);
  });
}

// One block per image over the cap: the digit whose bin holds the rank-th smallest key; the rank
// left inside that bin; the histogram cleared for the next round.
__global__ void __launch_bounds__(kThreads)
    pp_select_step(Shape sh, const int32_t* __restrict__ img_cand, const int32_t* __restrict__ img_err, int pass,
                   int32_t* __restrict__ hist, int32_t* __restrict__ sel_rank, int32_t* __restrict__ sel_digits) {
  const int64_t b = blockIdx.x;
  if (img_err[b] || !over_cap(img_cand, b, sh.cap)) return;  // uniform over the block
  int32_t* h = hist + b * kSelectBins;
  if (threadIdx.x == 0) {
    const int32_t rank = pass == 0 ? sh.cap : sel_rank[b];  // 1-based, >= 1
    int32_t below = 0;
    int d = 0;
    for (; d < kSelectBins - 1; ++d) {
      if (below + h[d] >= rank) break;
      below += h[d];
    }
    sel_rank[b] = rank - below;
    sel_digits[b * kSelectMaxPasses + pass] = d;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kSelectBins; i += blockDim.x) h[i] = 0;
}

// Selected candidates of each slot (all of them below the cap; those with key <= the K-th over
// it), and a trailing 0 so the exclusive scan ends in the total.
template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_select_count(const T* __restrict__ pred, Shape sh, T conf, ClassFilter filter,
                    const int32_t* __restrict__ best_class, const int32_t* __restrict__ img_cand,
                    const int32_t* __restrict__ img_err, const int32_t* __restrict__ sel_digits,
                    int32_t* __restrict__ sel_count) {
  const int64_t g = thread_index();
  if (g > sh.slots) return;
  if (g == sh.slots) {
    sel_count[g] = 0;
    return;
  }
  const int64_t b = g / sh.anchors;
  int count = 0;
  if (!img_err[b]) {
    const bool capped = over_cap(img_cand, b, sh.cap);
    const int32_t* digits = sel_digits + b * kSelectMaxPasses;
    for_each_candidate(pred, sh, conf, filter, best_class, g, [&](T s, int64_t, uint32_t ordinal) {
      if (!capped || select_at_most(descending_score_key(s), ordinal, sh.ord_bits, sh.total_bits, digits)) ++count;
    });
  }
  sel_count[g] = count;
}

// Per image: n_b selected candidates and the sort segment [b*K, b*K + n_b).
__global__ void __launch_bounds__(kThreads)
    pp_images(Shape sh, const int32_t* __restrict__ sel_off, int32_t* __restrict__ n_img,
              int32_t* __restrict__ seg_begin, int32_t* __restrict__ seg_end, int64_t* __restrict__ status) {
  const int64_t b = thread_index();
  if (b >= sh.batch) return;
  // The selection keeps exactly min(candidates, K); the clamp only keeps a bug from writing past
  // the image's K slots (the same guard is in pp_compact).
  const int32_t n = min(sel_off[(b + 1) * sh.anchors] - sel_off[b * sh.anchors], sh.cap);
  n_img[b] = n;
  seg_begin[b] = static_cast<int32_t>(b * sh.cap);
  seg_end[b] = static_cast<int32_t>(b * sh.cap + n);
  status[1 + sh.batch + b] = n;
}

// Writes the selected candidates of each slot into its image's K slots, in candidate order.
template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_compact(const T* __restrict__ pred, Shape sh, T conf, ClassFilter filter,
               const int32_t* __restrict__ best_class, const int32_t* __restrict__ img_cand,
               const int32_t* __restrict__ img_err, const int32_t* __restrict__ sel_digits,
               const int32_t* __restrict__ sel_off, T* __restrict__ cbox, T* __restrict__ cscore,
               int32_t* __restrict__ ccls, int32_t* __restrict__ canchor, score_key_t<T>* __restrict__ skey,
               int32_t* __restrict__ items, int32_t* __restrict__ grp_count) {
  const int64_t g = thread_index();
  if (g >= sh.slots) return;
  const int64_t b = g / sh.anchors, a = g % sh.anchors;
  if (img_err[b]) return;
  int64_t o = b * sh.cap + (sel_off[g] - sel_off[b * sh.anchors]);
  const bool capped = over_cap(img_cand, b, sh.cap);
  const int32_t* digits = sel_digits + b * kSelectMaxPasses;
  const T* base = pred + b * sh.channels * sh.anchors + a;
  const T cxcywh[4] = {base[0], base[sh.anchors], base[2 * sh.anchors], base[3 * sh.anchors]};
  T xyxy[4];
  to_xyxy(BoxFormat::cxcywh, cxcywh, xyxy);
  for_each_candidate(pred, sh, conf, filter, best_class, g, [&](T s, int64_t c, uint32_t ordinal) {
    using K = score_key_t<T>;
    const K key = descending_score_key(s);
    if (capped && !select_at_most(key, ordinal, sh.ord_bits, sh.total_bits, digits)) return;
    if (o >= (b + 1) * sh.cap) return;
    for (int k = 0; k < 4; ++k) cbox[4 * o + k] = xyxy[k];
    cscore[o] = s;
    ccls[o] = static_cast<int32_t>(c);
    canchor[o] = static_cast<int32_t>(a);
    skey[o] = key;
    items[o] = static_cast<int32_t>(o);
    atomicAdd(&grp_count[b * sh.groups + (sh.groups > 1 ? c : 0)], 1);
    ++o;
  });
}

// In rank order: validates the boxes (the first invalid one of each image in the CPU's order:
// rank order when the image was capped, candidate order otherwise) and writes the class keys.
template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_after_rank(Shape sh, const int32_t* __restrict__ n_img, const int32_t* __restrict__ img_cand,
                  const int32_t* __restrict__ rank_items, const T* __restrict__ cbox, const int32_t* __restrict__ ccls,
                  const int32_t* __restrict__ canchor, uint32_t* __restrict__ class_key, int32_t* __restrict__ img_err,
                  int64_t* __restrict__ status) {
  const int64_t r = thread_index();
  if (r >= sh.items) return;
  const int64_t b = r / sh.cap, local = r % sh.cap;
  if (local >= n_img[b]) return;
  const int32_t i = rank_items[r];
  if (!box_is_valid(cbox + 4 * static_cast<int64_t>(i))) {
    const int64_t pos = over_cap(img_cand, b, sh.cap) ? local : i - b * sh.cap;
    const unsigned long long packed = (static_cast<unsigned long long>(pos) << 32) | static_cast<uint32_t>(canchor[i]);
    atomicMin(reinterpret_cast<unsigned long long*>(status + 1 + b), packed);
    img_err[b] = 2;  // every writer stores the same value
  }
  class_key[r] = static_cast<uint32_t>(ccls[i]);
}

// Greedy NMS of one (image, class) group per block, in rank order, 64 boxes at a time. A box is
// kept unless its IoU with a box kept before it (earlier blocks: tested in parallel by all threads;
// the same block: the in-block bitmask) is > threshold, and while fewer than max_keep are kept.
template <class T>
__global__ void __launch_bounds__(kNmsThreads)
    pp_nms(const T* __restrict__ cbox, const int32_t* __restrict__ group_items, const int32_t* __restrict__ grp_count,
           const int32_t* __restrict__ grp_off, Shape sh, T threshold, int64_t max_keep,
           const int32_t* __restrict__ img_err, int32_t* __restrict__ kept_list, uint8_t* __restrict__ kept_flag) {
  __shared__ T s_box[4][kBlock];
  __shared__ T s_area[kBlock];
  __shared__ int32_t s_item[kBlock];
  __shared__ int s_sup[kLanes][kBlock];
  __shared__ uint64_t s_diag[kBlock];
  __shared__ uint64_t s_keep;
  __shared__ int s_n_kept;
  const int64_t gid = blockIdx.x;
  const int64_t b = gid / sh.groups;
  const int n = grp_count[gid];
  if (n == 0 || img_err[b]) return;  // uniform over the block
  const int64_t start = b * sh.cap + (grp_off[gid] - grp_off[b * sh.groups]);
  const int t = threadIdx.x;
  int n_kept = 0;  // identical in every thread (read from shared memory after a barrier)
  for (int r0 = 0; r0 < n && n_kept < max_keep; r0 += kBlock) {
    const int rows = min(kBlock, n - r0);
    if (t < kBlock) {
      s_diag[t] = 0;
      if (t < rows) {
        const int32_t i = group_items[start + r0 + t];
        const T* bx = cbox + 4 * static_cast<int64_t>(i);
        s_item[t] = i;
        s_box[0][t] = bx[0]; s_box[1][t] = bx[1]; s_box[2][t] = bx[2]; s_box[3][t] = bx[3];
        s_area[t] = box_area(bx[0], bx[1], bx[2], bx[3]);
      }
    }
    __syncthreads();
    // Against the group's boxes kept in earlier blocks (kept box first, as the CPU computes it):
    // kLanes threads per row, each over every kLanes-th kept box, each writing its own flag.
    {
      const int r = t % kBlock, lane = t / kBlock;
      int hit = 0;
      if (r < rows) {
        for (int j = lane; j < n_kept && !hit; j += kLanes) {
          const T* kb = cbox + 4 * static_cast<int64_t>(kept_list[start + j]);
          const T kx1 = kb[0], ky1 = kb[1], kx2 = kb[2], ky2 = kb[3];
          const T inter = box_intersection(kx1, ky1, kx2, ky2, s_box[0][r], s_box[1][r], s_box[2][r], s_box[3][r]);
          hit = iou_from_parts(inter, box_area(kx1, ky1, kx2, ky2), s_area[r]) > threshold;
        }
      }
      s_sup[lane][r] = hit;
    }
    // In-block bitmask: bit k of row r set when box k (ranked after r) overlaps box r.
    if (t < rows) {
      uint64_t word = 0;
      for (int k = t + 1; k < rows; ++k) {
        const T inter = box_intersection(s_box[0][t], s_box[1][t], s_box[2][t], s_box[3][t], s_box[0][k], s_box[1][k],
                                         s_box[2][k], s_box[3][k]);
        if (iou_from_parts(inter, s_area[t], s_area[k]) > threshold) word |= 1ull << k;
      }
      s_diag[t] = word;
    }
    __syncthreads();
    if (t == 0) {
      uint64_t removed = 0;
      for (int r = 0; r < rows; ++r) {
        int hit = 0;
        for (int lane = 0; lane < kLanes; ++lane) hit |= s_sup[lane][r];
        if (hit) removed |= 1ull << r;
      }
      uint64_t keep = 0;
      int64_t nk = n_kept;
      for (int r = 0; r < rows && nk < max_keep; ++r) {
        if ((removed >> r) & 1ull) continue;
        keep |= 1ull << r;
        removed |= s_diag[r];
        ++nk;
      }
      s_keep = keep;
      s_n_kept = static_cast<int>(nk);
    }
    __syncthreads();
    const uint64_t keep = s_keep;
    if (t < rows && ((keep >> t) & 1ull)) {
      const int slot = n_kept + __popcll(keep & ((1ull << t) - 1));
      kept_list[start + slot] = s_item[t];
      kept_flag[s_item[t]] = 1;
    }
    n_kept = s_n_kept;
    __syncthreads();  // kept_list visible to the block; shared arrays rewritten next round
  }
}

// Kept flag of each rank position (0 past n_b), and a trailing 0 for the scan.
__global__ void __launch_bounds__(kThreads)
    pp_flags(Shape sh, const int32_t* __restrict__ n_img, const int32_t* __restrict__ rank_items,
             const uint8_t* __restrict__ kept_flag, int32_t* __restrict__ flags) {
  const int64_t r = thread_index();
  if (r > sh.items) return;
  int32_t f = 0;
  if (r < sh.items) {
    const int64_t b = r / sh.cap, local = r % sh.cap;
    if (local < n_img[b]) f = kept_flag[rank_items[r]];
  }
  flags[r] = f;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    pp_emit(Shape sh, const int32_t* __restrict__ flags, const int32_t* __restrict__ pos,
            const int32_t* __restrict__ rank_items, const int32_t* __restrict__ img_err, const T* __restrict__ cbox,
            const T* __restrict__ cscore, const int32_t* __restrict__ ccls, int64_t max_det, T* __restrict__ dets) {
  const int64_t r = thread_index();
  if (r >= sh.items || !flags[r]) return;
  const int64_t b = r / sh.cap;
  if (img_err[b]) return;
  const int64_t out = pos[r] - pos[b * sh.cap];
  if (out >= max_det) return;
  const int64_t i = rank_items[r];
  T* row = dets + 6 * (b * max_det + out);
  for (int k = 0; k < 4; ++k) row[k] = cbox[4 * i + k];
  row[4] = cscore[i];
  row[5] = static_cast<T>(ccls[i]);
}

__global__ void __launch_bounds__(kThreads)
    pp_counts(Shape sh, const int32_t* __restrict__ pos, const int32_t* __restrict__ img_err, int64_t max_det,
              int32_t* __restrict__ counts) {
  const int64_t b = thread_index();
  if (b >= sh.batch) return;
  int64_t kept = 0;
  if (pos) kept = pos[(b + 1) * sh.cap] - pos[b * sh.cap];
  counts[b] = img_err[b] ? -1 : static_cast<int32_t>(kept < max_det ? kept : max_det);
}

// ------------------------------------------------------------------------------- host side

Shape make_shape(bool is_double, int64_t batch, int64_t channels, int64_t anchors, const DevicePostprocessOptions& o) {
  if (channels - 4 < 1)
    throw std::invalid_argument(
        "pred must have shape (batch, 4 + n_classes, n_anchors) with n_classes >= 1, got " + std::to_string(channels) +
        " channels");
  if (batch < 0 || anchors < 0) throw std::invalid_argument("postprocess: batch and anchors must be >= 0");
  if (!(o.conf_threshold >= 0.0 && o.conf_threshold <= 1.0))
    throw std::invalid_argument("conf_threshold must be in [0, 1], got " + std::to_string(o.conf_threshold));
  if (!(o.iou_threshold >= 0.0 && o.iou_threshold <= 1.0))
    throw std::invalid_argument("iou_threshold must be in [0, 1], got " + std::to_string(o.iou_threshold));
  if (o.max_det < 0 || o.max_nms < 0) throw std::invalid_argument("max_det and max_nms must be >= 0");
  Shape sh{};
  sh.batch = batch;
  sh.anchors = anchors;
  sh.channels = channels;
  sh.n_classes = channels - 4;
  sh.multi = o.multi_label && sh.n_classes > 1;
  sh.per_anchor = sh.multi ? static_cast<int>(std::min<int64_t>(sh.n_classes, INT32_MAX)) : 1;
  const int64_t ordinals = anchors * (sh.multi ? sh.n_classes : 1);
  if (anchors > 0 && ordinals / anchors != (sh.multi ? sh.n_classes : 1))
    throw std::invalid_argument("postprocess on the GPU: anchors x classes overflows");
  if (ordinals >= INT32_MAX)
    throw std::invalid_argument("postprocess on the GPU supports anchors x classes per anchor < 2^31 - 1, got " +
                                std::to_string(ordinals));
  const int64_t cap = candidate_cap(anchors, sh.multi ? sh.n_classes : 1, o.max_nms);
  sh.cap = static_cast<int>(cap);
  sh.slots = batch * anchors;
  if (batch > 0 && anchors > 0 && batch > (INT32_MAX - 1) / anchors)
    throw std::invalid_argument("postprocess on the GPU supports batch * anchors < 2^31 - 1, got " +
                                std::to_string(batch) + " x " + std::to_string(anchors));
  if (batch > 0 && cap > 0 && batch > (INT32_MAX - 1) / cap)
    throw std::invalid_argument("postprocess on the GPU supports batch * min(max_nms, candidates per image) < 2^31 - 1, "
                                "got " + std::to_string(batch) + " x " + std::to_string(cap) + "; lower max_nms");
  sh.items = batch * cap;
  sh.groups = (o.agnostic || sh.n_classes == 1) ? 1 : static_cast<int>(std::min<int64_t>(sh.n_classes, INT32_MAX));
  if (batch > 0 && batch > (INT32_MAX - 1) / sh.groups)
    throw std::invalid_argument("postprocess on the GPU supports batch * n_classes < 2^31 - 1");
  sh.ord_bits = bits_for(static_cast<uint64_t>(ordinals > 0 ? ordinals - 1 : 0));
  sh.total_bits = (is_double ? 64 : 32) + sh.ord_bits;
  // No image can exceed the cap when it has no more candidate ordinals than max_nms (the default
  // single-label case: A <= 30000): the selection rounds are then not even launched.
  sh.passes = ordinals > cap ? select_passes(sh.total_bits) : 0;
  return sh;
}

int class_bits(const Shape& sh) { return bits_for(static_cast<uint64_t>(sh.n_classes - 1)); }

// Bump allocation inside one workspace block: with base == nullptr only the size is computed.
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <class U> U* take(int64_t count) {
    offset_ = (offset_ + 255) / 256 * 256;
    U* p = base_ ? reinterpret_cast<U*>(base_ + offset_) : nullptr;
    offset_ += static_cast<std::size_t>(std::max<int64_t>(count, 1)) * sizeof(U);
    return p;
  }
  std::size_t size() const { return offset_; }

 private:
  char* base_;
  std::size_t offset_ = 0;
};

template <class T> struct Buffers {
  using K = score_key_t<T>;
  int32_t *img_cand, *img_err, *sel_rank, *sel_digits, *hist, *n_img, *seg_begin, *seg_end;
  int32_t *slot_count, *sel_off, *best_class;
  T *cbox, *cscore;
  int32_t *ccls, *canchor, *items, *rank_items, *group_items, *kept_list, *flags, *pos;
  K *skey, *skey_sorted;
  uint32_t *class_key, *class_sorted;
  uint8_t *kept_flag, *filter_bytes;
  int32_t *grp_count, *grp_off;
  void* cub_temp;
  std::size_t cub_bytes;
};

// The workspace layout, from shapes only. CUB's temporary storage is queried with null pointers
// (host-only) and one block of the largest size serves every CUB call.
template <class T> std::size_t lay_out(const Shape& sh, bool filter_on_device, char* base, Buffers<T>& w) {
  using K = score_key_t<T>;
  Carver c(base);
  const int64_t B = sh.batch, S = sh.slots, N = sh.items, BG = sh.batch * sh.groups;
  w.img_cand = c.take<int32_t>(B);
  w.img_err = c.take<int32_t>(B);
  w.sel_rank = c.take<int32_t>(B);
  w.sel_digits = c.take<int32_t>(B * kSelectMaxPasses);
  w.hist = c.take<int32_t>(B * kSelectBins);
  w.n_img = c.take<int32_t>(B);
  w.seg_begin = c.take<int32_t>(B);
  w.seg_end = c.take<int32_t>(B);
  w.slot_count = c.take<int32_t>(S + 1);
  w.sel_off = c.take<int32_t>(S + 1);
  w.best_class = c.take<int32_t>(S);
  w.cbox = c.take<T>(4 * N);
  w.cscore = c.take<T>(N);
  w.ccls = c.take<int32_t>(N);
  w.canchor = c.take<int32_t>(N);
  w.items = c.take<int32_t>(N);
  w.rank_items = c.take<int32_t>(N);
  w.group_items = c.take<int32_t>(N);
  w.kept_list = c.take<int32_t>(N);
  w.flags = c.take<int32_t>(N + 1);
  w.pos = c.take<int32_t>(N + 1);
  w.skey = c.take<K>(N);
  w.skey_sorted = c.take<K>(N);
  w.class_key = c.take<uint32_t>(N);
  w.class_sorted = c.take<uint32_t>(N);
  w.kept_flag = c.take<uint8_t>(N);
  w.filter_bytes = filter_on_device ? c.take<uint8_t>(sh.n_classes) : nullptr;
  w.grp_count = c.take<int32_t>(BG + 1);
  w.grp_off = c.take<int32_t>(BG + 1);
  std::size_t cub = 0;
  const int n_items = static_cast<int>(N), n_seg = static_cast<int>(B);
  cub = std::max(cub, exclusive_sum(nullptr, 0, w.slot_count, w.sel_off, static_cast<int>(S + 1), nullptr));
  cub = std::max(cub, exclusive_sum(nullptr, 0, w.grp_count, w.grp_off, static_cast<int>(BG + 1), nullptr));
  cub = std::max(cub, exclusive_sum(nullptr, 0, w.flags, w.pos, static_cast<int>(N + 1), nullptr));
  cub = std::max(cub, segmented_sort_pairs(nullptr, 0, w.skey, w.skey_sorted, w.items, w.rank_items, n_items, n_seg,
                                           w.seg_begin, w.seg_end, static_cast<int>(sizeof(K) * 8), nullptr));
  cub = std::max(cub, segmented_sort_pairs(nullptr, 0, w.class_key, w.class_sorted, w.rank_items, w.group_items,
                                           n_items, n_seg, w.seg_begin, w.seg_end, class_bits(sh), nullptr));
  w.cub_bytes = cub;
  w.cub_temp = c.take<unsigned char>(static_cast<int64_t>(cub));
  return c.size();
}

ClassFilter make_filter(const Shape& sh, const DevicePostprocessOptions& o) {
  ClassFilter f{};
  f.on = o.filter_classes;
  f.bytes = nullptr;
  if (!f.on) return f;
  if (sh.n_classes <= kFilterWords * 64) {
    for (const int64_t c : o.allowed_classes)
      if (c >= 0 && c < sh.n_classes) f.words[c >> 6] |= 1ull << (c & 63);
  }
  return f;
}

bool filter_on_device(const Shape& sh, const DevicePostprocessOptions& o) {
  return o.filter_classes && sh.n_classes > kFilterWords * 64;
}

template <class T>
void padded_impl(const T* pred, const Shape& sh, const DevicePostprocessOptions& o, char* workspace,
                 int64_t workspace_bytes, T* dets, int32_t* counts, int64_t* status, cudaStream_t s) {
  using K = score_key_t<T>;
  const int64_t B = sh.batch, S = sh.slots, N = sh.items, BG = sh.batch * sh.groups;
  CURATA_CUDA_CHECK(cudaMemsetAsync(status, 0xFF, static_cast<std::size_t>(postprocess_status_size(B)) * 8, s));
  if (o.max_det > 0)
    CURATA_CUDA_CHECK(cudaMemsetAsync(dets, 0, static_cast<std::size_t>(B * o.max_det * 6) * sizeof(T), s));
  if (B == 0) return;
  const bool on_device = filter_on_device(sh, o);
  Buffers<T> w{};
  const std::size_t need = lay_out<T>(sh, on_device, nullptr, w);
  Workspace pool(s);  // used only when the caller brought no workspace
  if (workspace == nullptr) {
    workspace = pool.alloc<char>(need, "postprocess workspace");
  } else if (static_cast<std::size_t>(workspace_bytes) < need) {
    throw std::invalid_argument("postprocess workspace must hold " + std::to_string(need) + " bytes, got " +
                                std::to_string(workspace_bytes));
  }
  lay_out<T>(sh, on_device, workspace, w);
  ClassFilter filter = make_filter(sh, o);
  std::vector<uint8_t> filter_host;  // staged by cudaMemcpyAsync before the call returns (pageable)
  if (on_device) {
    filter_host.assign(static_cast<std::size_t>(sh.n_classes), 0);
    for (const int64_t c : o.allowed_classes)
      if (c >= 0 && c < sh.n_classes) filter_host[static_cast<std::size_t>(c)] = 1;
    CURATA_CUDA_CHECK(
        cudaMemcpyAsync(w.filter_bytes, filter_host.data(), filter_host.size(), cudaMemcpyHostToDevice, s));
    filter.bytes = w.filter_bytes;
  }
  CURATA_CUDA_CHECK(cudaMemsetAsync(w.img_cand, 0, static_cast<std::size_t>(B) * sizeof(int32_t), s));
  CURATA_CUDA_CHECK(cudaMemsetAsync(w.img_err, 0, static_cast<std::size_t>(B) * sizeof(int32_t), s));
  const T conf = static_cast<T>(o.conf_threshold);  // rounded to T exactly as the CPU does
  auto* first_nan = reinterpret_cast<unsigned long long*>(status);

  // 1. scan
  if (S > 0) {
    pp_scan<T><<<blocks_for(S, kThreads), kThreads, 0, s>>>(pred, sh, conf, filter, w.slot_count, w.best_class,
                                                            w.img_cand, w.img_err, first_nan);
    CURATA_CUDA_CHECK_LAUNCH();
  }
  const int32_t* pos = nullptr;
  if (N > 0) {
    // 2. radix selection of the K-th best candidate of the images over the cap
    CURATA_CUDA_CHECK(cudaMemsetAsync(w.hist, 0, static_cast<std::size_t>(B * kSelectBins) * sizeof(int32_t), s));
    for (int pass = 0; pass < sh.passes; ++pass) {
      pp_hist<T><<<blocks_for(S, kThreads), kThreads, 0, s>>>(pred, sh, conf, filter, w.best_class, w.img_cand,
                                                              w.img_err, w.sel_digits, pass, w.hist);
      CURATA_CUDA_CHECK_LAUNCH();
      pp_select_step<<<static_cast<unsigned>(B), kThreads, 0, s>>>(sh, w.img_cand, w.img_err, pass, w.hist, w.sel_rank,
                                                                   w.sel_digits);
      CURATA_CUDA_CHECK_LAUNCH();
    }
    // 3. compaction in candidate order
    pp_select_count<T><<<blocks_for(S + 1, kThreads), kThreads, 0, s>>>(pred, sh, conf, filter, w.best_class,
                                                                        w.img_cand, w.img_err, w.sel_digits,
                                                                        w.slot_count);
    CURATA_CUDA_CHECK_LAUNCH();
    exclusive_sum(w.cub_temp, w.cub_bytes, w.slot_count, w.sel_off, static_cast<int>(S + 1), s);
    pp_images<<<blocks_for(B, kThreads), kThreads, 0, s>>>(sh, w.sel_off, w.n_img, w.seg_begin, w.seg_end, status);
    CURATA_CUDA_CHECK_LAUNCH();
    CURATA_CUDA_CHECK(cudaMemsetAsync(w.grp_count, 0, static_cast<std::size_t>(BG + 1) * sizeof(int32_t), s));
    pp_compact<T><<<blocks_for(S, kThreads), kThreads, 0, s>>>(pred, sh, conf, filter, w.best_class, w.img_cand,
                                                               w.img_err, w.sel_digits, w.sel_off, w.cbox, w.cscore,
                                                               w.ccls, w.canchor, w.skey, w.items, w.grp_count);
    CURATA_CUDA_CHECK_LAUNCH();
    // 4. rank order, validation, (class, rank) groups
    const int n_items = static_cast<int>(N), n_seg = static_cast<int>(B);
    segmented_sort_pairs(w.cub_temp, w.cub_bytes, w.skey, w.skey_sorted, w.items, w.rank_items, n_items, n_seg,
                         w.seg_begin, w.seg_end, static_cast<int>(sizeof(K) * 8), s);
    pp_after_rank<T><<<blocks_for(N, kThreads), kThreads, 0, s>>>(sh, w.n_img, w.img_cand, w.rank_items, w.cbox,
                                                                  w.ccls, w.canchor, w.class_key, w.img_err, status);
    CURATA_CUDA_CHECK_LAUNCH();
    const int32_t* group_items = w.rank_items;
    if (sh.groups > 1) {
      segmented_sort_pairs(w.cub_temp, w.cub_bytes, w.class_key, w.class_sorted, w.rank_items, w.group_items, n_items,
                           n_seg, w.seg_begin, w.seg_end, class_bits(sh), s);
      group_items = w.group_items;
    }
    exclusive_sum(w.cub_temp, w.cub_bytes, w.grp_count, w.grp_off, static_cast<int>(BG + 1), s);
    // 5. NMS per (image, class) group
    CURATA_CUDA_CHECK(cudaMemsetAsync(w.kept_flag, 0, static_cast<std::size_t>(N), s));
    const int64_t max_keep = o.max_det;
    if (max_keep > 0) {
      pp_nms<T><<<static_cast<unsigned>(BG), kNmsThreads, 0, s>>>(w.cbox, group_items, w.grp_count, w.grp_off, sh,
                                                                   threshold_in<T>(o.iou_threshold), max_keep,
                                                                   w.img_err, w.kept_list, w.kept_flag);
      CURATA_CUDA_CHECK_LAUNCH();
    }
    // 6. output rows
    pp_flags<<<blocks_for(N + 1, kThreads), kThreads, 0, s>>>(sh, w.n_img, w.rank_items, w.kept_flag, w.flags);
    CURATA_CUDA_CHECK_LAUNCH();
    exclusive_sum(w.cub_temp, w.cub_bytes, w.flags, w.pos, static_cast<int>(N + 1), s);
    if (o.max_det > 0) {
      pp_emit<T><<<blocks_for(N, kThreads), kThreads, 0, s>>>(sh, w.flags, w.pos, w.rank_items, w.img_err, w.cbox,
                                                              w.cscore, w.ccls, o.max_det, dets);
      CURATA_CUDA_CHECK_LAUNCH();
    }
    pos = w.pos;
  } else if (B > 0) {
    CURATA_CUDA_CHECK(cudaMemsetAsync(status + 1 + B, 0, static_cast<std::size_t>(B) * 8, s));  // n_b = 0
  }
  pp_counts<<<blocks_for(B, kThreads), kThreads, 0, s>>>(sh, pos, w.img_err, o.max_det, counts);
  CURATA_CUDA_CHECK_LAUNCH();
}

}  // namespace

int64_t postprocess_workspace_bytes(bool is_double, int64_t batch, int64_t channels, int64_t anchors,
                                    const DevicePostprocessOptions& options, int device) {
  const Shape sh = make_shape(is_double, batch, channels, anchors, options);
  if (batch == 0) return 0;
  DeviceGuard guard(device);
  const bool on_device = filter_on_device(sh, options);
  if (is_double) {
    Buffers<double> w{};
    return static_cast<int64_t>(lay_out<double>(sh, on_device, nullptr, w));
  }
  Buffers<float> w{};
  return static_cast<int64_t>(lay_out<float>(sh, on_device, nullptr, w));
}

void postprocess_padded(bool is_double, std::uintptr_t pred, int64_t batch, int64_t channels, int64_t anchors,
                        const DevicePostprocessOptions& options, std::uintptr_t workspace, int64_t workspace_bytes,
                        std::uintptr_t dets, std::uintptr_t counts, std::uintptr_t status, int device,
                        std::uintptr_t stream) {
  const Shape sh = make_shape(is_double, batch, channels, anchors, options);
  DeviceGuard guard(device);
  const cudaStream_t s = as_stream(stream);
  auto* ws = reinterpret_cast<char*>(workspace);
  auto* c = reinterpret_cast<int32_t*>(counts);
  auto* st = reinterpret_cast<int64_t*>(status);
  if (is_double)
    padded_impl(reinterpret_cast<const double*>(pred), sh, options, ws, workspace_bytes,
                reinterpret_cast<double*>(dets), c, st, s);
  else
    padded_impl(reinterpret_cast<const float*>(pred), sh, options, ws, workspace_bytes, reinterpret_cast<float*>(dets),
                c, st, s);
}

namespace {
template <class T>
[[noreturn]] void raise_bad_candidate(const T* pred, int64_t b, int64_t channels, int64_t anchors, int64_t anchor,
                                      int64_t index, cudaStream_t s) {
  T cxcywh[4];
  for (int k = 0; k < 4; ++k)
    CURATA_CUDA_CHECK(cudaMemcpyAsync(&cxcywh[k], pred + (b * channels + k) * anchors + anchor, sizeof(T),
                                      cudaMemcpyDeviceToHost, s));
  stream_sync(s);
  T xyxy[4];
  to_xyxy(BoxFormat::cxcywh, cxcywh, xyxy);  // the kernels' formula: the same values
  const char* name = "pred (decoded candidate boxes)";
  std::string message = invalid_box_message(xyxy, name, std::string(name) + "[" + std::to_string(index) + "]");
  if (message.empty()) message = std::string(name) + " holds an invalid box at index " + std::to_string(index);
  throw std::invalid_argument(message);
}
}  // namespace

std::vector<int64_t> postprocess_fetch(bool is_double, std::uintptr_t pred, int64_t batch, int64_t channels,
                                       int64_t anchors, std::uintptr_t counts, std::uintptr_t status, int device,
                                       std::uintptr_t stream) {
  DeviceGuard guard(device);
  const cudaStream_t s = as_stream(stream);
  std::vector<int32_t> host_counts(static_cast<std::size_t>(batch));
  std::vector<int64_t> st(static_cast<std::size_t>(postprocess_status_size(batch)));
  if (batch > 0)
    CURATA_CUDA_CHECK(cudaMemcpyAsync(host_counts.data(), reinterpret_cast<const int32_t*>(counts),
                                      host_counts.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
  CURATA_CUDA_CHECK(cudaMemcpyAsync(st.data(), reinterpret_cast<const int64_t*>(status), st.size() * sizeof(int64_t),
                                    cudaMemcpyDeviceToHost, s));
  stream_sync(s);
  const int64_t n_classes = channels - 4;
  if (static_cast<unsigned long long>(st[0]) != kNone) {
    const auto at = static_cast<int64_t>(st[0]);
    const int64_t a = at % anchors, c = (at / anchors) % n_classes, b = at / anchors / n_classes;
    throw std::invalid_argument("pred class scores must not be NaN, got NaN at pred[" + std::to_string(b) + ", " +
                                std::to_string(4 + c) + ", " + std::to_string(a) + "]");
  }
  int64_t before = 0;  // candidates of the earlier images: the CPU checks all images' candidates as one array
  for (int64_t b = 0; b < batch; ++b) {
    const auto packed = static_cast<unsigned long long>(st[static_cast<std::size_t>(1 + b)]);
    if (packed != kNone) {
      const auto position = static_cast<int64_t>(packed >> 32);
      const auto anchor = static_cast<int64_t>(packed & 0xFFFFFFFFull);
      if (is_double)
        raise_bad_candidate(reinterpret_cast<const double*>(pred), b, channels, anchors, anchor, before + position, s);
      raise_bad_candidate(reinterpret_cast<const float*>(pred), b, channels, anchors, anchor, before + position, s);
    }
    before += st[static_cast<std::size_t>(1 + batch + b)];
  }
  return std::vector<int64_t>(host_counts.begin(), host_counts.end());
}

int64_t host_sync_count() { return host_sync_counter().load(); }

}  // namespace curata::cuda
