// What the matrix-product kernels (gemv.cu, gemm.cu) share: element conversions, the scale of a block,
// and the host-side check of a device_matrix. Device code for both builds (kernel.cuh); no state.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/common/result.h"
#include "kernels/cuda/kernel.cuh"
#include "kernels/cuda/matmul.h"

// Asks nvcc to unroll the next loop; the host compiler would warn about an unknown pragma.
// __launch_bounds__ likewise, which the toolkit's host headers leave undefined.
namespace QCODER_CUDA_NAMESPACE {
namespace {

// The scale of block `index` of a row-major scale grid of f32 or bf16 (checked on the host).
__device__ __forceinline__ float load_scale(const void* scales, cuda::element_type type, std::int64_t index) {
  if (type == cuda::element_type::bf16) return __bfloat162float(static_cast<const __nv_bfloat16*>(scales)[index]);
  return static_cast<const float*>(scales)[index];
}

__host__ __device__ constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// The shape and types of a matrix are launchable: what every entry point checks before it launches.
inline result<void> check_matrix_shape(const char* op, const cuda::device_matrix& w) {
  if (w.rows <= 0 || w.cols <= 0 || w.rows > std::numeric_limits<int>::max() ||
      w.cols > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "{}: a {}x{} weight matrix is not a launchable shape", op, w.rows, w.cols);
  }
  if (static_cast<int>(w.type) > static_cast<int>(cuda::element_type::f8_e4m3)) {
    return fail(errc::invalid_argument, "{}: unknown weight type {}", op, static_cast<int>(w.type));
  }
  if (w.type == cuda::element_type::f8_e4m3 && w.scales == nullptr) {
    // Every FP8 checkpoint we load is block-scaled; an unscaled one would be a loader bug, not a format.
    return fail(errc::invalid_argument, "{}: FP8 E4M3 weights without block scales are not supported", op);
  }
  if (w.scales != nullptr) {
    if (w.scale_type != cuda::element_type::f32 && w.scale_type != cuda::element_type::bf16) {
      return fail(errc::invalid_argument, "{}: block scales must be f32 or bf16 (type {})", op,
                  static_cast<int>(w.scale_type));
    }
    if (w.block_rows <= 0 || w.block_cols <= 0) {
      return fail(errc::invalid_argument, "{}: scale blocks of {}x{}", op, w.block_rows, w.block_cols);
    }
  }
  return ok();
}

}  // namespace
}  // namespace QCODER_CUDA_NAMESPACE
