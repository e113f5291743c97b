// Matrix products on the GPU (and on the emulator): the CUDA twins of ref::matmul, out[n, W.rows] =
// x[n, W.cols] @ Wᵀ, for every weight type the checkpoints use (f32, f16, bf16, FP8 E4M3 with block scales of
// f32 or bf16).
// - gemv: the decode shape (n small): one warp or more per output row, 16-byte loads, the x rows in
//   registers/shared memory, scales applied per 128-block. Any n is correct (each row of x in turn).
// - gemm: the prefill shape: BF16 tensor cores through the WMMA API, float accumulation.
// - matmul: picks one of the two by n.
// - expert_gemv: the routed experts of a MoE layer in one launch, each assignment's weights looked up in a
//   device table by expert (a slot table: which expert sits where changes between launches, the launch
//   does not).
//
// Plain C++17 with no CUDA headers. Each entry point exists in qcoder::cuda (nvcc, qcoder_kernels_cuda) and
// qcoder::cuda_emu (the same sources on the emulator, qcoder_kernels_cuda_emu), and in qcoder::cuda_cost (no
// launch: each call's bytes and FLOPs recorded for the time model, kernels/cuda/cost/; so in every header here).
// Pointers are device memory.
// Thread-safe; launches are ordered on `stream`.
#pragma once

#include <cstdint>

#include "kernels/common/result.h"
#include "kernels/cuda/types.h"

namespace qcoder::cuda {

struct matmul_args {
  float* out = nullptr;      // [n, w.rows]; must not alias x
  const float* x = nullptr;  // [n, w.cols]
  device_matrix w;
  std::int64_t n = 0;
};

// One expert's weights of one projection: where its data and scales are (same shape and types for all).
struct expert_pointers {
  const void* data = nullptr;
  const void* scales = nullptr;
};

// out[a, :] = x[a / x_row_divisor, :] @ W(experts[a])ᵀ for assignments a in [0, count): with
// x_row_divisor = k the gate/up projections of token t's k experts read x row t; with 1 the down
// projection reads its own row. An assignment whose expert is negative is skipped (its row of out is left
// as it was): the device expert tier computes a layer's assignments in waves, as their experts arrive.
struct expert_gemv_args {
  float* out = nullptr;                   // [count, shape.rows]
  const float* x = nullptr;               // [count / x_row_divisor, shape.cols]
  const std::int32_t* experts = nullptr;  // [count]: the expert (index into table) of each assignment
  const expert_pointers* table = nullptr; // [number of experts]: device memory too
  device_matrix shape;                    // rows, cols, types and blocks; data and scales unused
  std::int64_t count = 0;
  std::int32_t x_row_divisor = 1;
};

}  // namespace qcoder::cuda

#define QCODER_CUDA_MATMUL_ENTRIES                                           \
  result<void> gemv(const cuda::matmul_args& args, CUstream_st* stream);   \
  result<void> gemm(const cuda::matmul_args& args, CUstream_st* stream);   \
  result<void> matmul(const cuda::matmul_args& args, CUstream_st* stream); \
  result<void> expert_gemv(const cuda::expert_gemv_args& args, CUstream_st* stream);

namespace qcoder::cuda {
QCODER_CUDA_MATMUL_ENTRIES
}  // namespace qcoder::cuda
namespace qcoder::cuda_emu {
QCODER_CUDA_MATMUL_ENTRIES
}  // namespace qcoder::cuda_emu
namespace qcoder::cuda_cost {
QCODER_CUDA_MATMUL_ENTRIES
}  // namespace qcoder::cuda_cost
#undef QCODER_CUDA_MATMUL_ENTRIES
