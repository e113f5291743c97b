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

// Timed replays. A hand-made trace: per token, per layer, the chosen experts and the prediction.
struct step_spec {
  ids chosen, predicted;
};
routing_trace trace_of(std::int32_t experts, std::int32_t top_k, const std::vector<std::vector<step_spec>>& tokens) {
  routing_trace trace(static_cast<std::int32_t>(tokens.front().size()), experts, top_k);
  std::uint64_t id = 0;
  for (const auto& layers : tokens) {
    EXPECT_TRUE(trace.begin_token(id++));
    for (const step_spec& s : layers) EXPECT_TRUE(trace.add_layer(s.chosen, s.predicted));
  }
  return trace;
}

// One expert takes read_ms to read on its own; a layer computes for layer_ms.
replay_options timed(double layer_ms, double read_ms, std::int32_t loaders, std::vector<std::int32_t> slots) {
  replay_options o;
  o.timed = true;
  o.layer_slots = std::move(slots);
  o.timing.layer_compute_s = layer_ms / 1e3;
  o.timing.expert_bytes = 3000;
  o.timing.disk_bytes_per_s = 3000.0 / (read_ms / 1e3);
  o.timing.loader_threads = loaders;
  return o;
}

constexpr double tolerance = 1e-12;  // seconds

// Layer 0 always uses expert 0 (a hit once loaded); layer 1 a new expert every token (1, 2, 3, 1, ...; one
// slot), predicted right one layer early. Token 0 is the warm-up.
routing_trace rotating_trace() {
  std::vector<std::vector<step_spec>> tokens;
  for (std::int32_t t = 0; t < 7; ++t) {
    const std::int32_t e = 1 + t % 3;
    tokens.push_back({{{0}, {}}, {{e}, {e}}});
  }
  return trace_of(8, 1, tokens);
}

TEST(CacheReplayTimed, AReadLongerThanALayerHidesExactlyOneLayerOfTheWait) {
  const routing_trace trace = rotating_trace();
  replay_options o = timed(1.0, 3.0, 1, {1, 1});
  o.warmup_tokens = 1;
  const replay_result without = replay(trace, o);
  // Every counted token: layer 0 hits, layer 1 misses and waits the whole read; 1 + 3 + 1 ms a token.
  EXPECT_EQ(without.tokens, 6u);
  EXPECT_EQ(without.total.hits, 6u);
  EXPECT_EQ(without.total.misses, 6u);
  EXPECT_NEAR(without.layers[1].wait_s, 6 * 3e-3, tolerance);
  EXPECT_NEAR(without.layers[0].wait_s, 0.0, tolerance);
  EXPECT_NEAR(without.wait_per_token_s(), 3e-3, tolerance);
  EXPECT_NEAR(without.seconds, 6 * 5e-3, tolerance);

  o.prefetch = true;
  const replay_result with = replay(trace, o);
  // The prefetch starts at layer 0's router, one layer (1 ms) before layer 1 needs it: 2 ms of 3 remain.
  EXPECT_EQ(with.total.late_prefetch_hits, 6u);
  EXPECT_EQ(with.total.prefetch_hits, 0u);
  EXPECT_EQ(with.total.misses, 0u);
  EXPECT_DOUBLE_EQ(with.total.late_rate(), 0.5);
  EXPECT_DOUBLE_EQ(with.total.hit_rate(), 0.5);  // late prefetches are not hits
  EXPECT_NEAR(with.wait_per_token_s(), 2e-3, tolerance);
  EXPECT_NEAR(hidden_wait_fraction(without, with), 1.0 / 3.0, 1e-9);

  // The untimed replay counts the same prefetches as in-time hits: the upper bound.
  replay_options untimed = o;
  untimed.timed = false;
  const replay_result bound = replay(trace, untimed);
  EXPECT_EQ(bound.total.prefetch_hits, 6u);
  EXPECT_EQ(bound.total.late_prefetch_hits, 0u);
  EXPECT_DOUBLE_EQ(bound.total.hit_rate(), 1.0);
  EXPECT_DOUBLE_EQ(bound.total.wait_s, 0.0);
}

TEST(CacheReplayTimed, AReadShorterThanALayerArrivesInTime) {
  const routing_trace trace = rotating_trace();
  replay_options o = timed(1.0, 0.5, 1, {1, 1});
  o.warmup_tokens = 1;
  const replay_result without = replay(trace, o);
  EXPECT_NEAR(without.wait_per_token_s(), 0.5e-3, tolerance);
  o.prefetch = true;
  const replay_result with = replay(trace, o);
  EXPECT_EQ(with.total.prefetch_hits, 6u);
  EXPECT_EQ(with.total.late_prefetch_hits, 0u);
  EXPECT_DOUBLE_EQ(with.total.hit_rate(), 1.0);
  EXPECT_NEAR(with.total.wait_s, 0.0, tolerance);
  EXPECT_NEAR(hidden_wait_fraction(without, with), 1.0, 1e-9);
}

TEST(CacheReplayTimed, DemandReadsGoBeforeQueuedPrefetches) {
  // One loader. Layer 0's miss (expert 0) is read from 0 to 3 ms; the wrong prediction {1, 2} for layer 1
  // queues behind it. Layer 1's router runs at 4 ms: 1 is being read (3-6 ms), its miss 3 jumps ahead of 2
  // (6-9 ms), so layer 1 waits 5 ms (8 ms in a first-come queue).
  const routing_trace trace = trace_of(8, 1, {{{{0}, {}}, {{3}, {1, 2}}}});
  replay_options o = timed(1.0, 3.0, 1, {1, 3});
  o.prefetch = true;
  const replay_result r = replay(trace, o);
  EXPECT_NEAR(r.layers[0].wait_s, 3e-3, tolerance);
  EXPECT_NEAR(r.layers[1].wait_s, 5e-3, tolerance);
  EXPECT_EQ(r.layers[1].misses, 1u);
  EXPECT_EQ(r.layers[1].useless_prefetches, 2u);
  EXPECT_NEAR(r.seconds, 3e-3 + 1e-3 + 5e-3 + 1e-3, tolerance);
}

