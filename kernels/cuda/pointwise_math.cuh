// Device helpers shared by pointwise.cu, routing.cu and sampling.cu: element loads by run-time type, the
// activation functions spelled exactly as the CPU code spells them (ref::silu, ref::sigmoid, ref::softplus),
// and the block sizes. Device code for both builds (kernel.cuh); no state of its own.
#pragma once

#include <cstdint>

#include "kernels/cuda/kernel.cuh"
#include "kernels/cuda/types.h"

namespace QCODER_CUDA_NAMESPACE {

// Block sizes for the kernels that give one block a long row (argmax, sampling): a full block on a GPU; a
// small one on the emulator, where each thread is an OS thread and every barrier wakes all of them.
#if defined(__CUDACC__)
constexpr unsigned long_row_threads = 1024;
#define QCODER_LONG_ROW_BOUNDS __launch_bounds__(1024)  // registers capped so a full block always launches
#else
constexpr unsigned long_row_threads = 64;
#define QCODER_LONG_ROW_BOUNDS
#endif

// Constants device code can use (std::numeric_limits is host-only under nvcc).
constexpr float float_infinity = __builtin_huge_valf();
constexpr int int_max = 0x7fffffff;

// Elementwise kernels: threads per block (fewer on the emulator, for the reason above) and the most blocks a
// grid-stride launch asks for.
#if defined(__CUDACC__)
constexpr unsigned elementwise_threads = 256;
#else
constexpr unsigned elementwise_threads = 64;
#endif
constexpr std::int64_t elementwise_max_blocks = 4096;

// Element i of an array of `type` (uniform branch: the type is the same for the whole launch).
__device__ __forceinline__ float load_element(cuda::element_type type, const void* data, std::int64_t i) {
  switch (type) {
    case cuda::element_type::f32: return static_cast<const float*>(data)[i];
    case cuda::element_type::f16: return __half2float(static_cast<const __half*>(data)[i]);
    case cuda::element_type::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[i]);
    case cuda::element_type::f8_e4m3: return static_cast<float>(static_cast<const __nv_fp8_e4m3*>(data)[i]);
  }
  return 0.0f;
}

// The CPU's ref::silu / ref::sigmoid / ref::softplus, operation for operation (expf is the host's on the
// emulator, CUDA's on a GPU: within 2 ulp of each other).
__device__ __forceinline__ float silu_of(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float sigmoid_of(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus_of(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// Host side: whether a pointer allows 16-byte vector loads.
inline bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// Blocks for a grid-stride loop over `work` items, elementwise_threads per block.
inline unsigned elementwise_blocks(std::int64_t work) {
  const std::int64_t blocks = (work + elementwise_threads - 1) / elementwise_threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > elementwise_max_blocks ? elementwise_max_blocks : blocks));
}

}  // namespace QCODER_CUDA_NAMESPACE
