// Block-wide reductions for kernels: a warp reduction by shuffles, then one value per warp through shared
// memory. Device code for both builds (kernel.cuh); no state of its own.
#pragma once

#include "kernels/cuda/kernel.cuh"

namespace QCODER_CUDA_NAMESPACE {

constexpr unsigned full_warp_mask = 0xffffffffu;

// The sum over the 32 lanes of a warp, in every lane (butterfly: each step halves the distance).
__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(full_warp_mask, value, offset);
  return value;
}

// The maximum over the 32 lanes of a warp, in every lane.
__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(full_warp_mask, value, offset));
  return value;
}

// The sum over the whole block, in every thread. blockDim.x must be a multiple of 32 (≤ 1024), blockDim.y
// and .z 1; `warp_sums` is the block's shared scratch of 32 floats. It is read after the one barrier and not
// written again, so a caller that reuses it for a second reduction must __syncthreads() first.
__device__ __forceinline__ float block_sum(float value, float* warp_sums) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned warp = threadIdx.x / 32;
  value = warp_sum(value);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  // Every warp sums the per-warp totals itself, which saves a second barrier to broadcast the result.
  return warp_sum(lane < blockDim.x / 32 ? warp_sums[lane] : 0.0f);
}

}  // namespace QCODER_CUDA_NAMESPACE
