// The sequence mixers on the GPU (and on the emulator): gated attention over the KV cache and the Gated
// DeltaNet's convolution and delta rule, twins of the CPU ops in kernels/cpu/ops.h and delta_rule.h.
//
// A chunk's rows may belong to several sequences (batched decode): `row_segments` (types.h) says which, and
// per-sequence memory comes as device arrays of pointers indexed by segment (the KV rows of this layer, the
// conv and delta-rule state of this layer). Plain C++17 with no CUDA headers; each entry point exists in
// qcoder::cuda and qcoder::cuda_emu (see matmul.h). Pointers are device memory. Thread-safe; launches are
// ordered on `stream`.
#pragma once

#include <cstdint>

#include "kernels/common/result.h"
#include "kernels/cuda/types.h"

namespace qcoder::cuda {

// The attention layer's preparation, per row t at position p (its segment's start + its offset):
//   each q head (the first half of each [q | gate] pair of q_gate) ← rope(rms_norm(q, q_norm)),
//   each k head ← rope(rms_norm(k, k_norm)), both zero-centred (scale 1 + w), partial NeoX RoPE over the
//   first rot_dim dims at position p with base rope_theta (cpu::rope_neox);
//   key_rows[segment][p] ← k row, value_rows[segment][p] ← v row (rows of kv_stride floats).
struct attention_prepare_args {
  float* q_gate = nullptr;               // [n, heads * 2 * head_dim], q parts rewritten in place
  float* k = nullptr;                    // [n, kv_heads * head_dim], rewritten in place
  const float* v = nullptr;              // [n, kv_heads * head_dim]
  device_vector q_norm;                  // [head_dim]
  device_vector k_norm;                  // [head_dim]
  float* const* key_rows = nullptr;      // [segments]: this layer's key cache of each segment
  float* const* value_rows = nullptr;    // [segments]
  row_segments rows;
  std::int64_t n = 0;
  std::int64_t heads = 0, kv_heads = 0, head_dim = 0, rot_dim = 0, kv_stride = 0;
  float eps = 1e-6f;
  double rope_theta = 10000.0;
};

// Causal attention with GQA: row t (position p) attends to keys 0..p of its segment (query head h reads KV
// head h / (heads / kv_heads)), softmax(q·k × scale); out = Σ softmax × v, times sigmoid(gate) when gated.
// Decode and prefill shapes are both correct for any n; the implementation picks its kernel by shape.
struct attention_args {
  float* out = nullptr;                    // [n, heads * head_dim]
  const float* q_gate = nullptr;           // [n, heads * 2 * head_dim]: per head [q | gate]
  const float* const* key_rows = nullptr;  // [segments]
  const float* const* value_rows = nullptr;
  row_segments rows;
  std::int64_t n = 0;
  std::int64_t heads = 0, kv_heads = 0, head_dim = 0, kv_stride = 0;
  float scale = 1.0f;
  bool gated = true;
};

// Depthwise causal conv1d (kernel `taps`, no bias) + SiLU along each segment's rows, continuing from and
// updating its state (the last taps-1 inputs of each channel, oldest first), as cpu::causal_conv1d_silu.
struct causal_conv1d_args {
  float* out = nullptr;              // [n, channels]
  const float* x = nullptr;          // [n, channels]
  device_vector weight;              // [channels, taps]
  float* const* state = nullptr;     // [segments]: [channels, taps - 1] each
  row_segments rows;
  std::int64_t n = 0;
  std::int64_t channels = 0, taps = 0;
};

// x[r, h*dim : (h+1)*dim] ← x / sqrt(Σx² + eps) × scale for each row r (of row_stride floats) and head h,
// as cpu::l2_norm on each row.
struct l2_norm_args {
  float* x = nullptr;
  std::int64_t rows = 0, row_stride = 0, heads = 0, dim = 0;
  float eps = 1e-6f;
  float scale = 1.0f;
};

// The gated delta rule, recurrent form: for each segment and value head h (reading key head h / (v_heads /
// k_heads)), for its rows in order: S ← S·exp(g); S ← S + k ⊗ β (v − Sᵀk); o = Sᵀq (cpu::gated_delta_step).
// The chunked form computes the same with chunks of `chunk` tokens solved as small matrix products
// (cpu::gated_delta_rule_chunked); `chunk` is ignored by the recurrent form.
struct delta_rule_args {
  float* out = nullptr;            // [n, v_heads * dv]
  const float* qkv = nullptr;      // [n, row_stride]: q at 0 ([k_heads, dk]), k at k_offset, v at v_offset
  std::int64_t row_stride = 0, k_offset = 0, v_offset = 0;
  const float* g = nullptr;        // [n, v_heads]: log decay
  const float* beta = nullptr;     // [n, v_heads]
  float* const* state = nullptr;   // [segments]: [v_heads, dk, dv] each
  row_segments rows;
  std::int64_t n = 0;
  std::int64_t k_heads = 0, v_heads = 0, dk = 0, dv = 0;
  std::int64_t chunk = 64;
};

}  // namespace qcoder::cuda

#define QCODER_CUDA_MIXER_ENTRIES                                                                \
  result<void> attention_prepare(const cuda::attention_prepare_args& args, CUstream_st* stream); \
  result<void> attention(const cuda::attention_args& args, CUstream_st* stream);                 \
  result<void> causal_conv1d_silu(const cuda::causal_conv1d_args& args, CUstream_st* stream);    \
  result<void> l2_norm(const cuda::l2_norm_args& args, CUstream_st* stream);                     \
  result<void> delta_rule_recurrent(const cuda::delta_rule_args& args, CUstream_st* stream);     \
  result<void> delta_rule_chunked(const cuda::delta_rule_args& args, CUstream_st* stream);

namespace qcoder::cuda {
QCODER_CUDA_MIXER_ENTRIES
}  // namespace qcoder::cuda
namespace qcoder::cuda_emu {
QCODER_CUDA_MIXER_ENTRIES
}  // namespace qcoder::cuda_emu
namespace qcoder::cuda_cost {
QCODER_CUDA_MIXER_ENTRIES
}  // namespace qcoder::cuda_cost
#undef QCODER_CUDA_MIXER_ENTRIES
