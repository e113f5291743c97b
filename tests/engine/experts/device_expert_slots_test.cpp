// The device tier's slot bookkeeping (device_expert_slots): where a layer's experts are read from (hit,
// copy into a claimed slot, in place), that a call never evicts its own experts, that copies are waited for
// exactly once, prefetch, and the slot plan over a VRAM budget.
#include "engine/experts/device_expert_slots.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace qcoder::engine {
namespace {

using where = device_expert_slots::where;

device_expert_slots make(std::vector<std::int32_t> slots, std::int32_t experts = 16) {
  result<device_expert_slots> s = device_expert_slots::create(std::move(slots), experts, "lru");
  EXPECT_TRUE(s) << (s ? "" : s.err().message);
  return std::move(s).value();
}

TEST(DeviceExpertSlots, MissesAreCopiedThenHitAndWaitedForOnlyOnce) {
  device_expert_slots slots = make({0, 4});
  const std::vector<std::int32_t> first = {3, 7};
  auto p = slots.place(1, first);
  ASSERT_EQ(p.size(), 2u);
  for (const auto& placement : p) {
    EXPECT_EQ(placement.kind, where::copy);
    EXPECT_TRUE(placement.wait);
  }
  EXPECT_NE(p[0].slot, p[1].slot);
  EXPECT_EQ(slots.slot_of(1, 3), p[0].slot);
  EXPECT_EQ(slots.expert_in(1, p[1].slot), 7);
  slots.next_token();
  p = slots.place(1, std::vector<std::int32_t>{7, 3});
  EXPECT_EQ(p[0].kind, where::resident);
  EXPECT_FALSE(p[0].wait);  // the copy was waited for when it was placed
  EXPECT_EQ(p[0].slot, slots.slot_of(1, 7));
  const device_slot_stats& s = slots.stats()[1];
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.copies, 2u);
  EXPECT_EQ(s.direct, 0u);
}

TEST(DeviceExpertSlots, AFullLayerEvictsTheLeastRecentlyUsedAndNeverItsOwnExperts) {
  device_expert_slots slots = make({2});
  slots.place(0, std::vector<std::int32_t>{1, 2});
  slots.next_token();
  slots.place(0, std::vector<std::int32_t>{2});
  slots.next_token();
  // 1 is the least recently used: 5 takes its slot; 2 stays.
  auto p = slots.place(0, std::vector<std::int32_t>{5});
  EXPECT_EQ(p[0].kind, where::copy);
  ASSERT_EQ(slots.evicted().size(), 1u);
  EXPECT_EQ(slots.evicted()[0], 1);
  EXPECT_EQ(slots.slot_of(0, 1), -1);
  EXPECT_EQ(slots.slot_of(0, 2), 1 - p[0].slot);
  slots.next_token();
  // Three experts, two slots: both residents are this call's, so the third is read in place.
  p = slots.place(0, std::vector<std::int32_t>{2, 5, 9});
  EXPECT_EQ(p[0].kind, where::resident);
  EXPECT_EQ(p[1].kind, where::resident);
  EXPECT_EQ(p[2].kind, where::direct);
  EXPECT_TRUE(slots.evicted().empty());
  EXPECT_EQ(slots.stats()[0].direct, 1u);
}

TEST(DeviceExpertSlots, OneSlotServesOneExpertAndReadsTheRestInPlace) {
  device_expert_slots slots = make({1});
  const auto p = slots.place(0, std::vector<std::int32_t>{4, 6, 8, 10});
  EXPECT_EQ(p[0].kind, where::copy);
  for (std::size_t i = 1; i < p.size(); ++i) EXPECT_EQ(p[i].kind, where::direct);
  EXPECT_EQ(slots.stats()[0].direct, 3u);
}

