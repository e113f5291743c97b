#include "engine/sampler.h"

#include <map>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

TEST(Sampler, GreedyTakesTheLowestIdAmongTies) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  sampler s(sampling_params{}, 4);
  EXPECT_EQ(s.sample(logits.data(), {}), 1);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  sampling_params p;
  p.greedy = false;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  auto draw = [&](std::uint64_t seed) {
    p.seed = seed;
    sampler s(p, 64);
    std::vector<std::int32_t> out;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> logits(64, 0.0f);  // uniform
      out.push_back(s.sample(logits.data(), {}));
    }
    return out;
  };
  EXPECT_EQ(draw(1), draw(1));
  EXPECT_NE(draw(1), draw(2));
}

TEST(Sampler, TopKTopPAndMinPRestrictTheCandidates) {
  // Probabilities at temperature 1: token 0 ≈ 0.64, 1 ≈ 0.24, 2 ≈ 0.09, 3 ≈ 0.03.
  const std::vector<float> base = {3.0f, 2.0f, 1.0f, 0.0f};
  auto support = [&](sampling_params p) {
    p.greedy = false;
    p.temperature = 1.0f;
    std::set<std::int32_t> seen;
    sampler s(p, 4);
    for (int i = 0; i < 2000; ++i) {
      std::vector<float> logits = base;
      seen.insert(s.sample(logits.data(), {}));
    }
    return seen;
  };
  sampling_params all;
  all.top_k = 0;
  all.top_p = 1.0f;
  EXPECT_EQ(support(all), (std::set<std::int32_t>{0, 1, 2, 3}));
  sampling_params k2 = all;
  k2.top_k = 2;
  EXPECT_EQ(support(k2), (std::set<std::int32_t>{0, 1}));
  sampling_params p80 = all;
  p80.top_p = 0.8f;  // 0.64 < 0.8 ≤ 0.88: tokens 0 and 1
  EXPECT_EQ(support(p80), (std::set<std::int32_t>{0, 1}));
  sampling_params minp = all;
  minp.min_p = 0.3f;  // keeps p ≥ 0.19: tokens 0 and 1
  EXPECT_EQ(support(minp), (std::set<std::int32_t>{0, 1}));
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  sampling_params p;
  p.repetition_penalty = 2.0f;
  sampler s(p, 3);
  std::vector<float> logits = {3.0f, 2.0f, -1.0f};
  const std::vector<std::int32_t> history = {0, 0, 2};
  EXPECT_EQ(s.sample(logits.data(), history), 1);  // 3/2 = 1.5 < 2
  EXPECT_FLOAT_EQ(logits[0], 1.5f);
  EXPECT_FLOAT_EQ(logits[2], -2.0f);  // negative logits are multiplied, once per distinct token
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountTheOutputOnly) {
  sampling_params p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  sampler s(p, 4);
  std::vector<float> logits = {3.0f, 2.5f, 1.0f, 0.0f};
  // Prompt {0, 0, 1}, output {0, 0, 0, 3}: token 0 three times in the output, token 1 only in the prompt.
  const std::vector<std::int32_t> history = {0, 0, 1, 0, 0, 0, 3};
  EXPECT_EQ(s.sample(logits.data(), history, 3), 1);  // 3 - 0.5 - 3·0.25 = 1.75 < 2.5
  EXPECT_FLOAT_EQ(logits[0], 1.75f);
  EXPECT_FLOAT_EQ(logits[1], 2.5f);
  EXPECT_FLOAT_EQ(logits[3], -0.75f);
  // The counts start from zero at every call.
  std::vector<float> again = {3.0f, 2.5f, 1.0f, 0.0f};
  s.sample(again.data(), history, 3);
  EXPECT_FLOAT_EQ(again[0], 1.75f);
}

TEST(Sampler, ValidateNamesTheBadParameter) {
  sampling_params p;
  p.greedy = false;
  p.temperature = 0.0f;
  ASSERT_FALSE(p.validate());
  EXPECT_NE(p.validate().err().message.find("temperature"), std::string::npos);
  p.temperature = 0.5f;
  p.top_p = 1.5f;
  EXPECT_NE(p.validate().err().message.find("top_p"), std::string::npos);
  p.top_p = 0.9f;
  p.min_p = -0.1f;
  EXPECT_NE(p.validate().err().message.find("min_p"), std::string::npos);
  p.min_p = 0.0f;
  p.frequency_penalty = 2.5f;
  EXPECT_NE(p.validate().err().message.find("frequency_penalty"), std::string::npos);
  p.frequency_penalty = 0.0f;
  EXPECT_TRUE(p.validate());
}

// sampler::sample draws u from U[0, 1) and scales it by the kept mass; the sampler drew
// uniform_real_distribution(0, kept) before draw_token existed. Both are a + u·(b − a) of one
// generate_canonical: the same double for the same generator state, so seeded outputs did not change.
TEST(Sampler, ScaledUniformIsTheDrawOfTheKeptRange) {
  std::mt19937_64 a(42), b(42), sizes(7);
  std::uniform_real_distribution<double> kept_dist(1.0, 1e5);
  for (int i = 0; i < 10000; ++i) {
    const double kept = kept_dist(sizes);
    const double old_target = std::uniform_real_distribution<double>(0.0, kept)(a);
    const double new_target = std::uniform_real_distribution<double>(0.0, 1.0)(b) * kept;
    ASSERT_EQ(old_target, new_target) << i;
  }
}

TEST(Sampler, SampleIsDrawTokenWithTheGeneratorsNumber) {
  sampling_params p;
  p.greedy = false;
  p.temperature = 0.9f;
  p.top_k = 7;
  p.top_p = 0.9f;
  p.min_p = 0.02f;
  p.seed = 11;
  sampler s(p, 32);
  std::mt19937_64 rng(p.seed);
  draw_scratch scratch;
  std::mt19937 logit_rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> logits(32);
    for (float& l : logits) l = normal(logit_rng);
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const std::int32_t expected = draw_token(logits.data(), 32, {p.temperature, p.top_k, p.top_p, p.min_p}, u, scratch);
    EXPECT_EQ(s.sample(logits.data(), {}), expected) << i;
  }
}

}  // namespace
}  // namespace qcoder::engine
