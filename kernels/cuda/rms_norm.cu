// Zero-centred RMSNorm, one block per row: each thread sums the squares of a strided slice of the row, the
// block adds them up (block_reduce.cuh), and each thread scales its slice. The math follows ref::rms_norm:
// out = x * (1 / sqrt(mean(x²) + eps)) * (offset + w), in float (per-thread partial sums instead of the
// reference's double accumulator: the tests bound the difference).
//
// Memory traffic per row: dim floats read twice (the second read usually from L1/L2), dim weights read, dim
// floats written. Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/rms_norm.cpp) into
// qcoder_kernels_cuda_emu.
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/rms_norm.h"

namespace QCODER_CUDA_NAMESPACE {

namespace {

// out[rows, dim] = x[rows, dim] * rsqrt(mean(x², per row) + eps) * (offset + w[dim]); grid.x = rows.
template <typename W>
__global__ void rms_norm_rows(float* out, const float* x, const W* w, std::int64_t dim, float eps, float offset) {
  QCODER_SHARED(float, warp_sums, 32);
  const std::int64_t row = blockIdx.x;
  const float* in = x + row * dim;
  float sum_sq = 0.0f;
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += in[i] * in[i];
  sum_sq = block_sum(sum_sq, warp_sums);
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(dim) + eps);
  float* o = out + row * dim;
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = in[i] * inv * (offset + to_float(w[i]));
}

// Enough threads that each handles a few elements, a multiple of the warp as block_sum needs.
unsigned threads_for(std::int64_t dim) {
  const std::int64_t rounded = (dim + 31) / 32 * 32;
  return static_cast<unsigned>(rounded < 256 ? rounded : 256);
}

template <typename W>
result<void> launch_rows(const cuda::rms_norm_args& a, CUstream_st* stream) {
  const float offset = a.unit_offset ? 1.0f : 0.0f;
  return cuda::launch(rms_norm_rows<W>, dim3(static_cast<unsigned>(a.rows)), dim3(threads_for(a.dim)), 0, stream,
                      a.out, a.x, static_cast<const W*>(a.weight), a.dim, a.eps, offset);
}

}  // namespace

result<void> rms_norm(const cuda::rms_norm_args& a, CUstream_st* stream) {
  if (a.rows < 0 || a.rows > std::numeric_limits<int>::max() || a.dim <= 0) {
    return fail(errc::invalid_argument, "rms_norm: {} rows of {} is not a launchable shape", a.rows, a.dim);
  }
  if (a.rows == 0) return ok();
  switch (a.weight_type) {
    case cuda::element_type::f32: return launch_rows<float>(a, stream);
    case cuda::element_type::f16: return launch_rows<__half>(a, stream);
    case cuda::element_type::bf16: return launch_rows<__nv_bfloat16>(a, stream);
    case cuda::element_type::f8_e4m3: return launch_rows<__nv_fp8_e4m3>(a, stream);
  }
  return fail(errc::invalid_argument, "rms_norm: unknown weight type {}", static_cast<int>(a.weight_type));
}

}  // namespace QCODER_CUDA_NAMESPACE