TEST(DeviceExpertSlots, PrefetchedCopiesAreWaitedForByTheirFirstUse) {
  device_expert_slots slots = make({0, 3});
  const auto copies = slots.prefetch(1, std::vector<std::int32_t>{2, 9});
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies[0].expert, 2);
  EXPECT_EQ(copies[1].expert, 9);
  // Already resident (or being copied): no second copy.
  EXPECT_TRUE(slots.prefetch(1, std::vector<std::int32_t>{9}).empty());
  auto p = slots.place(1, std::vector<std::int32_t>{9, 4});
  EXPECT_EQ(p[0].kind, where::resident);
  EXPECT_TRUE(p[0].wait);
  EXPECT_EQ(p[0].slot, copies[1].slot);
  EXPECT_EQ(p[1].kind, where::copy);
  const device_slot_stats& s = slots.stats()[1];
  EXPECT_EQ(s.prefetches, 2u);
  EXPECT_EQ(s.prefetch_hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  slots.next_token();
  p = slots.place(1, std::vector<std::int32_t>{9});
  EXPECT_FALSE(p[0].wait);
  EXPECT_EQ(slots.stats()[1].prefetch_hits, 1u);  // counted on its first use only
}

// The graph path places a step's experts after the step (it read them in place) and does not wait for the
// copies: a later placement must still say to wait for them.
TEST(DeviceExpertSlots, PlacementsThatDoNotWaitLeaveTheCopiesToWaitFor) {
  device_expert_slots slots = make({2});
  auto p = slots.place(0, std::vector<std::int32_t>{3}, /*waits=*/false);
  EXPECT_EQ(p[0].kind, where::copy);
  slots.next_token();
  p = slots.place(0, std::vector<std::int32_t>{3}, /*waits=*/false);
  EXPECT_EQ(p[0].kind, where::resident);
  EXPECT_TRUE(p[0].wait);
  p = slots.place(0, std::vector<std::int32_t>{3});
  EXPECT_TRUE(p[0].wait);  // the eager path waits now...
  p = slots.place(0, std::vector<std::int32_t>{3});
  EXPECT_FALSE(p[0].wait);  // ...and only once
}

TEST(DeviceExpertSlots, PrefetchNeverEvictsAnExpertOfTheSamePrediction) {
  device_expert_slots slots = make({2});
  const auto copies = slots.prefetch(0, std::vector<std::int32_t>{1, 2, 3});
  ASSERT_EQ(copies.size(), 2u);  // the third finds no slot: dropped
  EXPECT_TRUE(slots.evicted().empty());
  EXPECT_EQ(slots.totals().prefetches, 2u);
}

TEST(DeviceExpertSlots, ADenseLayerReadsEverythingInPlace) {
  device_expert_slots slots = make({0, 2});
  const auto p = slots.place(0, std::vector<std::int32_t>{1});
  EXPECT_EQ(p[0].kind, where::direct);
  EXPECT_TRUE(slots.prefetch(0, std::vector<std::int32_t>{1}).empty());
}

TEST(DeviceExpertSlots, RejectsImpossiblePlans) {
  EXPECT_FALSE(device_expert_slots::create({17}, 16, "lru"));
  EXPECT_FALSE(device_expert_slots::create({-1}, 16, "lru"));
  EXPECT_FALSE(device_expert_slots::create({2}, 16, "no-such-policy"));
}

TEST(DeviceExpertSlots, PlansSlotsOverTheVramBudget) {
  device_expert_options options;
  options.vram_budget = 1000;
  const std::vector<bool> sparse = {true, false, true, true};
  auto plan = plan_device_slots(options, sparse, 100, 16);
  ASSERT_TRUE(plan);
  EXPECT_EQ(*plan, (std::vector<std::int32_t>{3, 0, 3, 3}));
  options.vram_budget = 1;  // less than one expert: one slot per sparse layer
  plan = plan_device_slots(options, sparse, 100, 16);
  ASSERT_TRUE(plan);
  EXPECT_EQ(*plan, (std::vector<std::int32_t>{1, 0, 1, 1}));
  options.vram_budget = 1000;
  options.layer_budgets = {layer_budget{2, 2, 700}};
  plan = plan_device_slots(options, sparse, 100, 16);
  ASSERT_TRUE(plan);
  EXPECT_EQ(*plan, (std::vector<std::int32_t>{1, 0, 7, 1}));
}

}  // namespace
}  // namespace qcoder::engine
