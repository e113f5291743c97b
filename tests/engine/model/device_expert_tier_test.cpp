// The VRAM expert tier on the emulated CUDA backend: with the routed experts in a bounded pool of device
// slots (down to one per layer, where most experts are read in place from the host tier), with prefetch on
// and off, with copies made artificially slow, and with a bounded host tier below (down to one RAM slot per
// layer, every other expert read from disk), the logits are bitwise those of the model with every expert
// resident, on both tiny checkpoints, over a prompt and decode steps. With the CPU tier computing misses,
// they are within the CPU backend's tolerance. The counts show that each path (hits, copies, in-place
// reads, prefetches, disk reads, CPU runs) really ran.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "engine/model/device_forward.h"
#include "engine/sampler.h"
#include "kernels/cuda/emu/streams.h"
#include "tests/support/shard_truncation.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

// `experts` with the CPU tier off unless `cpu` says otherwise (its results are close, not bitwise equal);
// ram_budget > 0: a bounded host tier (the expert store) under the VRAM slots.
std::unique_ptr<qwen3_next> load(const fs::path& dir, device_expert_options experts, bool graphs = true,
                                 std::uint64_t ram_budget = 0, cpu_misses cpu = cpu_misses::never) {
  model_options options;
  options.decode_graphs = graphs;
  options.device = compute_device::cuda_emu;
  options.threads = 2;
  options.max_batch = 16;
  experts.cpu_misses = cpu;
  options.device_experts = experts;
  options.experts.ram_budget = ram_budget;
  options.experts.policy = experts.policy;
  options.experts.prefetch = experts.prefetch;
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(dir, options);
  EXPECT_TRUE(model) << (model ? "" : model.err().message);
  return model ? std::move(model).value() : nullptr;
}

// Logits of a 20-token prompt (every token, in chunks of 16), then of `steps` greedy decode steps.
std::vector<float> run(qwen3_next& model, int steps) {
  const std::int64_t vocab = model.config().vocab_size;
  std::vector<std::int32_t> ids(20);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((5 + 7919 * i) % vocab);
  sequence_state state = model.new_state(96);
  std::vector<float> logits(ids.size() * static_cast<std::size_t>(vocab));
  auto r = model.forward(ids, state, logits.data(), logits_mode::all);
  EXPECT_TRUE(r) << r.err().message;
  std::vector<float> last(logits.end() - vocab, logits.end());
  for (int step = 0; step < steps && r; ++step) {
    const std::int32_t token = argmax(last.data(), vocab);
    r = model.forward(std::span(&token, 1), state, last.data(), logits_mode::last);
    EXPECT_TRUE(r) << r.err().message;
    logits.insert(logits.end(), last.begin(), last.end());
  }
  return logits;
}

testing::AssertionResult bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return testing::AssertionFailure() << a.size() << " logits against " << b.size();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      float worst = 0.0f;
      for (std::size_t j = 0; j < a.size(); ++j) worst = std::max(worst, std::abs(a[j] - b[j]));
      return testing::AssertionFailure() << "logit " << i << " (row " << i / 2048 << "): " << a[i] << " against "
                                         << b[i] << "; largest difference " << worst;
    }
  }
  return testing::AssertionSuccess();
}

constexpr int steps = 4;

class DeviceExpertTier : public testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return data_dir / GetParam(); }

  // The all-resident model's logits, computed once per checkpoint (the emulator is slow).
  const std::vector<float>& resident_logits() {
    static std::map<std::string, std::vector<float>> cache;
    auto it = cache.find(GetParam());
    if (it == cache.end()) {
      auto resident = load(dir(), device_expert_options{});
      EXPECT_TRUE(resident);
      EXPECT_EQ(resident->device_forward_pass()->expert_slots(), nullptr);
      it = cache.emplace(GetParam(), resident ? run(*resident, steps) : std::vector<float>{}).first;
    }
    return it->second;
  }

  // A budget of `slots` slots in every layer.
  std::uint64_t budget_for(std::uint64_t slots) {
    device_expert_options one;
    one.vram_budget = 1;
    auto probe = load(dir(), one);  // one slot per layer: only to learn the slot's size
    EXPECT_TRUE(probe);
    if (!probe) return 0;
    const std::uint64_t slot_bytes = probe->device_forward_pass()->expert_slot_bytes();
    EXPECT_GT(slot_bytes, 0u);
    return slot_bytes * slots * static_cast<std::uint64_t>(probe->config().num_hidden_layers);
  }
};

