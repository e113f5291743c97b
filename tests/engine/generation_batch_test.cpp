// Continuous batching gives each sequence exactly what generate() gives it alone: plain and speculative
// requests, with right, wrong and partly right drafts, joining at different steps, one passes bigger
// than a forward pass takes, stop rules, and one sequence cancelled while the others go on.
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "engine/generate.h"
#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "tests/support/tiny_model.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

std::vector<std::vector<std::int32_t>> prompts() { return testing_support::golden_prompts(); }

std::unique_ptr<qwen3_next> load(const std::string& variant, std::int64_t max_batch) {
  model_options options;
  options.threads = 2;
  options.max_batch = max_batch;
  result<std::unique_ptr<qwen3_next>> loaded = qwen3_next::load(data_dir / variant, options);
  EXPECT_TRUE(loaded) << loaded.err().message;
  return loaded ? std::move(loaded).value() : nullptr;
}

generation_request greedy(const std::vector<std::int32_t>& prompt, std::int64_t max_tokens) {
  generation_request r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.greedy = true;
  return r;
}

generation_result alone(qwen3_next& model, const generation_request& request) {
  sequence_state state = model.new_state(static_cast<std::int64_t>(request.prompt.size()) + request.max_tokens + 1);
  result<generation_result> out = generate(model, state, request);
  EXPECT_TRUE(out) << out.err().message;
  return out ? std::move(out).value() : generation_result{};
}

// A mix of requests: plain; speculating on a text holding the answer (drafts taken); on the answer with
// every fourth token spoiled (taken in part); on the prompt only (mostly refused); with a stop id.
std::vector<generation_request> mixed_requests(qwen3_next& model) {
  const auto all = prompts();
  std::vector<generation_request> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::vector<std::int32_t> prompt(all[i].begin(), all[i].begin() + std::min<std::ptrdiff_t>(60, std::ssize(all[i])));
    const generation_result plain = alone(model, greedy(prompt, 30));
    out.push_back(greedy(prompt, 30));
    generation_request right = greedy(prompt, 30);
    right.speculate = true;
    right.lookup = prompt;
    right.lookup.insert(right.lookup.end(), plain.tokens.begin(), plain.tokens.end());
    out.push_back(right);
    generation_request spoiled = right;
    for (std::size_t j = prompt.size() + 3; j < spoiled.lookup.size(); j += 4) {
      spoiled.lookup[j] = (spoiled.lookup[j] + 1) % static_cast<std::int32_t>(model.config().vocab_size);
    }
    out.push_back(spoiled);
    generation_request own = greedy(prompt, 12 + static_cast<std::int64_t>(i));
    own.speculate = true;
    out.push_back(own);
    generation_request stopped = right;
    stopped.stop_ids = {plain.tokens[17]};
    out.push_back(stopped);
  }
  return out;
}

void expect_same(const generation_result& got, const generation_result& want, std::size_t which) {
  EXPECT_EQ(got.tokens, want.tokens) << "request " << which;
  EXPECT_EQ(got.reason, want.reason) << "request " << which;
  EXPECT_EQ(got.drafted, want.drafted) << "request " << which;
  EXPECT_EQ(got.accepted, want.accepted) << "request " << which;
  EXPECT_EQ(got.forward_passes, want.forward_passes) << "request " << which;
}

class GenerationBatch : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerationBatch, EachSequenceGetsWhatItGetsAlone) {
  // max_batch 24: a step of many speculating sequences is split over several passes.
  auto model = load(GetParam(), 24);
  ASSERT_TRUE(model);
  const std::vector<generation_request> requests = mixed_requests(*model);
  std::vector<generation_result> want;
  for (const generation_request& r : requests) want.push_back(alone(*model, r));
  std::int64_t accepted = 0;
  for (const generation_result& w : want) accepted += w.accepted;
  ASSERT_GT(accepted, 20) << "the mix should take drafts";

  // Up to six at a time; new ones join as others finish, and two join mid-way through others.
  generation_batch batch(*model);
  std::map<std::size_t, std::size_t> request_of;  // ticket → request
  std::map<std::size_t, generation_result> got;
  std::size_t next = 0;
  std::size_t steps = 0;
  while (got.size() < requests.size()) {
    while (next < requests.size() && batch.size() < (steps % 3 == 1 ? 6u : 4u)) {
      result<std::size_t> ticket = batch.add(requests[next]);
      ASSERT_TRUE(ticket) << ticket.err().message;
      request_of[*ticket] = next++;
    }
    result<std::vector<generation_batch::finished>> done = batch.step();
    ASSERT_TRUE(done) << done.err().message;
    ++steps;
    for (generation_batch::finished& f : *done) got[request_of.at(f.ticket)] = std::move(f.result);
    ASSERT_LT(steps, 1000u);
  }
  EXPECT_EQ(batch.size(), 0u);
  for (std::size_t i = 0; i < requests.size(); ++i) expect_same(got.at(i), want[i], i);
}

