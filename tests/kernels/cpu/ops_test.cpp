// The CPU versions of the small ops against the scalar reference, on awkward sizes.
#include "kernels/cpu/ops.h"

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/delta_rule.h"

#include "kernels/reference/ops.h"

namespace qcoder::cpu {
namespace {

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void expect_near_all(const std::vector<float>& want, const std::vector<float>& got, float tol, const char* what) {
  ASSERT_EQ(want.size(), got.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(want[i], got[i], tol * (1.0f + std::fabs(want[i]))) << what << " at " << i;
  }
}

TEST(CpuOps, RmsNormBothWeightConventions) {
  std::mt19937 rng(1);
  for (std::int64_t d : {1, 7, 64, 129}) {
    const std::int64_t n = 3;
    auto x = random_vector(static_cast<std::size_t>(n * d), rng);
    auto w = random_vector(static_cast<std::size_t>(d), rng, 0.1f);
    const weight_vector wv{dtype::f32, w.data(), d};
    for (bool unit : {true, false}) {
      std::vector<float> want(x.size()), got(x.size());
      ref::rms_norm(want.data(), x.data(), wv, n, d, 1e-6f, unit);
      rms_norm(got.data(), x.data(), wv, n, d, 1e-6f, unit);
      expect_near_all(want, got, 1e-5f, "rms_norm");
    }
    // 1 + w really is applied: with w = 0 the zero-centred norm keeps unit scale, the plain one zeroes.
    std::vector<float> zeros(static_cast<std::size_t>(d), 0.0f), out(x.size());
    rms_norm(out.data(), x.data(), weight_vector{dtype::f32, zeros.data(), d}, n, d, 1e-6f, false);
    EXPECT_EQ(out[0], 0.0f);
  }
}

TEST(CpuOps, RmsNormGated) {
  std::mt19937 rng(2);
  const std::int64_t n = 5, d = 33;
  auto x = random_vector(n * d, rng), z = random_vector(n * d, rng), w = random_vector(d, rng);
  std::vector<float> want(x.size()), got(x.size());
  ref::rms_norm_gated(want.data(), x.data(), z.data(), weight_vector{dtype::f32, w.data(), d}, n, d, 1e-6f);
  rms_norm_gated(got.data(), x.data(), z.data(), weight_vector{dtype::f32, w.data(), d}, n, d, 1e-6f);
  expect_near_all(want, got, 1e-5f, "rms_norm_gated");
}

TEST(CpuOps, L2NormAndSoftmaxAndGlu) {
  std::mt19937 rng(3);
  auto x = random_vector(3 * 37, rng);
  auto want = x, got = x;
  ref::l2_norm(want.data(), 3, 37, 1e-6f, 0.25f);
  l2_norm(got.data(), 3, 37, 1e-6f, 0.25f);
  expect_near_all(want, got, 1e-5f, "l2_norm");

  auto s = random_vector(1001, rng, 5.0f);
  auto ws = s, gs = s;
  ref::softmax(ws.data(), 1001);
  softmax(gs.data(), 1001);
  expect_near_all(ws, gs, 1e-5f, "softmax");

  auto gate = random_vector(19, rng), up = random_vector(19, rng);
  std::vector<float> wg(19), gg(19);
  ref::silu_glu(wg.data(), gate.data(), up.data(), 19);
  silu_glu(gg.data(), gate.data(), up.data(), 19);
  expect_near_all(wg, gg, 1e-6f, "silu_glu");
}

TEST(CpuOps, CausalConvCarriesStateAcrossCalls) {
  std::mt19937 rng(4);
  const std::int64_t c = 13, k = 4, n = 9;
  auto x = random_vector(n * c, rng), w = random_vector(c * k, rng);
  const weight_vector wv{dtype::f32, w.data(), c * k};
  std::vector<float> state_ref(c * (k - 1), 0.0f), want(x.size());
  ref::causal_conv1d_silu(want.data(), x.data(), wv, state_ref.data(), n, c, k);
  // The CPU kernel runs the same sequence as 4 tokens + 1 token + 4 tokens.
  std::vector<float> state(c * (k - 1), 0.0f), got(x.size());
  causal_conv1d_silu(got.data(), x.data(), wv, state.data(), 4, c, k);
  causal_conv1d_silu(got.data() + 4 * c, x.data() + 4 * c, wv, state.data(), 1, c, k);
  causal_conv1d_silu(got.data() + 5 * c, x.data() + 5 * c, wv, state.data(), 4, c, k);
  expect_near_all(want, got, 1e-5f, "conv output");
  expect_near_all(state_ref, state, 0.0f, "conv state");
  // The state is the last k-1 inputs, oldest first.
  EXPECT_EQ(state[0 * (k - 1) + 2], x[(n - 1) * c + 0]);
  EXPECT_EQ(state[0 * (k - 1) + 0], x[(n - 3) * c + 0]);
}

TEST(CpuOps, GatedDeltaStep) {
  std::mt19937 rng(5);
  for (auto [dk, dv] : {std::pair<std::int64_t, std::int64_t>{32, 32}, {5, 11}, {128, 128}}) {
    auto state = random_vector(dk * dv, rng, 0.1f);
    auto want_state = state;
    std::vector<float> scratch(dv), want(dv), got(dv);
    for (int step = 0; step < 3; ++step) {
      auto q = random_vector(dk, rng), k = random_vector(dk, rng), v = random_vector(dv, rng);
      ref::l2_norm(k.data(), 1, dk, 1e-6f, 1.0f);
      const float g = -0.3f * static_cast<float>(step + 1), beta = 0.6f;
      ref::gated_delta_step(want.data(), want_state.data(), q.data(), k.data(), v.data(), g, beta, dk, dv);
      gated_delta_step(got.data(), state.data(), q.data(), k.data(), v.data(), g, beta, dk, dv, scratch.data());
      expect_near_all(want, got, 1e-4f, "delta output");
      expect_near_all(want_state, state, 1e-4f, "delta state");
    }
  }
}

TEST(CpuOps, AttentionHeadOverStridedCache) {
  std::mt19937 rng(6);
  const std::int64_t d = 24, stride = 3 * 24, n_keys = 17;
  auto q = random_vector(d, rng), keys = random_vector(n_keys * stride, rng), values = random_vector(n_keys * stride, rng);
  std::vector<float> want(d), got(d), scores(n_keys);
  ref::attention_head(want.data(), q.data(), keys.data() + d, values.data() + d, n_keys, d, stride, 0.2f);
  attention_head(got.data(), q.data(), keys.data() + d, values.data() + d, n_keys, d, stride, 0.2f, scores.data());
  expect_near_all(want, got, 1e-5f, "attention");
}

TEST(CpuOps, RopeRotatesOnlyTheFirstDims) {
  std::vector<float> x(2 * 8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i + 1);
  auto before = x;
  rope_neox(x.data(), 2, 8, 4, 3, 10000.0);
  // dims 4..7 of each head untouched
  for (int h = 0; h < 2; ++h) {
    for (int i = 4; i < 8; ++i) EXPECT_EQ(x[h * 8 + i], before[h * 8 + i]);
  }
  // pair (0, 2) rotated by angle 3 * theta^0 = 3 rad
  EXPECT_NEAR(x[0], 1.0f * std::cos(3.0f) - 3.0f * std::sin(3.0f), 1e-5f);
  EXPECT_NEAR(x[2], 3.0f * std::cos(3.0f) + 1.0f * std::sin(3.0f), 1e-5f);
  // position 0 is the identity
  auto y = before;
  rope_neox(y.data(), 2, 8, 4, 0, 10000.0);
  EXPECT_EQ(y, before);
}

}  // namespace
}  // namespace qcoder::cpu

