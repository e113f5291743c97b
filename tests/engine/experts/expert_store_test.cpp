// The expert cache must not change a single bit of the logits, whatever its size: down to one expert per
// layer (fewer slots than the experts a token needs), with and without prefetch, prefill and decode.
#include "engine/experts/expert_store.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/experts/routing_trace.h"
#include "engine/make_model.h"
#include "engine/model/qwen3_next.h"
#include "tests/support/shard_truncation.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

std::vector<std::int32_t> long_prompt() {
  std::ifstream in(data_dir / "golden" / "prompts.json");
  return nlohmann::json::parse(in)[3].get<std::vector<std::int32_t>>();
}

std::unique_ptr<qwen3_next> load(const fs::path& dir, std::uint64_t budget, bool prefetch = true,
                                 const std::string& policy = "lru", std::vector<layer_budget> layer_budgets = {},
                                 bool direct_io = true) {
  model_options options;
  options.experts.direct_io = direct_io;
  options.experts.layer_budgets = std::move(layer_budgets);
  options.threads = 2;
  options.max_batch = 64;
  options.experts.ram_budget = budget;
  options.experts.prefetch = prefetch;
  options.experts.policy = policy;
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(dir, options);
  EXPECT_TRUE(model) << (model ? "" : model.err().message);
  return model ? std::move(model).value() : nullptr;
}

// Logits of the prompt as one prefill and then as 40 single-token steps.
std::vector<float> run(qwen3_next& model, const std::vector<std::int32_t>& ids) {
  const std::int64_t vocab = model.config().vocab_size;
  std::vector<float> out(ids.size() * static_cast<std::size_t>(vocab) + 40 * static_cast<std::size_t>(vocab));
  sequence_state prefill = model.new_state(static_cast<std::int64_t>(ids.size()));
  EXPECT_TRUE(model.forward(ids, prefill, out.data(), logits_mode::all));
  sequence_state step = model.new_state(40);
  for (std::size_t t = 0; t < 40; ++t) {
    EXPECT_TRUE(model.forward(std::span(ids.data() + t, 1), step,
                              out.data() + (ids.size() + t) * static_cast<std::size_t>(vocab), logits_mode::last));
  }
  return out;
}

class ExpertStoreTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExpertStoreTest, AnyBudgetGivesBitwiseIdenticalLogits) {
  const fs::path dir = data_dir / GetParam();
  const auto ids = long_prompt();
  auto reference_model = load(dir, 0);
  ASSERT_TRUE(reference_model);
  ASSERT_EQ(reference_model->experts(), nullptr);
  const std::vector<float> want = run(*reference_model, ids);

  auto probe = load(dir, 1);
  ASSERT_TRUE(probe);
  const std::uint64_t expert = probe->experts()->expert_bytes();
  const std::int64_t sparse_layers = probe->config().num_hidden_layers;
  struct budget_case {
    std::uint64_t bytes;
    std::int32_t slots;
    bool prefetch;
  };
  for (const budget_case& b : {budget_case{1, 1, true}, budget_case{1, 1, false},
                               budget_case{3 * expert * sparse_layers, 3, true},
                               budget_case{1000 * expert * sparse_layers, 16, true}}) {
    auto model = load(dir, b.bytes, b.prefetch);
    ASSERT_TRUE(model);
    ASSERT_NE(model->experts(), nullptr);
    EXPECT_EQ(model->experts()->slots(0), b.slots);
    const std::vector<float> got = run(*model, ids);
    EXPECT_TRUE(got == want) << GetParam() << ": " << b.slots << " slots, prefetch " << b.prefetch;
    const expert_layer_stats total = model->experts()->totals();
    EXPECT_GT(total.misses, 0u);
    EXPECT_GE(total.reads, total.misses - total.prefetches);
    EXPECT_LE(total.bytes_read, total.reads * expert);  // direct reads: whole blocks, within the slot
    EXPECT_GT(total.bytes_read, total.reads * (expert / 2));
    if (b.slots == 16) {
      EXPECT_LE(total.misses, static_cast<std::uint64_t>(16 * sparse_layers));  // everything fits: each read once
    }
    if (!b.prefetch) {
      EXPECT_EQ(total.prefetches, 0u);
    }
  }
}

