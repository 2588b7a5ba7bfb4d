// kNN dot-product kernels, internal to the core (used by knn.cpp and cluster.cpp).
//
// Every kernel evaluates a dot product in the same order: W lane sums (W = 16 where the CPU has
// AVX-512, else 8), lane l summing elements l, l + W, ... in increasing order with a multiply-add
// each (fused where the CPU has FMA), then the W sums added in one fixed tree. So a dot's bits do not
// depend on the kernel, the batch or the thread count, and dot(x, x) equals self_dots' norm of x.
//
// - dot_tile: a register-blocked dot-product kernel (4 x 4 blocks of 16 lanes or 3 x 4 of 8; 1 x 8
//   for fewer than 4 query rows), with an optional shift mu subtracted as rows are loaded.
// - dot_tile_any with PackedRows: an outer-product kernel for blocks of >= 11 query rows, which are
//   packed once per block (pack_rows) and then reused against every base block.
// - self_dots: squared norms, through the dot-product kernel.
#pragma once

#include <cstdint>
#include <vector>

namespace curata {
namespace search {
namespace kernels {

// Base rows per 1 x kScanNR block of the dot-product kernel (base blocks are multiples of it).
constexpr int kScanNR = 8;

// tile[i * ldt + j] = dot(Q[i], B[j]) for i < mq, j < nb (row-major (mq, d) and (nb, d) floats),
// and the transpose tile_t[j * ldt + i] when tile_t is not null (the symmetric self-join).
// mu (optional, d floats): subtracted from every element of B as it is loaded (a shifted copy's
// bits, without the copy).
void dot_tile(const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d, float* tile, int64_t ldt,
              const float* mu = nullptr, float* tile_t = nullptr);

// out[i] = dot(X[i], X[i]) for i < rows; mu (optional): subtracted from X's elements first.
void self_dots(const float* X, int64_t rows, int64_t d, float* out, const float* mu = nullptr);

// Rows packed for the outer-product kernel with W lanes. Zero past d (never read) and past `rows`
// (the dots of padding rows are computed and discarded).
struct PackedRows {
  std::vector<float> data;  // data[(l * steps + s) * stride + i] = row i, element W s + l
  int64_t rows = 0;
  int64_t stride = 0;  // rows rounded up to a multiple of W
  int64_t steps = 0;   // ceil(d / W)
  int64_t d = 0;
  int lanes = 0;  // W: 16 (AVX-512) or 8 (AVX2 + FMA)
};

// Lanes of the outer-product kernel that may serve a block of `rows` query rows (16 or 8), or 0
// for the dot-product kernel.
int packed_lanes_for(int64_t rows);

// Packs rows X (rows, d) for the outer-product kernel with `lanes` lanes into P (reusing its memory).
void pack_rows(const float* X, int64_t rows, int64_t d, int lanes, PackedRows& P);

// dot_tile (same arguments) through the outer-product kernel when P holds Q packed (pack_rows with
// packed_lanes_for(mq) lanes) and no shift mu is asked for (that kernel subtracts none), else
// through the dot-product kernel. The same bits either way.
void dot_tile_any(const PackedRows* P, const float* Q, int64_t mq, const float* B, int64_t nb, int64_t d, float* tile,
                  int64_t ldt, const float* mu = nullptr, float* tile_t = nullptr);

}  // namespace kernels
}  // namespace search
}  // namespace curata
