// The gated delta rule over a sequence, chunked (the prefill form): the sequence is cut into chunks of C
// tokens; inside a chunk the recurrence is solved as small matrix products (a triangular solve with the
// WY representation), and the state is updated once per chunk. Same result as C recurrent steps (up to
// float rounding), with matrix-shaped work that vectorises and, on GPUs, maps to tensor cores.
//
// For one head, tokens t = 0..n-1 (rows of the strided inputs):
//   S ← S·exp(g_t);  S ← S + k_t ⊗ β_t (v_t − Sᵀk_t);  o_t = Sᵀq_t
// q must already be L2-normalised and scaled, k L2-normalised. Thread-safe: distinct heads (state, out,
// scratch) may run concurrently.
#pragma once

#include <cstdint>

namespace qcoder::cpu {

struct delta_rule_args {
  const float* q = nullptr;  // row t at q + t * q_stride, d_k values
  const float* k = nullptr;
  const float* v = nullptr;  // row t at v + t * v_stride, d_v values
  const float* g = nullptr;  // log decay of token t at g[t * gb_stride]
  const float* beta = nullptr;
  float* out = nullptr;      // row t at out + t * out_stride, d_v values
  float* state = nullptr;    // [d_k, d_v], updated in place
  std::int64_t n = 0;
  std::int64_t dk = 0, dv = 0;
  std::int64_t q_stride = 0, k_stride = 0, v_stride = 0, out_stride = 0, gb_stride = 1;
};

// Floats of scratch one call needs for chunk size C.
std::int64_t delta_rule_scratch_floats(std::int64_t chunk, std::int64_t dk, std::int64_t dv);

void gated_delta_rule_chunked(const delta_rule_args& a, std::int64_t chunk, float* scratch);

}  // namespace qcoder::cpu