TEST_P(DeviceExpertTier, OneSlotPerLayerGivesTheResidentLogitsBitForBit) {
  device_expert_options one;
  one.vram_budget = 1;  // less than an expert: one slot per layer
  auto tiered = load(dir(), one);
  ASSERT_TRUE(tiered);
  const device_expert_slots* slots = tiered->device_forward_pass()->expert_slots();
  ASSERT_NE(slots, nullptr);
  for (std::int64_t l = 0; l < tiered->config().num_hidden_layers; ++l) EXPECT_EQ(slots->slots(l), 1);
  EXPECT_TRUE(bitwise_equal(run(*tiered, steps), resident_logits()));
  const device_slot_stats s = slots->totals();
  EXPECT_GT(s.misses, 0u);
  EXPECT_GT(s.direct, 0u);  // top-4 experts, one slot: three read in place
  EXPECT_GT(s.prefetches, 0u);
}

// Half the experts per layer: hits, misses and prefetched copies all happen (prefetch is off on the FP8
// checkpoint, to cover that path too).
TEST_P(DeviceExpertTier, HalfTheExpertsGiveTheResidentLogits) {
  const bool prefetch = GetParam() == "bf16";
  device_expert_options options;
  options.prefetch = prefetch;
  options.vram_budget = budget_for(8);
  auto tiered = load(dir(), options);
  ASSERT_TRUE(tiered);
  const device_expert_slots* slots = tiered->device_forward_pass()->expert_slots();
  EXPECT_EQ(slots->slots(0), tiered->config().num_experts / 2);
  EXPECT_TRUE(bitwise_equal(run(*tiered, steps), resident_logits()));
  const device_slot_stats s = slots->totals();
  EXPECT_GT(s.hits, 0u);
  EXPECT_GT(s.misses, 0u);
  if (prefetch) {
    EXPECT_GT(s.prefetch_hits, 0u);
  } else {
    EXPECT_EQ(s.prefetches, 0u);
  }
}

// Copies that take 10 ms and fill their destination with garbage first: a kernel that read a slot before
// its copy's event would see the garbage or the evicted expert, and the logits would differ (without the
// wait, this test fails). The BF16 checkpoint only: ~120 copies of 3 parts each already take 4 s.
class SlowCopies : public DeviceExpertTier {};

TEST_P(SlowCopies, ChangeNothing) {
  device_expert_options options;
  options.vram_budget = budget_for(3);
  auto tiered = load(dir(), options);
  ASSERT_TRUE(tiered);
  const std::vector<float>& expected = resident_logits();
  cuda::emu::set_copy_delay(std::chrono::milliseconds(10));
  const std::vector<float> got = run(*tiered, steps);
  cuda::emu::set_copy_delay(std::chrono::microseconds(0));
  EXPECT_TRUE(bitwise_equal(got, expected));
  const device_slot_stats s = tiered->device_forward_pass()->expert_slots()->totals();
  EXPECT_GT(s.misses, 10u);
  EXPECT_GT(s.prefetch_hits, 10u);
}

// 64 decode steps as graphs against the same steps queued kernel by kernel, with 4 slots per layer so that
// slot contents change between steps: identical logits, and one capture for the one decode shape.
// The FP8 checkpoint only: 2 × 64 emulated steps take ~35 s.
class DecodeGraphs : public DeviceExpertTier {};

