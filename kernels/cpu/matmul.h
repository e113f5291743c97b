// Matrix multiplication with weights in their stored format, for the CPU:
//   out[n, W.rows] = x[n, W.cols] @ Wᵀ   (W dequantised on the fly: F32, F16, BF16, FP8-E4M3 with block scales)
//
// matmul_rows computes rows [row_begin, row_end) of the output for all n tokens on the calling thread; the
// caller splits rows across threads. The widest kernel family the CPU supports is used (kernel_family()).
// Decode (n = 1) streams each weight once, dequantising in registers; prefill (n > 1) dequantises a block
// of rows into a per-thread buffer once and reuses it for every token.
// Thread-safe: distinct threads may compute distinct rows concurrently.
#pragma once

#include <cstdint>

#include "kernels/common/tensor.h"

namespace qcoder::cpu {

void matmul_rows(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                 std::int64_t row_end);

// The family-specific implementations (same contract), exposed for tests.
void matmul_rows_scalar(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                        std::int64_t row_end);
void matmul_rows_avx2(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                      std::int64_t row_end);

}  // namespace qcoder::cpu
