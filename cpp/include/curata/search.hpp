// Exact k-nearest-neighbour search over dense float32 vectors.
//
// Brute force, tiled: a block of queries is multiplied against a block of base rows into a small
// per-thread tile (blocks of >= 11 queries: an outer-product kernel over the block's queries, packed
// once; smaller ones: a register-blocked dot-product kernel; both compiled per vector width and
// evaluating every dot in the same order, so the same bits), and each
// query keeps a bounded heap of its k best candidates, stored directly in its output row. Nothing
// of size queries x base is ever materialised.
//
// L2 is computed on rows shifted by a centre of the base (see knn.cpp: no cancellation for data
// far from the origin; no shift, bit-identical results, for data near it).
//
// Memory: inputs + outputs + base row norms (n floats, "l2"/"cosine" only) + per thread one
// tile of kQueryBlock x kBaseBlockMax floats (at most 192 KiB), query norms and the packed query
// block (kQueryBlock x d floats, d rounded up to 16; shifted L2: plus one staged base block of
// about 128 KiB and one staged query block); the small-batch
// scan path (fewer than kScanMaxQueries queries) keeps per thread and query a candidate heap of k
// entries (threads x queries x k x 12 bytes) that is merged at the end. From k = 128 on, buffers of
// up to 2k candidates (16 bytes each) replace the heaps: per thread kQueryBlock of min(2k, n) each;
// scan path: per thread and query min(2k, n / threads), plus min(2k, n) per query for the merge.
#pragma once

#include <cstdint>
#include <vector>

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
// removed (optional, n bytes): rows with a nonzero byte are skipped, as if absent (the persistent
// index's deleted rows before compaction); the caller guarantees k <= the number of other rows.
KnnStatus knn(const float* base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k, Metric metric,
              bool exclude_self, float* distances, int64_t* indices, const uint8_t* removed = nullptr);

// The kNN graph of x (n, d) C-contiguous float32: knn(x, n, x, n, d, k, metric, exclude_self=true)
// with the same results bit for bit (distances, indices, ties, the non-finite status), computed
// as a symmetric self-join: rows are cut into blocks of block_rows rows (0: kQueryBlock) and only
// the tiles on and above the diagonal of the n x n pair space are computed, each one's dot
// products serving both row blocks (about half the multiply-adds of knn()). path Auto takes the
// join when there are at least max(2, 4 x threads) blocks (fewer: the threads would wait on each
// other, see knn.cpp), General is knn()'s query x base path, Symmetric forces the join (tests
// compare the two). Throws as knn(), and on block_rows outside [0, kBaseBlockMax].
// Memory: inputs + outputs + n floats of norms (l2/cosine) + n heap records (32 bytes each) +
// per thread 8 slots of two block_rows^2 float tiles (a row computes up to 8 tiles ahead of the
// row before it: 576 KiB at 96 rows) and, under a shifted L2, two staged blocks of
// block_rows x d floats.
enum class GraphPath : int { Auto = 0, General = 1, Symmetric = 2 };
KnnStatus knn_graph(const float* x, int64_t n, int64_t d, int64_t k, Metric metric, float* distances,
                    int64_t* indices, GraphPath path = GraphPath::Auto, int64_t block_rows = 0);

// Index of the first row holding a NaN or infinity, or -1.
int64_t first_nonfinite_row(const float* x, int64_t rows, int64_t d);
int64_t first_nonfinite_row_f16(const uint16_t* x, int64_t rows, int64_t d);

// knn over a base stored as IEEE half (numpy float16 bit patterns, (n, d) C-contiguous). Queries
// are float32. Each base block is converted to float32 into a per-thread buffer of at most
// kBaseBlockMax rows (base_block_rows(d) rows: about 128 KiB) right before its dot products, so
// the result is exactly knn() on base converted to float32, and no float32 copy of the base is
// ever made. No exclude_self.
KnnStatus knn_f16(const uint16_t* base, int64_t n, const float* queries, int64_t m, int64_t d, int64_t k,
                  Metric metric, float* distances, int64_t* indices, const uint8_t* removed = nullptr);

