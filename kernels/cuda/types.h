// Types shared by the CUDA kernels' host interfaces (ops.h, rms_norm.h) and the code that calls them.
// Plain C++17 with no CUDA headers, so that host code of either build (nvcc or the emulator) may include it.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here so no CUDA header is needed

namespace qcoder::cuda {

// An element type of weights, in the order of qcoder::dtype (whose header needs C++20, which nvcc is not
// given); the tests assert that the two agree.
enum class element_type : std::uint8_t { f32, f16, bf16, f8_e4m3 };

// A weight matrix in device memory, row-major [rows, cols] as nn.Linear stores it (out_features ×
// in_features). With `scales`, the value of element (r, c) is data[r, c] × scales[r / block_rows,
// c / block_cols] (FP8 block scaling; edge blocks are partial; [ceil(rows/block_rows), ceil(cols/block_cols)]
// row-major of scale_type). The twin of qcoder::weight_matrix.
struct device_matrix {
  const void* data = nullptr;
  element_type type = element_type::f32;
  const void* scales = nullptr;
  element_type scale_type = element_type::f32;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int32_t block_rows = 128;
  std::int32_t block_cols = 128;
};

// A weight vector in device memory (norm weights, A_log, dt_bias, conv taps).
struct device_vector {
  const void* data = nullptr;
  element_type type = element_type::f32;
};

// Where each row of a chunk sits in its sequence. A chunk's rows belong to `segments` sequences, each a run
// of consecutive rows: segment s owns rows [first_row[s], first_row[s + 1]) and its first row is at
// position start[s] of its sequence (the tokens it already holds). All arrays are device memory.
struct row_segments {
  const std::int32_t* row_segment = nullptr;  // [rows]: the segment of each row
  const std::int64_t* first_row = nullptr;    // [segments + 1]
  const std::int64_t* start = nullptr;        // [segments]
  std::int64_t segments = 0;
};

}  // namespace qcoder::cuda
