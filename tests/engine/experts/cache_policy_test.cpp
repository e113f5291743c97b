#include "engine/experts/cache_policy.h"

#include <vector>

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

std::unique_ptr<cache_policy> make(std::string_view name, std::int32_t experts = 16) {
  result<std::unique_ptr<cache_policy>> p = make_cache_policy(name, experts);
  EXPECT_TRUE(p) << (p ? "" : p.err().message);
  return p ? std::move(p).value() : nullptr;
}

TEST(CachePolicy, NamesAreAllConstructibleAndUnknownNamesFail) {
  ASSERT_GE(cache_policy_names().size(), 2u);
  for (std::string_view name : cache_policy_names()) {
    std::unique_ptr<cache_policy> p = make(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name(), name);
  }
  EXPECT_TRUE(make_cache_policy("lfu-decay:0.5", 8));
  for (std::string_view bad : {"mru", "", "lfu-decay:", "lfu-decay:1", "lfu-decay:0", "lfu-decay:x"}) {
    result<std::unique_ptr<cache_policy>> p = make_cache_policy(bad, 8);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.err().code, errc::invalid_argument);
  }
  EXPECT_FALSE(make_cache_policy("lru", 0));
}

TEST(CachePolicy, LruEvictsTheLeastRecentlyUsed) {
  std::unique_ptr<cache_policy> p = make("lru");
  for (std::int32_t e = 0; e < 4; ++e) {
    p->on_insert(e, 0);
    p->on_use(e, 0);
  }
  const std::vector<std::int32_t> all = {0, 1, 2, 3};
  EXPECT_EQ(p->victim(all, 1), 0);  // same tick: the first used is the least recent
  p->on_use(0, 1);
  p->on_use(2, 1);
  EXPECT_EQ(p->victim(all, 2), 1);
  const std::vector<std::int32_t> some = {2, 3, 0};
  EXPECT_EQ(p->victim(some, 2), 3);
  // Frequency does not matter to LRU: 3 used many times long ago loses to 1 used once since.
  for (int i = 0; i < 50; ++i) p->on_use(3, 3);
  p->on_use(1, 4);
  p->on_use(0, 4);
  p->on_use(2, 4);
  EXPECT_EQ(p->victim(all, 5), 3);
}

TEST(CachePolicy, LfuDecayKeepsFrequentExpertsOverRecentOnes) {
  std::unique_ptr<cache_policy> lfu = make("lfu-decay");
  std::unique_ptr<cache_policy> lru = make("lru");
  for (cache_policy* p : {lfu.get(), lru.get()}) {
    p->on_insert(0, 0);
    for (std::uint64_t t = 0; t < 9; ++t) p->on_use(0, t);  // expert 0: every token 0..8
    p->on_insert(1, 9);
    p->on_use(1, 9);  // expert 1: once, at token 9
  }
  const std::vector<std::int32_t> both = {0, 1};
  EXPECT_EQ(lfu->victim(both, 10), 1);
  EXPECT_EQ(lru->victim(both, 10), 0);
}

TEST(CachePolicy, LfuDecayForgetsOldFrequency) {
  std::unique_ptr<cache_policy> p = make("lfu-decay");
  for (std::uint64_t t = 0; t < 10; ++t) p->on_use(0, t);  // often, long ago
  p->on_use(1, 200);
  p->on_use(1, 201);  // twice, recently
  const std::vector<std::int32_t> both = {0, 1};
  EXPECT_EQ(p->victim(both, 202), 0);
}

TEST(CachePolicy, LfuDecayProtectsPredictedExperts) {
  std::unique_ptr<cache_policy> p = make("lfu-decay");
  for (std::uint64_t t = 0; t < 5; ++t) {
    p->on_use(0, t);
    p->on_use(2, t);
  }
  p->on_use(1, 0);  // rare
  const std::vector<std::int32_t> candidates = {0, 1, 2};
  EXPECT_EQ(p->victim(candidates, 5), 1);
  p->on_predict(1, 6);  // predicted for token 6
  EXPECT_NE(p->victim(candidates, 5), 1);  // protected before and at its tick
  EXPECT_NE(p->victim(candidates, 6), 1);
  EXPECT_EQ(p->victim(candidates, 7), 1);  // the prediction has expired
  // Every candidate predicted: the lowest score goes anyway.
  p->on_predict(0, 9);
  p->on_predict(1, 9);
  p->on_predict(2, 9);
  EXPECT_EQ(p->victim(candidates, 9), 1);
}

TEST(CachePolicy, LfuDecayBreaksTiesByRecency) {
  std::unique_ptr<cache_policy> p = make("lfu-decay");
  p->on_use(3, 4);
  p->on_use(1, 4);
  p->on_use(2, 4);
  const std::vector<std::int32_t> all = {1, 2, 3};
  EXPECT_EQ(p->victim(all, 4), 3);
  p->on_insert(5, 4);  // never used: score 0, evicted first even though just inserted
  const std::vector<std::int32_t> with_new = {1, 5, 2};
  EXPECT_EQ(p->victim(with_new, 4), 5);
}

TEST(CachePolicy, LfuDecayStaysOrderedOverLongRunsAndHugeJumps) {
  std::unique_ptr<cache_policy> p = make("lfu-decay:0.5");  // fast decay: rescales often
  for (std::uint64_t t = 0; t < 100000; ++t) {
    p->on_use(0, t);
    if (t % 2 == 0) p->on_use(1, t);
  }
  const std::vector<std::int32_t> both = {0, 1};
  EXPECT_EQ(p->victim(both, 100000), 1);
  p->on_use(1, 1'000'000'000'000ull);  // a jump far past any representable decay
  EXPECT_EQ(p->victim(both, 1'000'000'000'001ull), 0);
  p->on_use(0, 1'000'000'000'002ull);
  p->on_use(0, 1'000'000'000'002ull);
  EXPECT_EQ(p->victim(both, 1'000'000'000'003ull), 1);
}

}  // namespace
}  // namespace qcoder::engine