TEST_P(ExpertStoreTest, UnevenLayerBudgetsGiveBitwiseIdenticalLogits) {
  const fs::path dir = data_dir / GetParam();
  const auto ids = long_prompt();
  auto reference_model = load(dir, 0);
  ASSERT_TRUE(reference_model);
  const std::vector<float> want = run(*reference_model, ids);
  // Also buffered reads (pread + DONTNEED), whose slots have no alignment slack.
  std::uint64_t direct_slot = 0;
  for (const auto& [prefetch, direct] : {std::pair{true, true}, std::pair{false, true}, std::pair{true, false}}) {
    auto probe = load(dir, 1, true, "lru", {}, direct);
    ASSERT_TRUE(probe);
    const std::uint64_t expert = probe->experts()->expert_bytes();
    if (direct) {
      direct_slot = expert;
    } else {
      EXPECT_LT(expert, direct_slot);
    }
    // 8 layers: 0-2 one slot each, 5 all 16 experts, the other four split 4 · 3 slots (+ some slack).
    const std::vector<layer_budget> budgets = {{0, 2, expert}, {5, 5, 16 * expert}};
    const std::uint64_t total = 3 * expert + 16 * expert + 4 * 3 * expert + expert / 2;
    auto model = load(dir, total, prefetch, "lru", budgets, direct);
    ASSERT_TRUE(model);
    ASSERT_NE(model->experts(), nullptr);
    EXPECT_EQ(model->experts()->layer_slots(), (std::vector<std::int32_t>{1, 1, 1, 3, 3, 16, 3, 3}));
    EXPECT_EQ(model->experts()->allocated_bytes(), 31 * expert);
    const std::vector<float> got = run(*model, ids);
    EXPECT_TRUE(got == want) << GetParam() << ": prefetch " << prefetch << ", direct " << direct;
    const std::vector<expert_layer_stats>& stats = model->experts()->stats();
    EXPECT_LE(stats[5].misses, 16u);            // everything fits: each expert read once at most
    EXPECT_GT(stats[0].misses, stats[5].misses);  // one slot: reads every token
  }
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, ExpertStoreTest, ::testing::Values("bf16", "fp8"));

TEST(ExpertStore, TruncatedShardFailsTheRequestAndRecoversWhenTheFileIsBack) {
  check_shard_truncation(
      "qcoder-expert-store-truncation", 5, [](const fs::path& dir) { return load(dir, 1); },  // one slot per layer
      [](qwen3_next& model) { EXPECT_GT(model.owned_resident_bytes(), 0u); });
}

TEST(ExpertStore, RoutingTraceAndStatisticsAreWrittenAtExit) {
  const fs::path trace_path = fs::temp_directory_path() / "qcoder-routing-trace-test.jsonl";
  const fs::path stats_path = fs::temp_directory_path() / "qcoder-expert-stats-test.json";
  {
    model_options options;
    options.threads = 2;
    options.experts.ram_budget = 1;
    options.routing_trace_path = trace_path.string();
    options.stats_json_path = stats_path.string();
    result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(data_dir / "fp8", options);
    ASSERT_TRUE(model) << model.err().message;
    sequence_state state = (*model)->new_state(8);
    std::vector<float> logits(static_cast<std::size_t>((*model)->config().vocab_size));
    const std::vector<std::int32_t> prompt = {3, 1, 4, 1, 5};
    ASSERT_TRUE((*model)->forward(prompt, state, logits.data(), logits_mode::last));
    for (std::int32_t id : {9, 2, 6}) {
      const std::int32_t one[] = {id};
      ASSERT_TRUE((*model)->forward(one, state, logits.data(), logits_mode::last));
    }
  }
  result<routing_trace> trace = read_routing_trace_file(trace_path.string());
  ASSERT_TRUE(trace) << trace.err().message;
  EXPECT_EQ(trace->tokens(), 8u);
  EXPECT_EQ(trace->layers(), 8);
  EXPECT_EQ(trace->top_k(), 4);
  EXPECT_TRUE(trace->has_predictions());
  EXPECT_TRUE(trace->predicted(0, 1).empty());       // prefill tokens carry no prediction
  EXPECT_EQ(trace->predicted(6, 1).size(), 4u);      // decode tokens do, from layer 1 on
  EXPECT_TRUE(trace->predicted(6, 0).empty());
  std::ifstream stats_file(stats_path);
  const nlohmann::json stats = nlohmann::json::parse(stats_file);
  EXPECT_TRUE(stats["expert_cache"].get<bool>());
  EXPECT_EQ(stats["layers"].size(), 8u);
  EXPECT_GT(stats["layers"][0]["misses"].get<std::uint64_t>(), 0u);
  fs::remove(trace_path);
  fs::remove(stats_path);
}

