// Non-owning views of weights as the kernels see them. The bytes belong to the checkpoint's mmap (or an
// expert cache slot); a view is valid as long as its owner lives. Plain data, cheap to copy.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.h"

namespace qcoder {

// A row-major matrix W with `rows` outputs and `cols` inputs, as PyTorch stores nn.Linear weights
// ([out_features, in_features]). For F8_E4M3, `scales` holds one factor per block of
// block_rows × block_cols elements ([ceil(rows/block_rows), ceil(cols/block_cols)], row-major, of type
// scale_type); the real value is fp8 × scale. Edge blocks are partial.
struct weight_matrix {
  dtype type = dtype::f32;
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  dtype scale_type = dtype::f32;
  const void* scales = nullptr;
  std::int32_t block_rows = 128;
  std::int32_t block_cols = 128;

  bool quantized() const { return scales != nullptr; }
  std::int64_t scale_cols() const { return (cols + block_cols - 1) / block_cols; }
  // Bytes read by one pass over the matrix (weights + scales), for bandwidth figures.
  std::int64_t bytes() const {
    std::int64_t b = rows * cols * static_cast<std::int64_t>(dtype_size(type));
    if (quantized()) {
      b += ((rows + block_rows - 1) / block_rows) * scale_cols() * static_cast<std::int64_t>(dtype_size(scale_type));
    }
    return b;
  }
  // The dequantised value of element (r, c): the reference every kernel is tested against.
  float at(std::int64_t r, std::int64_t c) const {
    float v = load_as_f32(type, data, static_cast<std::size_t>(r * cols + c));
    if (quantized()) {
      v *= load_as_f32(scale_type, scales, static_cast<std::size_t>((r / block_rows) * scale_cols() + c / block_cols));
    }
    return v;
  }
};

// A vector of `size` elements (norm weights, biases, A_log, ...), any stored type.
struct weight_vector {
  dtype type = dtype::f32;
  const void* data = nullptr;
  std::int64_t size = 0;

  float at(std::int64_t i) const { return load_as_f32(type, data, static_cast<std::size_t>(i)); }
};

}  // namespace qcoder
