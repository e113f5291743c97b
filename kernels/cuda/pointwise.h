// The small ops of the forward pass on the GPU (and on the emulator): embedding, residual adds, the gated
// norm, SiLU-GLU, the DeltaNet's input split, MoE routing and combine, argmax and sampling; twins of the CPU
// code in kernels/cpu/ops.h, engine/model/qwen3_next.cpp and engine/sampler.cpp.
//
// Plain C++17 with no CUDA headers; each entry point exists in qcoder::cuda and qcoder::cuda_emu (see
// matmul.h). Pointers are device memory. Thread-safe; launches are ordered on `stream`.
#pragma once

#include <cstdint>

#include "kernels/common/result.h"
#include "kernels/cuda/types.h"

namespace qcoder::cuda {

// out[i, :] = table[tokens[i], :] dequantised (with its block scales when it has them).
struct embedding_args {
  float* out = nullptr;                  // [n, table.cols]
  const std::int32_t* tokens = nullptr;  // [n], each in [0, table.rows)
  device_matrix table;
  std::int64_t n = 0;
};

// y[i] += a × x[i]
struct axpy_args {
  float* y = nullptr;
  const float* x = nullptr;
  float a = 1.0f;
  std::int64_t count = 0;
};

// out = rms_norm(x) × w × silu(z) per row of dim (not zero-centred), as cpu::rms_norm_gated.
struct rms_norm_gated_args {
  float* out = nullptr;      // [rows, dim]
  const float* x = nullptr;  // [rows, dim]
  const float* z = nullptr;  // [rows, dim]
  device_vector weight;      // [dim]
  std::int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};

// out[i] = silu(gate[i]) × up[i]; out may alias gate.
struct silu_glu_args {
  float* out = nullptr;
  const float* gate = nullptr;
  const float* up = nullptr;
  std::int64_t count = 0;
};

// The DeltaNet's projections regrouped per token (qwen3_next::deltanet_block): in_proj_qkvz is grouped per
// key head as [q (dk) | k (dk) | v (r·dv) | z (r·dv)] with r = v_heads / k_heads, in_proj_ba per key head as
// [b (r) | a (r)]. Out: mixed = [q of all key heads | k of all | v of all value heads], z, and per value
// head β = sigmoid(b), g = −exp(a_log) × softplus(a + dt_bias).
struct deltanet_split_args {
  const float* qkvz = nullptr;  // [n, k_heads * (2 dk + 2 r dv)]
  const float* ba = nullptr;    // [n, 2 v_heads]
  float* mixed = nullptr;       // [n, 2 k_heads dk + v_heads dv]
  float* z = nullptr;           // [n, v_heads dv]
  float* beta = nullptr;        // [n, v_heads]
  float* g = nullptr;           // [n, v_heads]
  device_vector a_log;          // [v_heads]
  device_vector dt_bias;        // [v_heads]
  std::int64_t n = 0;
  std::int64_t k_heads = 0, v_heads = 0, dk = 0, dv = 0;
};

// Per row: softmax over `experts` logits in float, the k largest (ties to the lower id, in descending order
// of probability), renormalised to sum 1 when `renormalize`.
struct router_top_k_args {
  const float* logits = nullptr;  // [n, experts]
  std::int32_t* ids = nullptr;    // [n, k]
  float* weights = nullptr;       // [n, k]
  std::int64_t n = 0, experts = 0, k = 0;
  bool renormalize = true;
};

// out[t] = Σ_j weights[t, j] × down[t k + j] + sigmoid(shared_gate[t]) × shared[t], rows of `dim`.
struct moe_combine_args {
  float* out = nullptr;                // [n, dim]
  const float* down = nullptr;         // [n k, dim]: the routed experts' outputs, assignment order
  const float* weights = nullptr;      // [n, k]
  const float* shared = nullptr;       // [n, dim]: the shared expert's output
  const float* shared_gate = nullptr;  // [n]: its gate logit
  std::int64_t n = 0, k = 0, dim = 0;
};

// ids[r] = the index of the largest of x[r, 0..count) (the lowest on ties), per row.
struct argmax_args {
  const float* x = nullptr;     // [rows, count]
  std::int32_t* ids = nullptr;  // [rows]
  std::int64_t rows = 0, count = 0;
};

// One draw from softmax(logits / temperature) restricted by top_k (0: off), top_p (1: off) and min_p (0: off)
// as engine::sampler does after its penalties, with `uniform` in [0, 1) as the random number: the same
// logits and number give the same token as the CPU sampler (engine::draw_token). The number is a double, as
// the sampler draws it: rounded to float it would no longer pick the sampler's token near a boundary, and
// could round up to 1.
struct sample_args {
  const float* logits = nullptr;  // [vocab]
  std::int32_t* id = nullptr;     // [1]
  std::int64_t vocab = 0;
  float temperature = 1.0f;
  std::int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  double uniform = 0.0;
};

}  // namespace qcoder::cuda

#define QCODER_CUDA_POINTWISE_ENTRIES                                                          \
  result<void> embedding(const cuda::embedding_args& args, CUstream_st* stream);               \
  result<void> axpy(const cuda::axpy_args& args, CUstream_st* stream);                         \
  result<void> rms_norm_gated(const cuda::rms_norm_gated_args& args, CUstream_st* stream);     \
  result<void> silu_glu(const cuda::silu_glu_args& args, CUstream_st* stream);                 \
  result<void> deltanet_split(const cuda::deltanet_split_args& args, CUstream_st* stream);     \
  result<void> router_top_k(const cuda::router_top_k_args& args, CUstream_st* stream);         \
  result<void> moe_combine(const cuda::moe_combine_args& args, CUstream_st* stream);           \
  result<void> argmax(const cuda::argmax_args& args, CUstream_st* stream);                     \
  result<void> sample(const cuda::sample_args& args, CUstream_st* stream);

namespace qcoder::cuda {
QCODER_CUDA_POINTWISE_ENTRIES
}  // namespace qcoder::cuda
namespace qcoder::cuda_emu {
QCODER_CUDA_POINTWISE_ENTRIES
}  // namespace qcoder::cuda_emu
namespace qcoder::cuda_cost {
QCODER_CUDA_POINTWISE_ENTRIES
}  // namespace qcoder::cuda_cost
#undef QCODER_CUDA_POINTWISE_ENTRIES