TEST(CacheReplayTimed, AMissWaitsForASlotThatIsStillBeingRead) {
  // As above with one slot in layer 1: the miss cannot evict the wrong prefetch (1) while it is read, so
  // it waits for it (6 ms), then reads (6-9 ms): 5 ms of wait, counted from the router.
  const routing_trace trace = trace_of(8, 1, {{{{0}, {}}, {{3}, {1}}}});
  replay_options o = timed(1.0, 3.0, 1, {1, 1});
  o.prefetch = true;
  const replay_result r = replay(trace, o);
  EXPECT_NEAR(r.layers[1].wait_s, 5e-3, tolerance);
  EXPECT_EQ(r.layers[1].misses, 1u);
  EXPECT_EQ(r.layers[1].prefetches, 1u);
}

TEST(CacheReplayTimed, ReadsInProgressShareTheDisk) {
  const routing_trace trace = trace_of(8, 2, {{{{0, 1}, {}}}});
  const struct {
    std::int32_t loaders;
    double disk, read;  // bytes per second; read 0: the disk's
    double wait_ms;
  } cases[] = {
      {2, 1e6, 0, 6.0},      // two reads at half the disk each: 6 ms for both
      {2, 2e6, 1e6, 3.0},    // the disk has room for both at their own speed
      {1, 2e6, 1e6, 6.0},    // one loader: one after the other
      {2, 1.5e6, 1e6, 4.0},  // 0.75 MB/s each
  };
  for (const auto& c : cases) {
    replay_options o = timed(1.0, 3.0, c.loaders, {2});
    o.timing.disk_bytes_per_s = c.disk;
    o.timing.read_bytes_per_s = c.read;
    const replay_result r = replay(trace, o);
    EXPECT_NEAR(r.total.wait_s, c.wait_ms / 1e3, tolerance) << c.loaders << " loaders, disk " << c.disk;
  }
}

TEST(CacheReplayTimed, InstantReadsCountLikeTheUntimedReplay) {
  const routing_trace trace = tiny_trace();
  for (const bool prefetch : {false, true}) {
    replay_options untimed;
    untimed.slots = 2;
    untimed.prefetch = prefetch;
    replay_options o = timed(1.0, 1e-9, 2, {});
    o.slots = 2;
    o.prefetch = prefetch;
    const replay_result a = replay(trace, untimed);
    const replay_result b = replay(trace, o);
    EXPECT_EQ(b.total.hits, a.total.hits);
    EXPECT_EQ(b.total.prefetch_hits, a.total.prefetch_hits);
    EXPECT_EQ(b.total.misses, a.total.misses);
    EXPECT_EQ(b.total.prefetches, a.total.prefetches);
    EXPECT_EQ(b.total.late_prefetch_hits, 0u);
    EXPECT_LT(b.total.wait_s, 1e-6);
  }
}

TEST(CacheReplayTimed, RejectsAClockWithoutBandwidth) {
  replay_options o = timed(1.0, 3.0, 1, {});
  o.timing.disk_bytes_per_s = 0;
  EXPECT_FALSE(replay_trace(tiny_trace(), o));
  o = timed(1.0, 3.0, 0, {});
  EXPECT_FALSE(replay_trace(tiny_trace(), o));
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

TEST_F(CacheReplayCalibration, TimedPrefetchIsBoundedByTheInTimeFigure) {
  replay_options o;
  o.policy = std::string(cache_policy_names()[0]);
  o.slots = 64;
  o.prefetch = true;
  o.warmup_tokens = 256;
  const double bound = replay(*trace_, o).total.hit_rate();
  o.timed = true;
  o.timing.expert_bytes = 3'146'112;
  o.timing.loader_threads = 2;
  o.timing.layer_compute_s = 2e-3;
  o.timing.disk_bytes_per_s = 1e12;  // reads far shorter than a layer: everything arrives in time
  const replay_result fast = replay(*trace_, o);
  EXPECT_NEAR(fast.total.hit_rate(), bound, 0.005);
  EXPECT_EQ(fast.total.late_prefetch_hits, 0u);
  o.prefetch = false;
  const replay_result fast_without = replay(*trace_, o);
  EXPECT_GT(hidden_wait_fraction(fast_without, fast), 0.3);  // the misses of wrong guesses remain
  EXPECT_LT(hidden_wait_fraction(fast_without, fast), 1.0);

  // A disk that cannot keep up (8 ms a read, 2 ms a layer, ~3 misses a layer): many prefetches arrive late,
  // and the wrong guesses' reads delay the demand reads, so prefetch adds to the wait.
  o.timing.disk_bytes_per_s = 0.4e9;
  const replay_result slow_without = replay(*trace_, o);
  o.prefetch = true;
  const replay_result slow = replay(*trace_, o);
  EXPECT_LT(slow.total.hit_rate(), bound - 0.05);
  EXPECT_GT(slow.total.late_rate(), 0.1);
  EXPECT_LT(hidden_wait_fraction(slow_without, slow), 0.0);
}

}  // namespace
}  // namespace qcoder::engine