TEST_P(DecodeGraphs, GiveTheEagerLogitsAndAreCapturedOnce) {
  device_expert_options options;
  options.vram_budget = budget_for(4);
  auto graphed = load(dir(), options, /*graphs=*/true);
  auto eager = load(dir(), options, /*graphs=*/false);
  ASSERT_TRUE(graphed && eager);
  const device_forward& graph_pass = *graphed->device_forward_pass();
  const device_slot_stats before = graph_pass.expert_slots()->totals();
  EXPECT_EQ(graph_pass.graph_captures(), 0);
  const std::vector<float> expected = run(*eager, 64);
  const std::vector<float> got = run(*graphed, 64);
  EXPECT_TRUE(bitwise_equal(got, expected));
  EXPECT_EQ(graph_pass.graph_captures(), 1);
  EXPECT_EQ(graph_pass.graph_launches(), 64);
  EXPECT_EQ(eager->device_forward_pass()->graph_launches(), 0);
  const device_slot_stats after = graph_pass.expert_slots()->totals();
  EXPECT_GT(after.misses - before.misses, 20u);  // copies between the steps: the slots' contents changed
  EXPECT_GT(after.hits - before.hits, 20u);
}

// A bounded host tier: one RAM slot per layer under one VRAM slot per layer, so nearly every expert a layer
// needs is read from the checkpoint files into the store, copied or read in place from there, and evicted
// again; with prefetch, the next layer's predicted experts are read speculatively too. Decode graphs are
// asked for and must be off (a graph step could need an expert that is only on disk).
TEST_P(DeviceExpertTier, ABoundedHostTierGivesTheResidentLogitsBitForBit) {
  device_expert_options one;
  one.vram_budget = 1;
  auto tiered = load(dir(), one, /*graphs=*/true, /*ram_budget=*/1);
  ASSERT_TRUE(tiered);
  ASSERT_NE(tiered->experts(), nullptr);
  EXPECT_EQ(tiered->experts()->slots(0), 1);
  EXPECT_TRUE(bitwise_equal(run(*tiered, steps), resident_logits()));
  const device_forward& pass = *tiered->device_forward_pass();
  EXPECT_EQ(pass.graph_launches(), 0);
  const expert_layer_stats host = tiered->experts()->totals();
  EXPECT_GT(host.misses, 20u);
  EXPECT_GT(host.reads, host.misses / 2);
  EXPECT_GT(host.prefetches, 0u);
  const device_slot_stats vram = pass.expert_slots()->totals();
  EXPECT_GT(vram.misses, 0u);
  EXPECT_GT(vram.direct, 0u);  // read in place from the store's pinned slots
  EXPECT_EQ(vram.cpu, 0u);
}

// More room in both tiers (half the experts in RAM, a quarter in VRAM), no prefetch: hits in both.
TEST_P(DeviceExpertTier, ALargerBoundedHostTierGivesTheResidentLogits) {
  device_expert_options options;
  options.prefetch = false;
  options.vram_budget = budget_for(4);
  auto probe = load(dir(), device_expert_options{.vram_budget = 1}, true, 1);
  ASSERT_TRUE(probe);
  const std::uint64_t ram = probe->experts()->expert_bytes() * 8 * static_cast<std::uint64_t>(probe->config().num_hidden_layers);
  auto tiered = load(dir(), options, true, ram);
  ASSERT_TRUE(tiered);
  EXPECT_EQ(tiered->experts()->slots(0), tiered->config().num_experts / 2);
  EXPECT_TRUE(bitwise_equal(run(*tiered, steps), resident_logits()));
  const expert_layer_stats host = tiered->experts()->totals();
  EXPECT_GT(host.hits, 0u);
  EXPECT_GT(host.misses, 0u);
  EXPECT_EQ(host.prefetches, 0u);
  const device_slot_stats vram = tiered->device_forward_pass()->expert_slots()->totals();
  EXPECT_GT(vram.hits, 0u);
  EXPECT_GT(vram.misses, 0u);
}

