// Scalar reference kernels (see ops.h for the contract of each).
#include "kernels/reference/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qcoder::ref {

void matmul(float* out, const float* x, const weight_matrix& w, std::int64_t n) {
  for (std::int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * w.cols;
    for (std::int64_t r = 0; r < w.rows; ++r) {
      double sum = 0.0;
      for (std::int64_t c = 0; c < w.cols; ++c) sum += static_cast<double>(w.at(r, c)) * xt[c];
      out[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

void rms_norm(float* out, const float* x, const weight_vector& w, std::int64_t n, std::int64_t d, float eps,
              bool unit_offset) {
  for (std::int64_t t = 0; t < n; ++t) {
    const float* row = x + t * d;
    double sum_sq = 0.0;
    for (std::int64_t i = 0; i < d; ++i) sum_sq += static_cast<double>(row[i]) * row[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq / static_cast<double>(d)) + eps);
    for (std::int64_t i = 0; i < d; ++i) {
      const float scale = unit_offset ? 1.0f + w.at(i) : w.at(i);
      out[t * d + i] = row[i] * inv * scale;
    }
  }
}

void rms_norm_gated(float* out, const float* x, const float* z, const weight_vector& w, std::int64_t n,
                    std::int64_t d, float eps) {
  for (std::int64_t t = 0; t < n; ++t) {
    const float* row = x + t * d;
    double sum_sq = 0.0;
    for (std::int64_t i = 0; i < d; ++i) sum_sq += static_cast<double>(row[i]) * row[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq / static_cast<double>(d)) + eps);
    for (std::int64_t i = 0; i < d; ++i) out[t * d + i] = row[i] * inv * w.at(i) * silu(z[t * d + i]);
  }
}

void l2_norm(float* x, std::int64_t n, std::int64_t d, float eps, float scale) {
  for (std::int64_t t = 0; t < n; ++t) {
    float* row = x + t * d;
    double sum_sq = 0.0;
    for (std::int64_t i = 0; i < d; ++i) sum_sq += static_cast<double>(row[i]) * row[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq) + eps) * scale;
    for (std::int64_t i = 0; i < d; ++i) row[i] *= inv;
  }
}

void rope_neox(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rot_dim, std::int64_t position,
               double theta) {
  const std::int64_t half = rot_dim / 2;
  for (std::int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rot_dim));
    const double angle = static_cast<double>(position) * inv_freq;
    const float c = static_cast<float>(std::cos(angle));
    const float s = static_cast<float>(std::sin(angle));
    for (std::int64_t h = 0; h < n_heads; ++h) {
      float* head = x + h * head_dim;
      const float a = head[i];
      const float b = head[i + half];
      head[i] = a * c - b * s;
      head[i + half] = b * c + a * s;
    }
  }
}

void causal_conv1d_silu(float* out, const float* x, const weight_vector& w, float* state, std::int64_t n,
                        std::int64_t c, std::int64_t k) {
  const std::int64_t hist = k - 1;
  std::vector<float> window(static_cast<std::size_t>(k));
  for (std::int64_t ch = 0; ch < c; ++ch) {
    float* st = state + ch * hist;
    for (std::int64_t t = 0; t < n; ++t) {
      // window = [state (oldest first)..., current]
      for (std::int64_t j = 0; j < hist; ++j) window[static_cast<std::size_t>(j)] = st[j];
      window[static_cast<std::size_t>(hist)] = x[t * c + ch];
      float sum = 0.0f;
      for (std::int64_t j = 0; j < k; ++j) sum += w.at(ch * k + j) * window[static_cast<std::size_t>(j)];
      out[t * c + ch] = silu(sum);
      for (std::int64_t j = 0; j < hist; ++j) st[j] = window[static_cast<std::size_t>(j + 1)];
    }
  }
}

void gated_delta_step(float* out, float* state, const float* q, const float* k, const float* v, float g, float beta,
                      std::int64_t dk, std::int64_t dv) {
  const float decay = std::exp(g);
  for (std::int64_t i = 0; i < dk * dv; ++i) state[i] *= decay;
  std::vector<float> delta(static_cast<std::size_t>(dv));
  for (std::int64_t j = 0; j < dv; ++j) {
    double kv = 0.0;
    for (std::int64_t i = 0; i < dk; ++i) kv += static_cast<double>(state[i * dv + j]) * k[i];
    delta[static_cast<std::size_t>(j)] = (v[j] - static_cast<float>(kv)) * beta;
  }
  for (std::int64_t i = 0; i < dk; ++i) {
    for (std::int64_t j = 0; j < dv; ++j) state[i * dv + j] += k[i] * delta[static_cast<std::size_t>(j)];
  }
  for (std::int64_t j = 0; j < dv; ++j) {
    double o = 0.0;
    for (std::int64_t i = 0; i < dk; ++i) o += static_cast<double>(state[i * dv + j]) * q[i];
    out[j] = static_cast<float>(o);
  }
}

void attention_head(float* out, const float* q, const float* keys, const float* values, std::int64_t n_keys,
                    std::int64_t d, std::int64_t stride, float scale) {
  std::vector<float> scores(static_cast<std::size_t>(n_keys));
  for (std::int64_t j = 0; j < n_keys; ++j) {
    double dot = 0.0;
    for (std::int64_t i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * keys[j * stride + i];
    scores[static_cast<std::size_t>(j)] = static_cast<float>(dot) * scale;
  }
  softmax(scores.data(), n_keys);
  for (std::int64_t i = 0; i < d; ++i) {
    double acc = 0.0;
    for (std::int64_t j = 0; j < n_keys; ++j) acc += static_cast<double>(scores[static_cast<std::size_t>(j)]) * values[j * stride + i];
    out[i] = static_cast<float>(acc);
  }
}

void softmax(float* x, std::int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (std::int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_glu(float* out, const float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

}  // namespace qcoder::ref
