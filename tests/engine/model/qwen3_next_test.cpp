// The forward pass against golden logits and greedy continuations computed by an independent
// implementation (llama.cpp, cross-checked with a float64 reference) on the tiny random checkpoints in the
// real Hugging Face layout: BF16, and FP8 with 128×128 block scales.
#include "engine/model/qwen3_next.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/make_model.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";
constexpr float tolerance = 5e-4f;  // the bound; the golden data's own implementations agree to ~2e-4

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<float> read_floats(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  std::vector<float> v(static_cast<std::size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

std::vector<std::vector<std::int32_t>> prompts() {
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& p : read_json(data_dir / "golden" / "prompts.json")) out.push_back(p.get<std::vector<std::int32_t>>());
  return out;
}

float max_abs_diff(const float* a, const float* b, std::size_t n) {
  float m = 0.0f;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::unique_ptr<qwen3_next> load(const fs::path& dir, std::int64_t max_batch = 64) {
  model_options options;
  options.threads = 2;
  options.max_batch = max_batch;
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(dir, options);
  EXPECT_TRUE(model) << (model ? "" : model.err().message);
  return model ? std::move(model).value() : nullptr;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path model_dir() const { return data_dir / GetParam(); }
  fs::path golden(const std::string& file) const { return data_dir / "golden" / GetParam() / file; }
};

TEST_P(GoldenTest, PrefillLogitsMatchReference) {
  auto model = load(model_dir());
  ASSERT_TRUE(model);
  const std::int64_t vocab = model->config().vocab_size;
  const auto all = prompts();
  for (std::size_t p = 0; p < all.size(); ++p) {
    const std::vector<float> want = read_floats(golden(fmt::format("logits_p{}.bin", p)));
    ASSERT_EQ(want.size(), all[p].size() * static_cast<std::size_t>(vocab));
    std::vector<float> got(want.size());
    sequence_state state = model->new_state(static_cast<std::int64_t>(all[p].size()));
    ASSERT_TRUE(model->forward(all[p], state, got.data(), logits_mode::all));
    EXPECT_LE(max_abs_diff(want.data(), got.data(), want.size()), tolerance) << GetParam() << " prompt " << p;
  }
}

TEST_P(GoldenTest, StepByStepLogitsMatchReference) {
  auto model = load(model_dir());
  ASSERT_TRUE(model);
  const std::int64_t vocab = model->config().vocab_size;
  const auto all = prompts();
  for (std::size_t p = 0; p < all.size(); ++p) {
    const std::vector<float> want = read_floats(golden(fmt::format("logits_p{}.bin", p)));
    sequence_state state = model->new_state(static_cast<std::int64_t>(all[p].size()));
    std::vector<float> row(static_cast<std::size_t>(vocab));
    float worst = 0.0f;
    for (std::size_t t = 0; t < all[p].size(); ++t) {
      ASSERT_TRUE(model->forward(std::span(all[p].data() + t, 1), state, row.data(), logits_mode::last));
      worst = std::max(worst, max_abs_diff(want.data() + t * static_cast<std::size_t>(vocab), row.data(), row.size()));
    }
    EXPECT_LE(worst, tolerance) << GetParam() << " prompt " << p;
  }
}

TEST_P(GoldenTest, GreedyContinuationMatchesReference) {
  auto model = load(model_dir());
  ASSERT_TRUE(model);
  const auto all = prompts();
  const nlohmann::json greedy = read_json(golden("greedy.json"));
  ASSERT_EQ(greedy.size(), all.size());
  for (const auto& entry : greedy) {
    const std::size_t p = entry["prompt_index"].get<std::size_t>();
    const auto want = entry["tokens"].get<std::vector<std::int32_t>>();
    generation_request request;
    request.prompt = all[p];
    request.max_tokens = static_cast<std::int64_t>(want.size());
    request.sampling.greedy = true;
    sequence_state state = model->new_state(static_cast<std::int64_t>(all[p].size() + want.size()));
    result<generation_result> out = generate(*model, state, request);
    ASSERT_TRUE(out) << out.err().message;
    EXPECT_EQ(out->tokens, want) << GetParam() << " prompt " << p;
    EXPECT_EQ(out->reason, finish_reason::length);
  }
}

TEST_P(GoldenTest, ChunkSizeDoesNotChangeLogits) {
  // Prompt 3 (200 tokens) through chunks of 7 tokens: state carried across many chunk boundaries.
  auto model = load(model_dir(), 7);
  ASSERT_TRUE(model);
  const auto all = prompts();
  const std::vector<float> want = read_floats(golden("logits_p3.bin"));
  std::vector<float> got(want.size());
  sequence_state state = model->new_state(static_cast<std::int64_t>(all[3].size()));
  ASSERT_TRUE(model->forward(all[3], state, got.data(), logits_mode::all));
  EXPECT_LE(max_abs_diff(want.data(), got.data(), want.size()), tolerance);
}

TEST_P(GoldenTest, LogitsDoNotDependOnHowThePromptIsChunked) {
  // Batch invariance, bit for bit: one chunk, chunks of 7, and one token at a time.
  const auto all = prompts();
  const std::vector<std::int32_t>& prompt = all[3];
  const std::size_t vocab_rows = prompt.size();
  std::vector<std::vector<float>> runs;
  for (const std::int64_t batch : {256, 7, 1}) {
    auto model = load(model_dir(), batch);
    ASSERT_TRUE(model);
    std::vector<float> logits(vocab_rows * static_cast<std::size_t>(model->config().vocab_size));
    sequence_state state = model->new_state(static_cast<std::int64_t>(prompt.size()));
    ASSERT_TRUE(model->forward(prompt, state, logits.data(), logits_mode::all));
    runs.push_back(std::move(logits));
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST_P(GoldenTest, BatchedSequencesGiveWhatEachGivesAlone) {
  // Three sequences at different lengths, in one pass with every logits mode, bit for bit against each
  // run alone; then a second pass on the states the first left (attention and DeltaNet memory kept apart).
  auto model = load(model_dir());
  ASSERT_TRUE(model);
  const auto all = prompts();
  const std::size_t vocab = static_cast<std::size_t>(model->config().vocab_size);
  const std::vector<std::int32_t> a(all[3].begin(), all[3].begin() + 40);
  const std::vector<std::int32_t> b(all[3].begin() + 100, all[3].begin() + 117);
  const std::vector<std::int32_t> c = {all[3][150]};
  const std::vector<std::int32_t> later = {7, 11, 13};
  const logits_mode modes[] = {logits_mode::all, logits_mode::none, logits_mode::last};
  std::vector<float> scratch(vocab * 64);

  // Alone: each sequence gets a different prefix first, so their positions differ.
  std::vector<float> alone;
  std::vector<float> alone_later;
  for (int i = 0; i < 3; ++i) {
    sequence_state state = model->new_state(128);
    const std::vector<std::int32_t> prefix(all[1].begin(), all[1].begin() + 3 * i);
    if (!prefix.empty()) {
      ASSERT_TRUE(model->forward(prefix, state, scratch.data(), logits_mode::none));
    }
    const std::vector<std::int32_t>& tokens = i == 0 ? a : i == 1 ? b : c;
    ASSERT_TRUE(model->forward(tokens, state, scratch.data(), modes[i]));
    const std::size_t rows = modes[i] == logits_mode::all ? tokens.size() : modes[i] == logits_mode::last ? 1 : 0;
    alone.insert(alone.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(rows * vocab));
    ASSERT_TRUE(model->forward(later, state, scratch.data(), logits_mode::last));
    alone_later.insert(alone_later.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(vocab));
  }

  std::vector<sequence_state> states;
  for (int i = 0; i < 3; ++i) {
    states.push_back(model->new_state(128));
    const std::vector<std::int32_t> prefix(all[1].begin(), all[1].begin() + 3 * i);
    if (!prefix.empty()) {
      ASSERT_TRUE(model->forward(prefix, states.back(), scratch.data(), logits_mode::none));
    }
  }
  const sequence_step steps[] = {{a, &states[0], modes[0]}, {b, &states[1], modes[1]}, {c, &states[2], modes[2]}};
  std::vector<float> together((a.size() + 1) * vocab);
  ASSERT_TRUE(model->forward_batch(steps, together.data()));
  EXPECT_EQ(together, alone);
  EXPECT_EQ(states[0].length(), 40);
  EXPECT_EQ(states[1].length(), 3 + 17);
  EXPECT_EQ(states[2].length(), 6 + 1);
  const sequence_step second[] = {{later, &states[2], logits_mode::last},
                                  {later, &states[0], logits_mode::last},
                                  {later, &states[1], logits_mode::last}};
  std::vector<float> next(3 * vocab);
  ASSERT_TRUE(model->forward_batch(second, next.data()));
  const auto row = [&](const std::vector<float>& v, std::size_t i) {
    return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(i * vocab),
                              v.begin() + static_cast<std::ptrdiff_t>((i + 1) * vocab));
  };
  EXPECT_EQ(row(next, 0), row(alone_later, 2));
  EXPECT_EQ(row(next, 1), row(alone_later, 0));
  EXPECT_EQ(row(next, 2), row(alone_later, 1));
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, GoldenTest, ::testing::Values("bf16", "fp8"));

TEST(Qwen3Next, RejectsBadTokensAndOverflowWithoutChangingState) {
  auto model = load(data_dir / "bf16");
  ASSERT_TRUE(model);
  sequence_state state = model->new_state(4);
  std::vector<float> logits(static_cast<std::size_t>(model->config().vocab_size));
  const std::vector<std::int32_t> bad = {1, static_cast<std::int32_t>(model->config().vocab_size)};
  result<void> r = model->forward(bad, state, logits.data(), logits_mode::last);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_EQ(state.length(), 0);
  const std::vector<std::int32_t> five = {1, 2, 3, 4, 5};
  r = model->forward(five, state, logits.data(), logits_mode::last);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("capacity"), std::string::npos);
  EXPECT_EQ(state.length(), 0);
}

TEST(Qwen3Next, CancellationStopsAndResetsTheState) {
  auto model = load(data_dir / "bf16");
  ASSERT_TRUE(model);
  std::stop_source source;
  source.request_stop();
  sequence_state state = model->new_state(8);
  const std::vector<std::int32_t> ids = {1, 2, 3};
  std::vector<float> logits(static_cast<std::size_t>(model->config().vocab_size));
  result<void> r = model->forward(ids, state, logits.data(), logits_mode::last, source.get_token());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::cancelled);
  EXPECT_EQ(state.length(), 0);
}

TEST(Qwen3Next, BatchRefusesBadStepsWithoutChangingAnyState) {
  auto model = load(data_dir / "bf16", 8);
  ASSERT_TRUE(model);
  EXPECT_EQ(model->max_batch(), 8);
  sequence_state one = model->new_state(16);
  sequence_state two = model->new_state(16);
  std::vector<float> logits(2 * static_cast<std::size_t>(model->config().vocab_size));
  const std::vector<std::int32_t> ids = {1, 2, 3, 4, 5};
  const std::vector<std::int32_t> none;
  const std::vector<std::int32_t> bad = {1, -1};
  const auto refused = [&](std::initializer_list<sequence_step> steps, std::string_view why) {
    result<void> r = model->forward_batch(std::span(steps.begin(), steps.size()), logits.data());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::invalid_argument);
    EXPECT_NE(r.err().message.find(why), std::string::npos) << r.err().message;
    EXPECT_EQ(one.length(), 0);
    EXPECT_EQ(two.length(), 0);
  };
  refused({{ids, &one, logits_mode::last}, {ids, &two, logits_mode::last}}, "more than the 8");
  refused({{ids, &one, logits_mode::last}, {ids, &one, logits_mode::last}}, "share a state");
  refused({{ids, &one, logits_mode::last}, {none, &two, logits_mode::last}}, "no tokens");
  refused({{ids, &one, logits_mode::last}, {bad, &two, logits_mode::last}}, "outside the vocabulary");
  refused({{ids, &one, logits_mode::last}, {ids, nullptr, logits_mode::last}}, "no state");

  std::stop_source source;
  source.request_stop();
  const std::vector<std::int32_t> three = {1, 2, 3};
  ASSERT_TRUE(model->forward(three, one, logits.data(), logits_mode::none));
  const sequence_step steps[] = {{three, &one, logits_mode::last}, {three, &two, logits_mode::last}};
  result<void> r = model->forward_batch(steps, logits.data(), source.get_token());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::cancelled);
  EXPECT_EQ(one.length(), 0);  // a cancelled pass resets every state it touched
  EXPECT_EQ(two.length(), 0);
}

