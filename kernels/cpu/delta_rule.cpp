// Chunked gated delta rule (see delta_rule.h). Per chunk of L tokens, with G_i the cumulative log decay:
//   A[i][j] = −β_i (k_i·k_j) e^{G_i − G_j}  (j < i);  T = (I − A)⁻¹ by forward substitution
//   U = T (β ⊙ V);  W = T (β e^{G} ⊙ K);  V' = U − W S
//   o_i = e^{G_i} q_i S + Σ_{j ≤ i} (q_i·k_j) e^{G_i − G_j} V'_j
//   S ← e^{G_L} S + Σ_j e^{G_L − G_j} k_j ⊗ V'_j
#include "kernels/cpu/delta_rule.h"

#include <algorithm>
#include <cmath>

namespace qcoder::cpu {
namespace {

float dot(const float* a, const float* b, std::int64_t n) {
  float s = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy(float* out, const float* x, float a, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] += a * x[i];
}

}  // namespace

std::int64_t delta_rule_scratch_floats(std::int64_t chunk, std::int64_t dk, std::int64_t dv) {
  return chunk * chunk + chunk + 2 * chunk * dk + 2 * chunk * dv;
}

void gated_delta_rule_chunked(const delta_rule_args& a, std::int64_t chunk, float* scratch) {
  const std::int64_t dk = a.dk, dv = a.dv;
  float* t_mat = scratch;              // [C, C] lower triangle: A, then T
  float* cum = t_mat + chunk * chunk;  // [C] cumulative log decay G
  float* kb = cum + chunk;             // [C, dk] β_j k_j, then β_j e^{G_j} k_j
  float* w = kb + chunk * dk;          // [C, dk] W
  float* u = w + chunk * dk;           // [C, dv] U, then V'
  float* vb = u + chunk * dv;          // [C, dv] β_j v_j
  float* s = a.state;

  for (std::int64_t c0 = 0; c0 < a.n; c0 += chunk) {
    const std::int64_t len = std::min(chunk, a.n - c0);
    auto q_row = [&](std::int64_t i) { return a.q + (c0 + i) * a.q_stride; };
    auto k_row = [&](std::int64_t i) { return a.k + (c0 + i) * a.k_stride; };
    float running = 0.0f;
    for (std::int64_t i = 0; i < len; ++i) {
      running += a.g[(c0 + i) * a.gb_stride];
      cum[i] = running;
      const float b = a.beta[(c0 + i) * a.gb_stride];
      const float* ki = k_row(i);
      const float* vi = a.v + (c0 + i) * a.v_stride;
      for (std::int64_t d = 0; d < dk; ++d) kb[i * dk + d] = b * ki[d];
      for (std::int64_t d = 0; d < dv; ++d) vb[i * dv + d] = b * vi[d];
    }
    // A (strictly lower), then forward substitution row by row (the strictly lower part of T):
    //   T[i][j] = A[i][j] + Σ_{j < m < i} A[i][m] T[m][j]
    // Updating row i in place for increasing j is safe: it reads A[i][m] only for m > j, not yet updated.
    for (std::int64_t i = 0; i < len; ++i) {
      float* row = t_mat + i * chunk;
      for (std::int64_t j = 0; j < i; ++j) row[j] = -dot(kb + i * dk, k_row(j), dk) * std::exp(cum[i] - cum[j]);
      for (std::int64_t j = 0; j < i; ++j) {
        float acc = row[j];
        for (std::int64_t m = j + 1; m < i; ++m) acc += row[m] * t_mat[m * chunk + j];
        row[j] = acc;
      }
    }
    // U = T vb, W = T (β e^{G} k) with T's unit diagonal.
    for (std::int64_t i = 0; i < len; ++i) {
      for (std::int64_t d = 0; d < dk; ++d) kb[i * dk + d] *= std::exp(cum[i]);
    }
    for (std::int64_t i = 0; i < len; ++i) {
      float* ui = u + i * dv;
      float* wi = w + i * dk;
      std::copy(vb + i * dv, vb + (i + 1) * dv, ui);
      std::copy(kb + i * dk, kb + (i + 1) * dk, wi);
      for (std::int64_t j = 0; j < i; ++j) {
        const float tij = t_mat[i * chunk + j];
        axpy(ui, vb + j * dv, tij, dv);
        axpy(wi, kb + j * dk, tij, dk);
      }
    }
    // V' = U − W S
    for (std::int64_t i = 0; i < len; ++i) {
      float* ui = u + i * dv;
      const float* wi = w + i * dk;
      for (std::int64_t d = 0; d < dk; ++d) axpy(ui, s + d * dv, -wi[d], dv);
    }
    // Outputs.
    for (std::int64_t i = 0; i < len; ++i) {
      float* o = a.out + (c0 + i) * a.out_stride;
      const float* qi = q_row(i);
      std::fill(o, o + dv, 0.0f);
      const float decay = std::exp(cum[i]);
      for (std::int64_t d = 0; d < dk; ++d) axpy(o, s + d * dv, decay * qi[d], dv);
      for (std::int64_t j = 0; j <= i; ++j) axpy(o, u + j * dv, dot(qi, k_row(j), dk) * std::exp(cum[i] - cum[j]), dv);
    }
    // State.
    const float last = cum[len - 1];
    const float total_decay = std::exp(last);
    for (std::int64_t i = 0; i < dk * dv; ++i) s[i] *= total_decay;
    for (std::int64_t j = 0; j < len; ++j) {
      const float f = std::exp(last - cum[j]);
      const float* kj = k_row(j);
      const float* vj = u + j * dv;
      for (std::int64_t d = 0; d < dk; ++d) axpy(s + d * dv, vj, f * kj[d], dv);
    }
  }
}

}  // namespace qcoder::cpu
