// CPU kernels for the element-wise and per-head ops of the forward pass. Same contracts as the scalar
// reference (kernels/reference/ops.h) but allocation-free (scratch comes from the caller), float
// accumulation, and loops shaped for the compiler's vectoriser. Each is tested against its reference.
// Thread-safe: pure functions of their arguments.
#pragma once

#include <cstdint>

#include "kernels/common/tensor.h"

namespace qcoder::cpu {

void rms_norm(float* out, const float* x, const weight_vector& w, std::int64_t n, std::int64_t d, float eps,
              bool unit_offset);
void rms_norm_gated(float* out, const float* x, const float* z, const weight_vector& w, std::int64_t n,
                    std::int64_t d, float eps);
void l2_norm(float* x, std::int64_t n, std::int64_t d, float eps, float scale);
void rope_neox(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rot_dim, std::int64_t position,
               double theta);
void causal_conv1d_silu(float* out, const float* x, const weight_vector& w, float* state, std::int64_t n,
                        std::int64_t c, std::int64_t k);
// One token of the gated delta rule for one head; `scratch` holds dv floats.
void gated_delta_step(float* out, float* state, const float* q, const float* k, const float* v, float g, float beta,
                      std::int64_t dk, std::int64_t dv, float* scratch);
// Causal attention of one query head over n_keys cached keys; `scores` holds n_keys floats.
void attention_head(float* out, const float* q, const float* keys, const float* values, std::int64_t n_keys,
                    std::int64_t d, std::int64_t stride, float scale, float* scores);
void softmax(float* x, std::int64_t n);
void silu_glu(float* out, const float* gate, const float* up, std::int64_t n);
// out[i] += a * x[i]
void axpy(float* out, const float* x, float a, std::int64_t n);

}  // namespace qcoder::cpu
