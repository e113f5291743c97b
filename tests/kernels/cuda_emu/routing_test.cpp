// MoE routing (kernels/cuda/routing.cu's router_top_k) run on the emulator against qwen3_next::moe_block's
// routing, written out below as the model does it: cpu::softmax, then k passes of argmax (ties to the lower
// id), then the weights ÷ their float sum. Expert counts that are and are not multiples of the warp, up to
// the real model's 512 with top-10, and rows with tied logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/pointwise.h"

namespace qcoder {
namespace {

void cpu_route(std::vector<float> logits, std::int64_t n, std::int64_t experts, std::int64_t k, bool renormalize,
               std::vector<std::int32_t>& ids_out, std::vector<float>& weights_out) {
  for (std::int64_t t = 0; t < n; ++t) {
    float* probs = logits.data() + t * experts;
    cpu::softmax(probs, experts);
    std::int32_t* ids = ids_out.data() + t * k;
    float* weights = weights_out.data() + t * k;
    float total = 0.0f;
    for (std::int64_t j = 0; j < k; ++j) {
      std::int32_t best = -1;
      for (std::int64_t e = 0; e < experts; ++e) {
        if (std::find(ids, ids + j, static_cast<std::int32_t>(e)) != ids + j) continue;
        if (best < 0 || probs[e] > probs[best]) best = static_cast<std::int32_t>(e);
      }
      ids[j] = best;
      weights[j] = probs[best];
      total += probs[best];
    }
    if (renormalize) {
      for (std::int64_t j = 0; j < k; ++j) weights[j] /= total;
    }
  }
}

struct route_case {
  std::int64_t n, experts, k;
  bool renormalize;
  int distinct_levels;  // > 0: logits drawn from this many values, so rows are full of ties
};

class RouterTopKEmu : public testing::TestWithParam<route_case> {};

TEST_P(RouterTopKEmu, PicksTheModelsExpertsAndWeights) {
  const route_case c = GetParam();
  std::mt19937 rng(static_cast<unsigned>(c.experts * 17 + c.k));
  std::vector<float> logits(static_cast<std::size_t>(c.n * c.experts));
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::uniform_int_distribution<int> level(0, c.distinct_levels > 0 ? c.distinct_levels - 1 : 0);
  for (float& x : logits) x = c.distinct_levels > 0 ? 0.5f * static_cast<float>(level(rng)) : dist(rng);
  std::vector<std::int32_t> expected_ids(static_cast<std::size_t>(c.n * c.k));
  std::vector<float> expected_weights(expected_ids.size());
  cpu_route(logits, c.n, c.experts, c.k, c.renormalize, expected_ids, expected_weights);

  std::vector<std::int32_t> ids(expected_ids.size(), -7);
  std::vector<float> weights(expected_ids.size(), std::nanf(""));
  const auto r = cuda_emu::router_top_k({logits.data(), ids.data(), weights.data(), c.n, c.experts, c.k, c.renormalize},
                                        nullptr);
  ASSERT_TRUE(r) << r.err().message;
  // The softmax sum is a warp reduction here, left to right on the CPU: probabilities may differ in the last
  // bit, which can only reorder experts whose probabilities are within an ulp; the random logits here are
  // far apart, and tied logits give bitwise-equal probabilities on both sides. So ids are exact.
  EXPECT_EQ(ids, expected_ids);
  for (std::size_t i = 0; i < weights.size(); ++i) {
    EXPECT_NEAR(weights[i], expected_weights[i], 2e-6f * expected_weights[i] + 1e-9f) << "assignment " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RouterTopKEmu,
                         testing::Values(route_case{5, 16, 4, true, 0},      // the tiny model
                                         route_case{3, 512, 10, true, 0},    // the real model
                                         route_case{4, 37, 5, false, 0},     // not a multiple of 32
                                         route_case{6, 100, 16, true, 3},    // ties everywhere, k at its limit
                                         route_case{2, 12, 12, true, 2},     // every expert taken, with ties
                                         route_case{9, 7, 1, true, 1}));     // all equal: the lowest ids

TEST(RouterTopKEmu, RejectsWhatItCannotHold) {
  std::vector<float> logits(600, 0.0f);
  std::vector<std::int32_t> ids(20);
  std::vector<float> weights(20);
  for (const auto& [experts, k] : {std::pair<std::int64_t, std::int64_t>{513, 4}, {16, 17}, {4, 5}, {16, 0}}) {
    const auto r = cuda_emu::router_top_k({logits.data(), ids.data(), weights.data(), 1, experts, k, true}, nullptr);
    ASSERT_FALSE(r) << experts << " experts, top " << k;
    EXPECT_EQ(r.err().code, errc::invalid_argument);
  }
  EXPECT_TRUE(cuda_emu::router_top_k({nullptr, nullptr, nullptr, 0, 16, 4, true}, nullptr));
}

}  // namespace
}  // namespace qcoder
