// k-means Lloyd step on the CPU: nearest-centroid assignment and per-cluster sums.
//
// Used by python/curata/_cluster.py (kmeans, and through it representativeness and the drift
// monitor's clustering). Shapes and finiteness are checked by the Python layer; these functions
// check only what would make them read or write out of bounds (label range, sizes).
#pragma once

#include <cstdint>

namespace curata {
namespace cluster {

// Nearest centroid of every float32 row X[i] (n, d) among the float32 centroids C (k, d), in the
// exact arithmetic of the real numbers wherever the float32 dot products decide it rigorously, and
// by float64 differences otherwise:
//   labels[i] = argmin_j |X[i] - C[j]|^2 (lowest index among the float64 minima),
//   dist[i]   = max(|C[j]|^2 - 2 X[i].C[j] + sq[i], 0) for that j, or, for a row re-decided in
//               float64, sum_t (X[i][t] - C[j][t])^2 in float64.
// sq[i] = |X[i]|^2 in float64 (the caller's; only used for dist and the rounding bound).
// Dots come from the kNN dot kernels (cpp/src/knn_kernels.hpp) in tiles of row blocks x centroid
// chunks; the argmin, runner-up and bound test are fused into the tile consumer, so no (n, k)
// matrix is formed. Memory: a packed and a transposed copy of C (8 k d bytes) + one tile per
// thread (at most 64 x 1008 floats). Threads:
// curata::num_threads(); results do not depend on the thread count.
void nearest_centroids_f32(const float* X, int64_t n, int64_t d, const float* C, int64_t k, const double* sq,
                           int64_t* labels, double* dist);

// The same decision rule for float64 rows, from dots computed by the caller:
// GT (k, n) row-major, GT[j * n + i] = X[i].C[j] in float64 by any summation order (a BLAS GEMM
// C X^T), each with |GT - X.C| <= gamma_{d + 2}(2^-53) |X| |C|. Runs on the calling thread (the
// caller works block by block). Memory: a transposed copy of C (8 k d bytes).
void nearest_centroids_f64(const double* X, int64_t n, int64_t d, const double* C, int64_t k, const double* sq,
                           const double* GT, int64_t* labels, double* dist);

// sums[j * d + t] = sum of X[i][t] over the rows i with labels[i] == j, in float64: the rows are
// cut into min(16, max(1, n / (16 k))) chunks (a count that depends on n and k only), each chunk
// adds its rows in increasing order, and the chunk sums are added in chunk order, so the bits do
// not depend on the thread count. sums is (k, d) and is overwritten. Extra memory: the chunks'
// partial sums, 8 k d bytes each (at most n d / 2 bytes in all). Throws std::invalid_argument when
// a label is outside [0, k).
void cluster_sums(const float* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* sums);
void cluster_sums(const double* X, int64_t n, int64_t d, const int64_t* labels, int64_t k, double* sums);

}  // namespace cluster
}  // namespace curata
