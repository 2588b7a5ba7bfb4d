// CURATA_HD marks math that is compiled for both the CPU library and the CUDA kernels, so each
// formula exists exactly once.
#pragma once

#if defined(__CUDACC__)
#define CURATA_HD __host__ __device__ __forceinline__
#else
#define CURATA_HD inline
#endif
