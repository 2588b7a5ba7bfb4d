// The few CUB device-wide primitives curata uses, wrapped in plain functions compiled once (in
// cub_ops.cu) instead of in every kernel file: CUB's radix sort is by far the heaviest template to
// instantiate. Temporary storage comes from the caller's Workspace and is released right after.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace curata::cuda {

// Stable LSD radix sort of (key, value) pairs on bits [0, end_bit) of the key. Equal keys keep
// their input order, which is what makes chained sorts (score, then class, then image) equal to a
// lexicographic sort with ties broken by index. Inputs and outputs must not overlap.
void sort_pairs(const uint32_t* keys_in, uint32_t* keys_out, const int32_t* values_in, int32_t* values_out, int n,
                int end_bit, Workspace& ws);
void sort_pairs(const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in, int32_t* values_out, int n,
                int end_bit, Workspace& ws);

void inclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace& ws);
void exclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace& ws);
void exclusive_sum(const int64_t* in, int64_t* out, int n, Workspace& ws);

// Variants for a caller-planned workspace (cuda/postprocess.cu): the caller passes the temporary
// storage; with temp == nullptr nothing runs and the bytes needed are returned (a host-only
// query: no launch, no sync), so a whole pipeline's workspace can be sized from shapes alone.
//
// Segmented stable radix sort: segment s is [begin[s], end[s]) with both arrays on the device, so
// segment sizes never reach the host. Items outside every segment are neither read nor written.
// (DeviceSegmentedRadixSort: unlike DeviceSegmentedSort, it never copies group sizes to the host.)
std::size_t segmented_sort_pairs(void* temp, std::size_t temp_bytes, const uint32_t* keys_in, uint32_t* keys_out,
                                 const int32_t* values_in, int32_t* values_out, int n, int segments,
                                 const int32_t* begin, const int32_t* end, int end_bit, cudaStream_t stream);
std::size_t segmented_sort_pairs(void* temp, std::size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                                 const int32_t* values_in, int32_t* values_out, int n, int segments,
                                 const int32_t* begin, const int32_t* end, int end_bit, cudaStream_t stream);
std::size_t exclusive_sum(void* temp, std::size_t temp_bytes, const int32_t* in, int32_t* out, int n,
                          cudaStream_t stream);

}  // namespace curata::cuda
