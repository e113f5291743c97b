// Zero-centred RMSNorm on the GPU (and on the emulator): the CUDA twin of ref::rms_norm.
//
// Plain C++17 with no CUDA headers, so that host code of either build may include it. The same entry point
// exists twice: qcoder::cuda::rms_norm (compiled by nvcc, in qcoder_kernels_cuda) and
// qcoder::cuda_emu::rms_norm (the same source compiled by the host compiler against the emulator, in
// qcoder_kernels_cuda_emu). Thread-safe; launches are ordered on `stream`.
#pragma once

#include <cstdint>

#include "kernels/common/result.h"
#include "kernels/cuda/types.h"

namespace qcoder::cuda {

struct rms_norm_args {
  float* out = nullptr;           // [rows, dim], device memory; may alias x
  const float* x = nullptr;       // [rows, dim], device memory
  const void* weight = nullptr;   // [dim] of weight_type, device memory
  element_type weight_type = element_type::f32;
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  float eps = 1e-6f;
  bool unit_offset = true;  // true: x * rsqrt(mean(x²) + eps) * (1 + w); false: ... * w
};

result<void> rms_norm(const rms_norm_args& args, CUstream_st* stream);

}  // namespace qcoder::cuda

namespace qcoder::cuda_emu {
result<void> rms_norm(const cuda::rms_norm_args& args, CUstream_st* stream);
}  // namespace qcoder::cuda_emu
namespace qcoder::cuda_cost {
result<void> rms_norm(const cuda::rms_norm_args& args, CUstream_st* stream);
}  // namespace qcoder::cuda_cost