TEST_P(GenerationBatch, ALongPromptIsPrefilledInChunksWhileOthersDecode) {
  // Chunks of 7 tokens per step: prompt 3 (200 tokens) takes ~29 steps to fill, while a short request
  // added after it decodes all its tokens; everyone gets what they get alone, through the prefix cache too.
  auto model = load(GetParam(), 64);
  ASSERT_TRUE(model);
  const auto all = prompts();
  prefix_cache cache(model->config(), prefix_cache_options{16u << 20});
  generation_request long_one = greedy(all[3], 6);
  long_one.cache = &cache;
  generation_request short_one = greedy(std::vector<std::int32_t>(all[1].begin(), all[1].begin() + 5), 8);
  short_one.cache = &cache;
  const generation_result long_alone = alone(*model, long_one);
  const generation_result short_alone = alone(*model, short_one);

  prefix_cache fresh(model->config(), prefix_cache_options{16u << 20});
  long_one.cache = &fresh;
  short_one.cache = &fresh;
  generation_batch batch(*model, 7);
  ASSERT_TRUE(batch.add(long_one));
  ASSERT_TRUE(batch.add(short_one));
  std::vector<std::size_t> order;
  std::map<std::size_t, generation_result> got;
  bool saw_prefill = false;
  for (int steps = 0; batch.size() > 0 && steps < 200; ++steps) {
    result<std::vector<generation_batch::finished>> done = batch.step();
    ASSERT_TRUE(done) << done.err().message;
    saw_prefill = saw_prefill || batch.last_prefill_seconds() > 0;
    for (generation_batch::finished& f : *done) {
      order.push_back(f.ticket);
      got[f.ticket] = std::move(f.result);
    }
  }
  EXPECT_TRUE(saw_prefill);
  ASSERT_EQ(order, (std::vector<std::size_t>{1, 0})) << "the short request should not wait for the long prompt";
  expect_same(got.at(0), long_alone, 0);
  expect_same(got.at(1), short_alone, 1);
  EXPECT_EQ(got.at(0).prompt_tokens_restored, 0);
  // The same long prompt again: restored from the cache the chunks filled.
  ASSERT_TRUE(batch.add(long_one));
  while (batch.size() > 0) {
    result<std::vector<generation_batch::finished>> done = batch.step();
    ASSERT_TRUE(done);
    for (generation_batch::finished& f : *done) {
      EXPECT_EQ(f.result.tokens, long_alone.tokens);
      EXPECT_GT(f.result.prompt_tokens_restored, 150);
    }
  }
}

TEST_P(GenerationBatch, ACancelledSequenceLeavesAndTheOthersGoOn) {
  auto model = load(GetParam(), 64);
  ASSERT_TRUE(model);
  const auto all = prompts();
  const generation_request first = greedy(all[0], 20);
  const generation_request third = greedy(all[2], 20);
  std::stop_source cancel;
  generation_request second = greedy(all[1], 20);
  second.stop = cancel.get_token();

  generation_batch batch(*model);
  ASSERT_TRUE(batch.add(first));
  ASSERT_TRUE(batch.add(second));
  ASSERT_TRUE(batch.add(third));
  std::map<std::size_t, generation_result> got;
  for (int i = 0; i < 5; ++i) {
    result<std::vector<generation_batch::finished>> done = batch.step();
    ASSERT_TRUE(done);
    EXPECT_TRUE(done->empty());
  }
  cancel.request_stop();
  result<std::vector<generation_batch::finished>> done = batch.step();
  ASSERT_TRUE(done);
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].ticket, 1u);
  EXPECT_EQ((*done)[0].result.reason, finish_reason::cancelled);
  // Five steps ran five tokens and sampled a sixth, which already reached the caller: its pass runs, then
  // the stop is seen before a seventh is sampled.
  EXPECT_EQ((*done)[0].result.tokens.size(), 6u);
  while (batch.size() > 0) {
    done = batch.step();
    ASSERT_TRUE(done);
    for (generation_batch::finished& f : *done) got[f.ticket] = std::move(f.result);
  }
  expect_same(got.at(0), alone(*model, first), 0);
  expect_same(got.at(2), alone(*model, third), 2);
}

TEST_P(GenerationBatch, RefusesABadRequestAndAddsNothing) {
  auto model = load(GetParam(), 64);
  ASSERT_TRUE(model);
  generation_batch batch(*model);
  result<std::size_t> empty = batch.add(greedy({}, 4));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.err().code, errc::invalid_argument);
  result<std::size_t> bad = batch.add(greedy({1, -3}, 4));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  EXPECT_EQ(batch.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, GenerationBatch, ::testing::Values("bf16", "fp8"));

}  // namespace
}  // namespace qcoder::engine
