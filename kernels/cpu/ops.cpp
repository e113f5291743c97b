// CPU versions of the small ops (see ops.h).
#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/reference/ops.h"

namespace qcoder::cpu {
namespace {

float sum_of_squares(const float* x, std::int64_t d) {
  float s = 0.0f;
  for (std::int64_t i = 0; i < d; ++i) s += x[i] * x[i];
  return s;
}

float dot(const float* a, const float* b, std::int64_t d) {
  float s = 0.0f;
  for (std::int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void rms_norm(float* out, const float* x, const weight_vector& w, std::int64_t n, std::int64_t d, float eps,
              bool unit_offset) {
  const float offset = unit_offset ? 1.0f : 0.0f;
  for (std::int64_t t = 0; t < n; ++t) {
    const float* row = x + t * d;
    const float inv = 1.0f / std::sqrt(sum_of_squares(row, d) / static_cast<float>(d) + eps);
    float* o = out + t * d;
    for (std::int64_t i = 0; i < d; ++i) o[i] = row[i] * inv * (offset + w.at(i));
  }
}

void rms_norm_gated(float* out, const float* x, const float* z, const weight_vector& w, std::int64_t n,
                    std::int64_t d, float eps) {
  for (std::int64_t t = 0; t < n; ++t) {
    const float* row = x + t * d;
    const float inv = 1.0f / std::sqrt(sum_of_squares(row, d) / static_cast<float>(d) + eps);
    for (std::int64_t i = 0; i < d; ++i) out[t * d + i] = row[i] * inv * w.at(i) * ref::silu(z[t * d + i]);
  }
}

void l2_norm(float* x, std::int64_t n, std::int64_t d, float eps, float scale) {
  for (std::int64_t t = 0; t < n; ++t) {
    float* row = x + t * d;
    const float inv = scale / std::sqrt(sum_of_squares(row, d) + eps);
    for (std::int64_t i = 0; i < d; ++i) row[i] *= inv;
  }
}

void rope_neox(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rot_dim, std::int64_t position,
               double theta) {
  ref::rope_neox(x, n_heads, head_dim, rot_dim, position, theta);  // already allocation-free and cheap
}

void causal_conv1d_silu(float* out, const float* x, const weight_vector& w, float* state, std::int64_t n,
                        std::int64_t c, std::int64_t k) {
  const std::int64_t hist = k - 1;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    float* st = state + ch * hist;
    float taps[8];  // k ≤ 8 (Qwen3-Next uses 4); checked by the model loader
    for (std::int64_t j = 0; j < k; ++j) taps[j] = w.at(ch * k + j);
    for (std::int64_t t = 0; t < n; ++t) {
      const float cur = x[t * c + ch];
      float sum = taps[hist] * cur;
      for (std::int64_t j = 0; j < hist; ++j) sum += taps[j] * st[j];
      out[t * c + ch] = ref::silu(sum);
      for (std::int64_t j = 0; j + 1 < hist; ++j) st[j] = st[j + 1];
      if (hist > 0) st[hist - 1] = cur;
    }
  }
}

void gated_delta_step(float* out, float* state, const float* q, const float* k, const float* v, float g, float beta,
                      std::int64_t dk, std::int64_t dv, float* scratch) {
  const float decay = std::exp(g);
  // kv[j] = Σ_i decay·S[i,j]·k[i]; decay the state in the same pass.
  float* kv = scratch;
  std::fill(kv, kv + dv, 0.0f);
  for (std::int64_t i = 0; i < dk; ++i) {
    float* s = state + i * dv;
    const float ki = k[i];
    for (std::int64_t j = 0; j < dv; ++j) {
      s[j] *= decay;
      kv[j] += s[j] * ki;
    }
  }
  for (std::int64_t j = 0; j < dv; ++j) kv[j] = (v[j] - kv[j]) * beta;  // now delta
  std::fill(out, out + dv, 0.0f);
  for (std::int64_t i = 0; i < dk; ++i) {
    float* s = state + i * dv;
    const float ki = k[i];
    const float qi = q[i];
    for (std::int64_t j = 0; j < dv; ++j) {
      s[j] += ki * kv[j];
      out[j] += s[j] * qi;
    }
  }
}

void attention_head(float* out, const float* q, const float* keys, const float* values, std::int64_t n_keys,
                    std::int64_t d, std::int64_t stride, float scale, float* scores) {
  for (std::int64_t j = 0; j < n_keys; ++j) scores[j] = dot(q, keys + j * stride, d) * scale;
  softmax(scores, n_keys);
  std::fill(out, out + d, 0.0f);
  for (std::int64_t j = 0; j < n_keys; ++j) axpy(out, values + j * stride, scores[j], d);
}

void softmax(float* x, std::int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_glu(float* out, const float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = ref::silu(gate[i]) * up[i];
}

void axpy(float* out, const float* x, float a, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] += a * x[i];
}

}  // namespace qcoder::cpu