TEST(Qwen3Next, ShardedCheckpointGivesIdenticalLogits) {
  // The same random model written as one file and as three shards + index: the logits must be bitwise
  // equal, FP8 included (scales may land in another shard than their weights).
  const fs::path root = fs::temp_directory_path() / "qcoder-sharded-logits-test";
  fs::remove_all(root);
  const std::vector<std::int32_t> ids = {5, 99, 1000, 7, 1500, 3};
  std::vector<std::vector<float>> outputs;
  for (int shards : {1, 3}) {
    make_model_options options;
    options.out_dir = root / fmt::format("shards-{}", shards);
    options.fp8 = true;
    options.layers = 4;
    options.shards = shards;
    options.seed = 77;
    result<make_model_summary> made = make_model(options);
    ASSERT_TRUE(made) << made.err().message;
    EXPECT_EQ(fs::exists(options.out_dir / "model.safetensors.index.json"), shards > 1);
    auto model = load(options.out_dir);
    ASSERT_TRUE(model);
    sequence_state state = model->new_state(static_cast<std::int64_t>(ids.size()));
    std::vector<float> logits(ids.size() * static_cast<std::size_t>(model->config().vocab_size));
    ASSERT_TRUE(model->forward(ids, state, logits.data(), logits_mode::all));
    outputs.push_back(std::move(logits));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  fs::remove_all(root);
}

}  // namespace
}  // namespace qcoder::engine
