#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "cub_ops.cuh"

namespace curata::cuda {
namespace {

template <class K>
void sort_pairs_impl(const K* keys_in, K* keys_out, const int32_t* values_in, int32_t* values_out, int n, int end_bit,
                     Workspace& ws) {
  if (n <= 0) return;
  std::size_t bytes = 0;
  CURATA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, values_in, values_out, n, 0,
                                                    end_bit, ws.stream()));
  void* temp = ws.alloc<unsigned char>(bytes, "radix sort temporary storage");
  CURATA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, keys_in, keys_out, values_in, values_out, n, 0,
                                                    end_bit, ws.stream()));
  ws.release(temp);
}

template <class V, bool Inclusive> void scan_impl(const V* in, V* out, int n, Workspace& ws) {
  if (n <= 0) return;
  std::size_t bytes = 0;
  if constexpr (Inclusive)
    CURATA_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, bytes, in, out, n, ws.stream()));
  else
    CURATA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out, n, ws.stream()));
  void* temp = ws.alloc<unsigned char>(bytes, "scan temporary storage");
  if constexpr (Inclusive)
    CURATA_CUDA_CHECK(cub::DeviceScan::InclusiveSum(temp, bytes, in, out, n, ws.stream()));
  else
    CURATA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, bytes, in, out, n, ws.stream()));
  ws.release(temp);
}

template <class K>
std::size_t segmented_impl(void* temp, std::size_t temp_bytes, const K* keys_in, K* keys_out, const int32_t* values_in,
                           int32_t* values_out, int n, int segments, const int32_t* begin, const int32_t* end,
                           int end_bit, cudaStream_t stream) {
  std::size_t bytes = 0;
  CURATA_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, values_in, values_out,
                                                             n, segments, begin, end, 0, end_bit, stream));
  if (temp == nullptr || n <= 0 || segments <= 0) return bytes;
  if (temp_bytes < bytes) throw std::runtime_error("curata internal error: segmented sort workspace too small");
  CURATA_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in,
                                                             values_out, n, segments, begin, end, 0, end_bit, stream));
  return bytes;
}

}  // namespace

std::size_t segmented_sort_pairs(void* temp, std::size_t temp_bytes, const uint32_t* keys_in, uint32_t* keys_out,
                                 const int32_t* values_in, int32_t* values_out, int n, int segments,
                                 const int32_t* begin, const int32_t* end, int end_bit, cudaStream_t stream) {
  return segmented_impl(temp, temp_bytes, keys_in, keys_out, values_in, values_out, n, segments, begin, end, end_bit,
                        stream);
}
std::size_t segmented_sort_pairs(void* temp, std::size_t temp_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                                 const int32_t* values_in, int32_t* values_out, int n, int segments,
                                 const int32_t* begin, const int32_t* end, int end_bit, cudaStream_t stream) {
  return segmented_impl(temp, temp_bytes, keys_in, keys_out, values_in, values_out, n, segments, begin, end, end_bit,
                        stream);
}
std::size_t exclusive_sum(void* temp, std::size_t temp_bytes, const int32_t* in, int32_t* out, int n,
                          cudaStream_t stream) {
  std::size_t bytes = 0;
  CURATA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, in, out, n, stream));
  if (temp == nullptr || n <= 0) return bytes;
  if (temp_bytes < bytes) throw std::runtime_error("curata internal error: scan workspace too small");
  CURATA_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, in, out, n, stream));
  return bytes;
}

void sort_pairs(const uint32_t* keys_in, uint32_t* keys_out, const int32_t* values_in, int32_t* values_out, int n,
                int end_bit, Workspace& ws) {
  sort_pairs_impl(keys_in, keys_out, values_in, values_out, n, end_bit, ws);
}
void sort_pairs(const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in, int32_t* values_out, int n,
                int end_bit, Workspace& ws) {
  sort_pairs_impl(keys_in, keys_out, values_in, values_out, n, end_bit, ws);
}
void inclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace& ws) { scan_impl<uint64_t, true>(in, out, n, ws); }
void exclusive_sum(const uint64_t* in, uint64_t* out, int n, Workspace& ws) { scan_impl<uint64_t, false>(in, out, n, ws); }
void exclusive_sum(const int64_t* in, int64_t* out, int n, Workspace& ws) { scan_impl<int64_t, false>(in, out, n, ws); }

}  // namespace curata::cuda