// The CPU tier computing every miss (`always`), with the host tier mapped (BF16) and bounded (FP8): the
// CPU kernels' results, within the tolerance that the CPU backend meets against the emulated one, and counted.
TEST_P(DeviceExpertTier, MissesOnTheCpuTierGiveTheResidentLogitsWithinTolerance) {
  device_expert_options one;
  one.vram_budget = 1;
  {
    const std::uint64_t ram = GetParam() == "fp8" ? 1 : 0;
    auto tiered = load(dir(), one, /*graphs=*/false, ram, cpu_misses::always);
    ASSERT_TRUE(tiered);
    const std::vector<float> got = run(*tiered, steps);
    const std::vector<float>& expected = resident_logits();
    ASSERT_EQ(got.size(), expected.size());
    float worst = 0.0f;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - expected[i]));
    EXPECT_LE(worst, 1e-3f) << "RAM budget " << ram;
    EXPECT_GT(worst, 0.0f) << "the CPU kernels sum in another order: equal logits mean the CPU computed nothing";
    const device_slot_stats s = tiered->device_forward_pass()->expert_slots()->totals();
    EXPECT_GT(s.cpu, 4u * steps) << "RAM budget " << ram;  // the decode steps' misses (prefill chunks are larger)
  }
}

// A shard that shrinks while the device pass reads experts from it through the bounded host tier: the
// forward pass fails with an error that names the file (no crash, no hang, the state not advanced), and
// succeeds bit for bit as before once the file is back.
TEST(DeviceExpertTierErrors, ATruncatedShardFailsTheStepAndRecovers) {
  check_shard_truncation("qcoder-device-tier-truncation", 7, [](const fs::path& dir) {
    return load(dir, device_expert_options{.vram_budget = 1}, /*graphs=*/true, /*ram_budget=*/1);
  });
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, DeviceExpertTier, testing::Values("bf16", "fp8"));
// With copies that take 10 ms from the load on, `auto` measures them and sends the misses of decode steps
// to the CPU (the prefill chunks of 16 rows stay on the GPU: too many rows for the CPU tier).
TEST_P(SlowCopies, SendMissesToTheCpuWhenItIsFaster) {
  device_expert_options one;
  one.vram_budget = 1;
  cuda::emu::set_copy_delay(std::chrono::milliseconds(10));
  auto tiered = load(dir(), one, /*graphs=*/false, /*ram_budget=*/0, cpu_misses::automatic);
  const std::vector<float> got = tiered ? run(*tiered, 2) : std::vector<float>{};
  cuda::emu::set_copy_delay(std::chrono::microseconds(0));
  ASSERT_TRUE(tiered);
  const device_slot_stats s = tiered->device_forward_pass()->expert_slots()->totals();
  EXPECT_GT(s.cpu, 0u);
  const std::vector<float>& expected = resident_logits();
  ASSERT_GE(expected.size(), got.size());
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], expected[i], 1e-3f) << i;
}

// The bounded host tier with slow copies: the copies read the store's pinned slots, which must stay pinned
// (not reused for another expert) until the copies have run.
TEST_P(SlowCopies, FromABoundedHostTierChangeNothing) {
  device_expert_options options;
  options.vram_budget = budget_for(2);
  auto tiered = load(dir(), options, /*graphs=*/false, /*ram_budget=*/1);
  ASSERT_TRUE(tiered);
  const std::vector<float>& expected = resident_logits();
  cuda::emu::set_copy_delay(std::chrono::milliseconds(10));
  const std::vector<float> got = run(*tiered, 2);
  cuda::emu::set_copy_delay(std::chrono::microseconds(0));
  EXPECT_TRUE(bitwise_equal(got, std::vector<float>(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(got.size()))));
  EXPECT_GT(tiered->device_forward_pass()->expert_slots()->totals().misses, 10u);
}

INSTANTIATE_TEST_SUITE_P(Bf16, SlowCopies, testing::Values("bf16"));
INSTANTIATE_TEST_SUITE_P(Fp8, DecodeGraphs, testing::Values("fp8"));

}  // namespace
}  // namespace qcoder::engine
