// Scalar reference kernels: the specification of every op the model uses.
//
// Straightforward loops in float (double accumulators where a sum is long), written to be read, not to be
// fast. Every optimised kernel (CPU vector, CUDA) is tested against these with an error bound. Shapes are
// given in comments as [rows, cols] of row-major buffers. No allocation; thread-safe (pure functions of
// their arguments).
#pragma once

#include <cstdint>

#include "kernels/common/tensor.h"

namespace qcoder::ref {

// out[n, w.rows] = x[n, w.cols] @ W^T, W dequantised element by element (weight_matrix::at).
void matmul(float* out, const float* x, const weight_matrix& w, std::int64_t n);

// Zero-centred RMSNorm of each of the n rows of x[n, d]: x * rsqrt(mean(x²) + eps) * (1 + w).
// With unit_offset = false the weight is used as is (x * rsqrt(...) * w). out may alias x.
void rms_norm(float* out, const float* x, const weight_vector& w, std::int64_t n, std::int64_t d, float eps,
              bool unit_offset);

// Gated RMSNorm of the DeltaNet output, per row of d: (x * rsqrt(mean(x²) + eps) * w) * silu(z).
void rms_norm_gated(float* out, const float* x, const float* z, const weight_vector& w, std::int64_t n,
                    std::int64_t d, float eps);

// L2 normalisation of each row of x[n, d]: x * rsqrt(Σx² + eps), then times `scale`. In place.
void l2_norm(float* x, std::int64_t n, std::int64_t d, float eps, float scale);

// Partial NeoX rotary embedding, in place, on x[n_heads, head_dim] of one token at `position`: the first
// rot_dim dims are rotated in pairs (i, i + rot_dim/2) by angle position * theta^(-2i/rot_dim).
void rope_neox(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rot_dim, std::int64_t position,
               double theta);

// Depthwise causal conv1d (kernel k, no bias) followed by SiLU, over n tokens of c channels.
// x[n, c] in, out[n, c]; w[c, k] (the last tap multiplies the current token); state[c, k-1] holds the
// previous k-1 inputs (oldest first) and is updated to the last k-1 inputs.
void causal_conv1d_silu(float* out, const float* x, const weight_vector& w, float* state, std::int64_t n,
                        std::int64_t c, std::int64_t k);

// One step of the gated delta rule for one head: S[dk, dv] ← S·exp(g); S ← S + k ⊗ β(v − Sᵀk); o = Sᵀq.
void gated_delta_step(float* out, float* state, const float* q, const float* k, const float* v, float g, float beta,
                      std::int64_t dk, std::int64_t dv);

// Causal attention of one query head over `n_keys` cached keys: out[d] = softmax(scale · K q) V.
// keys/values: n_keys rows of `stride` floats each, the head's d values at offset 0 of each row.
void attention_head(float* out, const float* q, const float* keys, const float* values, std::int64_t n_keys,
                    std::int64_t d, std::int64_t stride, float scale);

// In-place softmax over x[n] in float with max subtraction.
void softmax(float* x, std::int64_t n);

// SiLU-GLU: out[i] = silu(gate[i]) * up[i].
void silu_glu(float* out, const float* gate, const float* up, std::int64_t n);

inline float silu(float x) { return x / (1.0f + __builtin_expf(-x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }
// log(1 + e^x), with the large-x branch PyTorch uses (threshold 20).
inline float softplus(float x) { return x > 20.0f ? x : __builtin_log1pf(__builtin_expf(x)); }

}  // namespace qcoder::ref