// All base rows within `radius` of each query, in faiss's CSR layout: the hits of query i are
// entries lims[i] .. lims[i + 1] of distances / indices, in increasing base index. L2 keeps rows
// with squared distance <= radius; InnerProduct and Cosine keep rows with similarity >= radius.
// Distances are the same float32 values knn() reports (same kernel, same arithmetic), so a row
// whose knn() distance equals `radius` is included. NaN dot products (overflow) never match.
struct RangeResult {
  std::vector<int64_t> lims;  // m + 1
  std::vector<float> distances;
  std::vector<int64_t> indices;
  KnnStatus status;
};
// Work: queries are split into blocks across threads (fewer than kScanMaxQueries queries: the
// base is split instead); hits are appended to per (query, base chunk) vectors and concatenated.
// Memory: inputs + per thread one dot tile (and one float32 base block for the f16 variant) +
// the hits, held twice at the end (vectors, then the concatenated output).
// Throws std::invalid_argument on d < 1, n < 0, a NaN radius or an unknown metric.
RangeResult range_search(const float* base, int64_t n, const float* queries, int64_t m, int64_t d, float radius,
                         Metric metric, const uint8_t* removed = nullptr);
RangeResult range_search_f16(const uint16_t* base, int64_t n, const float* queries, int64_t m, int64_t d,
                             float radius, Metric metric, const uint8_t* removed = nullptr);

// out[i] = float(half in[i]) for i < count, exact; uses the CPU's F16C instructions when present
// unless allow_hardware is false (tests compare both paths on every bit pattern).
void half_to_float(const uint16_t* in, int64_t count, float* out, bool allow_hardware = true);

// out[i] = half(in[i]) (round to nearest even) for `rows` rows of d values; returns the first row
// holding a value that became infinite or NaN (|v| >= 65520 or a non-finite input), or -1. Uses
// F16C when present unless allow_hardware is false (both give the same bits for finite input).
int64_t float_to_half_rows(const float* in, int64_t rows, int64_t d, uint16_t* out, bool allow_hardware = true);

// Deletes rows `removed` (strictly increasing positions in [0, rows)) from a C-contiguous table of
// `rows` rows of `row_bytes` bytes, in place, keeping the order of the others; returns the new row
// count. One memmove per kept run: O(rows x row_bytes) bytes moved at most, no extra memory.
// Throws std::invalid_argument when `removed` is not strictly increasing or out of range.
int64_t remove_rows(void* data, int64_t row_bytes, int64_t rows, const int64_t* removed, int64_t n_removed);

// First row of a (rows, d) table of IEEE floats, given by their bit patterns, that holds a NaN or
// an infinity (all exponent bits set), or -1. float32 as uint32, float16 as uint16. One pass of
// vectorised integer tests (no float compares: signalling NaNs stay quiet, nothing traps), AVX2
// where the CPU has it (`allow_hardware` = false: the portable build of the same loop, for tests).
int64_t first_nonfinite_row(const uint32_t* bits, int64_t rows, int64_t d, bool allow_hardware = true);
int64_t first_nonfinite_row(const uint16_t* bits, int64_t rows, int64_t d, bool allow_hardware = true);
// out[r] = the largest (bits & 0x7FFFFFFF) of row r of a (rows, d) table of float32 bit patterns:
// the bits of the row's largest |value| when it is finite (>= 0x7F800000 for NaN/inf rows).
void row_abs_max_bits(const uint32_t* bits, int64_t rows, int64_t d, uint32_t* out, bool allow_hardware = true);

// Cosine is scale-free, but the float32 squared norm of a row overflows once its values pass about
// 1e19 and underflows below about 1e-19. A row needs rescaling for float32 cosine arithmetic when
// its largest |value| (bits `top`, from row_abs_max_bits) is finite, nonzero and outside
// [2^-50, 2^50]: multiplied by the power of two that brings that value into [0.5, 1) (exact for
// values down to 2^-126 times the largest; smaller ones land on the subnormal grid), its cosines
// are bit for bit those of the unscaled row wherever those neither overflowed nor fell into the
// subnormal range (below about 1e-38 they can differ: 0 against float32's 1e-45, for example).
bool cosine_row_needs_scale(uint32_t top);
// out (rows, d) = x with every row that needs it rescaled so (NaN/inf rows and zero rows copied
// unchanged); returns the number of rescaled rows. out may equal x.
int64_t cosine_rescale_rows(const float* x, int64_t rows, int64_t d, float* out);

}  // namespace search
}  // namespace curata
