// The expert read probe (the CPU card's measured disk figure) on the tiny checkpoints: it reads through the
// expert store, so it reports the store's slot size and a positive speed for both loader counts, and it
// refuses nonsense.
#include "engine/perf/expert_read_probe.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/checkpoint.h"
#include "engine/experts/expert_store.h"
#include "engine/model/qwen3_next_weights.h"

namespace qcoder::engine {
namespace {

const std::filesystem::path tiny_dir = std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

TEST(ExpertReadProbe, ReadsThroughTheExpertStore) {
  for (const char* kind : {"bf16", "fp8"}) {
    SCOPED_TRACE(kind);
    const auto dir = tiny_dir / kind;
    result<expert_read_speed> speed = measure_expert_reads(dir, 2, 16, 24);
    ASSERT_TRUE(speed) << speed.err().message;
    EXPECT_GT(speed->one_reader_gbps, 0.0);
    EXPECT_GT(speed->all_readers_gbps, 0.0);
    EXPECT_EQ(speed->loaders, 2);
    EXPECT_EQ(speed->reads, 24);
    // The slot size of the store the engine would make.
    auto config = model_config::load(dir);
    auto ckpt = checkpoint::open(dir);
    ASSERT_TRUE(config && ckpt);
    auto weights = qwen3_next_weights::bind(*ckpt, *config);
    ASSERT_TRUE(weights);
    expert_store_options o;
    o.ram_budget = 1;
    auto store = expert_store::create(*ckpt, *config, *weights, o);
    ASSERT_TRUE(store);
    EXPECT_EQ(speed->expert_bytes, (*store)->expert_bytes());
  }
}

TEST(ExpertReadProbe, RefusesBadArgumentsAndMissingModels) {
  EXPECT_FALSE(measure_expert_reads(tiny_dir / "fp8", 0));
  EXPECT_FALSE(measure_expert_reads(tiny_dir / "fp8", 2, -2));
  EXPECT_FALSE(measure_expert_reads(tiny_dir / "fp8", 2, 4, 0));
  result<expert_read_speed> missing = measure_expert_reads(tiny_dir / "no-such-model");
  ASSERT_FALSE(missing);
}

}  // namespace
}  // namespace qcoder::engine
