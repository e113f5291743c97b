#include "engine/experts/cache_replay.h"

#include <vector>

#include <gtest/gtest.h>

#include "engine/experts/cache_policy.h"

namespace qcoder::engine {
namespace {

using ids = std::vector<std::int32_t>;

// 2 layers of 8 experts, top-2; layer 1 carries predictions.
routing_trace tiny_trace() {
  routing_trace trace(2, 8, 2);
  const struct {
    ids layer0, layer1, predicted1;
  } tokens[] = {
      {{0, 1}, {2, 3}, {2, 4}},
      {{0, 1}, {2, 3}, {2, 3}},
      {{0, 1}, {5, 3}, {5, 6}},
  };
  std::uint64_t id = 0;
  for (const auto& t : tokens) {
    EXPECT_TRUE(trace.begin_token(id++));
    EXPECT_TRUE(trace.add_layer(t.layer0));
    EXPECT_TRUE(trace.add_layer(t.layer1, t.predicted1));
  }
  return trace;
}

replay_result replay(const routing_trace& trace, replay_options options) {
  result<replay_result> r = replay_trace(trace, options);
  EXPECT_TRUE(r) << (r ? "" : r.err().message);
  return r ? std::move(r).value() : replay_result{};
}

TEST(CacheReplay, CountsHitsAndMissesOfATinyTrace) {
  const routing_trace trace = tiny_trace();
  replay_options o;
  o.slots = 2;
  const replay_result r = replay(trace, o);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_EQ(r.tokens, 3u);
  // Layer 0: 0 and 1 miss once, then hit.
  EXPECT_EQ(r.layers[0].accesses, 6u);
  EXPECT_EQ(r.layers[0].hits, 4u);
  EXPECT_EQ(r.layers[0].misses, 2u);
  // Layer 1: 2, 3 miss; 2, 3 hit; 5 misses (evicting 2, the only unpinned), 3 hits.
  EXPECT_EQ(r.layers[1].hits, 3u);
  EXPECT_EQ(r.layers[1].misses, 3u);
  EXPECT_EQ(r.layers[1].prefetches, 0u);
  EXPECT_EQ(r.layers[1].predicted, 0u);  // no predictions without prefetch
  EXPECT_EQ(r.total.accesses, 12u);
  EXPECT_EQ(r.total.hits, 7u);
  EXPECT_EQ(r.total.misses, 5u);
  EXPECT_DOUBLE_EQ(r.total.hit_rate(), 7.0 / 12.0);
}

TEST(CacheReplay, CountsPrefetchHitsAndUselessPrefetches) {
  const routing_trace trace = tiny_trace();
  replay_options o;
  o.slots = 2;
  o.prefetch = true;
  const replay_result r = replay(trace, o);
  const replay_counts& l1 = r.layers[1];
  // Token 0: prefetch 2 (used) and 4 (useless); 3 misses, evicting 4.
  // Token 1: the prediction {2, 3} is resident; both hit.
  // Token 2: prefetch 5 (evicts 2, the least recent) and 6 (evicts 3); 5 is a prefetch hit, 3 misses
  //          (evicting 6, the useless prefetch).
  EXPECT_EQ(l1.accesses, 6u);
  EXPECT_EQ(l1.hits, 2u);
  EXPECT_EQ(l1.prefetch_hits, 2u);
  EXPECT_EQ(l1.misses, 2u);
  EXPECT_EQ(l1.prefetches, 4u);
  EXPECT_EQ(l1.useless_prefetches, 2u);
  EXPECT_EQ(l1.predicted, 6u);
  EXPECT_EQ(l1.predicted_correct, 4u);
  EXPECT_DOUBLE_EQ(l1.prefetch_accuracy(), 0.5);
  EXPECT_EQ(l1.loads(), 6u);
  EXPECT_DOUBLE_EQ(r.total.hit_rate(), 8.0 / 12.0);
  EXPECT_DOUBLE_EQ(r.total.cache_hit_rate(), 6.0 / 12.0);
}

TEST(CacheReplay, WarmupTokensAreNotCounted) {
  const routing_trace trace = tiny_trace();
  replay_options o;
  o.slots = 2;
  o.warmup_tokens = 1;
  const replay_result r = replay(trace, o);
  EXPECT_EQ(r.tokens, 2u);
  EXPECT_EQ(r.total.accesses, 8u);
  EXPECT_EQ(r.total.hits, 7u);  // only the 5 of the last token misses
  EXPECT_EQ(r.total.misses, 1u);
}

TEST(CacheReplay, RejectsPoolsSmallerThanALayersExperts) {
  const routing_trace trace = tiny_trace();
  replay_options o;
  o.slots = 1;
  EXPECT_FALSE(replay_trace(trace, o));
  o.slots = 2;
  o.layer_slots = {2};  // one count for two layers
  EXPECT_FALSE(replay_trace(trace, o));
  o.layer_slots = {2, 3};
  EXPECT_TRUE(replay_trace(trace, o));
  o.layer_slots = {};
  o.policy = "nope";
  EXPECT_FALSE(replay_trace(trace, o));
}

// The synthetic trace's defaults reproduce the published LRU hit rates of a 512-expert top-10 model
// (67% at 64 slots per layer, 81% at 128), and the best policy with prefetch beats LRU by >= 5 points.
class CacheReplayCalibration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    synthetic_trace_options o;  // the calibrated defaults, fewer tokens
    o.tokens = 1536;
    result<routing_trace> t = make_synthetic_trace(o);
    ASSERT_TRUE(t);
    trace_ = new routing_trace(std::move(t).value());
  }
  static void TearDownTestSuite() {
    delete trace_;
    trace_ = nullptr;
  }
  static double hit_rate(std::string_view policy, std::int32_t slots, bool prefetch) {
    replay_options o;
    o.policy = std::string(policy);
    o.slots = slots;
    o.prefetch = prefetch;
    o.warmup_tokens = 256;  // the cold start is not what the published figures measure
    return replay(*trace_, o).total.hit_rate() * 100.0;
  }
  static inline routing_trace* trace_ = nullptr;
};

TEST_F(CacheReplayCalibration, LruMatchesThePublishedHitRates) {
  EXPECT_NEAR(hit_rate("lru", 64, false), 67.0, 3.0);
  EXPECT_NEAR(hit_rate("lru", 128, false), 81.0, 3.0);
}

TEST_F(CacheReplayCalibration, BestPolicyWithPrefetchBeatsLruByFivePoints) {
  const std::string_view best = cache_policy_names()[0];
  for (std::int32_t slots : {64, 128}) {
    const double lru = hit_rate("lru", slots, false);
    EXPECT_GE(hit_rate(best, slots, true), lru + 5.0) << slots << " slots";
    EXPECT_GE(hit_rate(best, slots, false), lru) << slots << " slots: the policy alone must not lose to LRU";
    EXPECT_GE(hit_rate(best, slots, true), hit_rate("lru", slots, true)) << slots << " slots, both prefetching";
  }
}

}  // namespace
}  // namespace qcoder::engine
