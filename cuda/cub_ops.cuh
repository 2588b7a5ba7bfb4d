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

}  // namespace curata::cuda