TEST(ExpertStore, PlansSlotsFromPerLayerBudgets) {
  const std::vector<bool> sparse = {true, false, true, true, true, true};  // layer 1 is dense
  expert_store_options o;
  o.ram_budget = 1000;
  o.layer_budgets = {{0, 0, 300}, {4, 5, 50}};  // 0: 300 B, 4 and 5: 50 B each
  result<std::vector<std::int32_t>> slots = plan_expert_slots(o, sparse, 10, 64);
  ASSERT_TRUE(slots) << slots.err().message;
  // The rest, 1000 - 400 = 600 B, goes to layers 2 and 3: 300 B = 30 slots each.
  EXPECT_EQ(*slots, (std::vector<std::int32_t>{30, 0, 30, 30, 5, 5}));
  EXPECT_EQ(describe_slots(*slots), "0:30 2-3:30 4-5:5");

  // At least one slot, at most one per expert.
  o.layer_budgets = {{0, 0, 1}, {2, 2, 990}};
  slots = plan_expert_slots(o, sparse, 10, 64);
  ASSERT_TRUE(slots) << slots.err().message;
  EXPECT_EQ(*slots, (std::vector<std::int32_t>{1, 0, 64, 1, 1, 1}));
  // Without per-layer budgets: split evenly over the sparse layers.
  o.layer_budgets.clear();
  slots = plan_expert_slots(o, sparse, 10, 64);
  ASSERT_TRUE(slots) << slots.err().message;
  EXPECT_EQ(*slots, (std::vector<std::int32_t>{20, 0, 20, 20, 20, 20}));
}

TEST(ExpertStore, RejectsBadPerLayerBudgets) {
  const std::vector<bool> sparse = {true, false, true, true};
  const struct {
    std::vector<layer_budget> budgets;
    const char* message;
  } cases[] = {
      {{{4, 4, 10}}, "layer 4 does not exist (the model has layers 0-3)"},
      {{{2, 7, 10}}, "layer 4 does not exist"},
      {{{1, 1, 10}}, "layer 1 is dense"},
      {{{0, 2, 10}}, "layer 1 is dense"},
      {{{0, 0, 10}, {0, 0, 10}}, "layer 0 is named twice"},
      {{{2, 3, 10}, {3, 3, 10}}, "layer 3 is named twice"},
      {{{0, 0, 60}, {2, 2, 50}}, "more than the expert cache's"},
      {{{3, 2, 10}}, "not a range of layers"},
  };
  for (const auto& c : cases) {
    expert_store_options o;
    o.ram_budget = 100;
    o.layer_budgets = c.budgets;
    result<std::vector<std::int32_t>> slots = plan_expert_slots(o, sparse, 10, 64);
    ASSERT_FALSE(slots) << c.message;
    EXPECT_EQ(slots.err().code, errc::invalid_argument);
    EXPECT_NE(slots.err().message.find(c.message), std::string::npos) << slots.err().message;
  }
}

TEST(ExpertStore, AModelRejectsABudgetForALayerItDoesNotHave) {
  auto model = [] {
    model_options options;
    options.experts.ram_budget = 1 << 20;
    options.experts.layer_budgets = {{8, 8, 1 << 10}};
    return qwen3_next::load(data_dir / "bf16", options);
  }();
  ASSERT_FALSE(model);
  EXPECT_NE(model.err().message.find("layer 8 does not exist"), std::string::npos) << model.err().message;
}

TEST(ExpertStore, UnknownPolicyIsAClearError) {
  model_options options;
  options.experts.ram_budget = 1;
  options.experts.policy = "no-such-policy";
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(data_dir / "bf16", options);
  ASSERT_FALSE(model);
  EXPECT_NE(model.err().message.find("no-such-policy"), std::string::npos) << model.err().message;
}

}  // namespace
}  // namespace qcoder::engine