namespace qcoder::cpu {
namespace {

// The chunked delta rule against the recurrence, over lengths that are not multiples of the chunk,
// starting from a non-zero state, with strided inputs as the model lays them out.
TEST(DeltaRule, ChunkedMatchesRecurrence) {
  std::mt19937 rng(9);
  for (auto [n, chunk, dk, dv] : {std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>{1, 64, 32, 32},
                                  {7, 4, 5, 11},
                                  {70, 64, 32, 32},
                                  {130, 16, 24, 40}}) {
    const std::int64_t stride = 2 * dk + dv + 3;  // q | k | v | padding, per token
    auto rows = random_vector(static_cast<std::size_t>(n * stride), rng);
    std::vector<float> g(static_cast<std::size_t>(n)), beta(static_cast<std::size_t>(n));
    std::uniform_real_distribution<float> gd(-1.5f, -0.01f), bd(0.05f, 0.95f);
    for (std::int64_t t = 0; t < n; ++t) {
      g[static_cast<std::size_t>(t)] = gd(rng);
      beta[static_cast<std::size_t>(t)] = bd(rng);
      ref::l2_norm(rows.data() + t * stride, 1, dk, 1e-6f, 1.0f / std::sqrt(static_cast<float>(dk)));
      ref::l2_norm(rows.data() + t * stride + dk, 1, dk, 1e-6f, 1.0f);
    }
    auto initial = random_vector(static_cast<std::size_t>(dk * dv), rng, 0.2f);
    auto want_state = initial;
    std::vector<float> want(static_cast<std::size_t>(n * dv));
    for (std::int64_t t = 0; t < n; ++t) {
      const float* r = rows.data() + t * stride;
      ref::gated_delta_step(want.data() + t * dv, want_state.data(), r, r + dk, r + 2 * dk, g[static_cast<std::size_t>(t)],
                            beta[static_cast<std::size_t>(t)], dk, dv);
    }
    auto state = initial;
    std::vector<float> got(static_cast<std::size_t>(n * dv), -1.0f);
    std::vector<float> scratch(static_cast<std::size_t>(delta_rule_scratch_floats(chunk, dk, dv)));
    delta_rule_args a;
    a.q = rows.data();
    a.k = rows.data() + dk;
    a.v = rows.data() + 2 * dk;
    a.g = g.data();
    a.beta = beta.data();
    a.out = got.data();
    a.state = state.data();
    a.n = n;
    a.dk = dk;
    a.dv = dv;
    a.q_stride = a.k_stride = a.v_stride = stride;
    a.out_stride = dv;
    gated_delta_rule_chunked(a, chunk, scratch.data());
    expect_near_all(want, got, 2e-4f, "chunked delta output");
    expect_near_all(want_state, state, 2e-4f, "chunked delta state");
  }
}

}  // namespace
}  // namespace qcoder::cpu
