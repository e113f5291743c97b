// Portable matmul (any CPU) and the dispatch to the vector kernels.
#include "kernels/cpu/matmul.h"

#include <cstring>
#include <vector>

#include "kernels/common/cpu_features.h"

namespace qcoder::cpu {
namespace {

// Dequantises row r of W into `dst` (W.cols floats).
void dequantize_row(float* dst, const weight_matrix& w, std::int64_t r) {
  const std::size_t base = static_cast<std::size_t>(r * w.cols);
  switch (w.type) {
    case dtype::f32:
      std::memcpy(dst, static_cast<const float*>(w.data) + base, static_cast<std::size_t>(w.cols) * sizeof(float));
      break;
    case dtype::f16:
      for (std::int64_t c = 0; c < w.cols; ++c) dst[c] = f16_to_f32(load_unaligned<std::uint16_t>(w.data, base + c));
      break;
    case dtype::bf16:
      for (std::int64_t c = 0; c < w.cols; ++c) dst[c] = bf16_to_f32(load_unaligned<std::uint16_t>(w.data, base + c));
      break;
    case dtype::f8_e4m3: {
      const auto* src = static_cast<const std::uint8_t*>(w.data) + base;
      const std::array<float, 256>& table = f8_e4m3_table();
      for (std::int64_t c = 0; c < w.cols; ++c) dst[c] = table[src[c]];
      break;
    }
  }
  if (w.quantized()) {
    const std::int64_t scale_row = (r / w.block_rows) * w.scale_cols();
    for (std::int64_t b = 0; b < w.scale_cols(); ++b) {
      const float s = load_as_f32(w.scale_type, w.scales, static_cast<std::size_t>(scale_row + b));
      const std::int64_t end = std::min(w.cols, (b + 1) * w.block_cols);
      for (std::int64_t c = b * w.block_cols; c < end; ++c) dst[c] *= s;
    }
  }
}

}  // namespace

void matmul_rows_scalar(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                        std::int64_t row_end) {
  // Grown once per thread to the widest matrix seen; never inside a steady-state forward pass.
  thread_local std::vector<float> row;
  if (row.size() < static_cast<std::size_t>(w.cols)) row.resize(static_cast<std::size_t>(w.cols));
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    dequantize_row(row.data(), w, r);
    for (std::int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      float sum = 0.0f;
      for (std::int64_t c = 0; c < w.cols; ++c) sum += row[static_cast<std::size_t>(c)] * xt[c];
      out[t * w.rows + r] = sum;
    }
  }
}

void matmul_rows(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                 std::int64_t row_end) {
  static const bool use_avx2 = std::strcmp(kernel_family(), "scalar") != 0;
  if (use_avx2) {
    matmul_rows_avx2(out, x, w, n, row_begin, row_end);
  } else {
    matmul_rows_scalar(out, x, w, n, row_begin, row_end);
  }
}

}  // namespace qcoder::cpu
