// Exact k-nearest-neighbour search over dense float32 vectors.
//
// Brute force, tiled: a block of queries is multiplied against a block of base rows into a small
// per-thread tile (a register-blocked dot-product kernel compiled per vector width), and each
// query keeps a bounded heap of its k best candidates, stored directly in its output row. Nothing
// of size queries x base is ever materialised.
//
// Memory: inputs + outputs + base row norms (n floats, "l2"/"cosine" only) + per thread one
// tile of kQueryBlock x kBaseBlockMax floats (at most 192 KiB) and query norms; the small-batch
// scan path (fewer than kScanMaxQueries queries) keeps per thread and query a candidate heap of k
// entries (threads x queries x k x 12 bytes) that is merged at the end.
#pragma once

#include <cstdint>

namespace curata {
namespace search {

enum class Metric : int { InnerProduct = 0, L2 = 1, Cosine = 2 };

// Queries per block of the GEMM path and the tile's base-row cap.
constexpr int64_t kQueryBlock = 96;
constexpr int64_t kBaseBlockMax = 512;
// Below this many queries the base is split across threads instead of the queries.
constexpr int64_t kScanMaxQueries = 20;

// First rows holding a NaN or infinity (-1: none). Non-finite rows are found without a separate
// pass (every dot product with such a row is non-finite); the outputs are then meaningless.
struct KnnStatus {
  int64_t nonfinite_base_row = -1;
  int64_t nonfinite_query_row = -1;
};

// k nearest base rows for each query row. base: (n, d), queries: (m, d), both C-contiguous
// float32; non-finite rows are reported in the returned status (the caller raises). Writes distances (m, k)
// and indices (m, k), best first: largest similarity for InnerProduct/Cosine, smallest squared
// Euclidean distance for L2. Ties are broken by lower base index. Cosine similarity with a zero
// vector is 0. exclude_self (requires queries == base rows, m == n) skips base row i for query i
// (a self-join / kNN graph; other exact duplicates are kept). Throws std::invalid_argument on
// k < 1, k > n (k > n - 1 under exclude_self), d < 1 or n < 1.
KnnStatus knn(const float* base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k, Metric metric,
              bool exclude_self, float* distances, int64_t* indices);

// Index of the first row holding a NaN or infinity, or -1.
int64_t first_nonfinite_row(const float* x, int64_t rows, int64_t d);

}  // namespace search
}  // namespace curata
