// Speculative decoding by prompt lookup gives exactly the tokens of plain greedy decoding — whether the
// drafts are right (taken, fewer forward passes) or wrong (taken back) — and leaves the sequence state
// exactly as plain decoding does, on the tiny checkpoints.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "engine/generate.h"
#include "engine/model/qwen3_next.h"
#include "tests/support/tiny_model.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

std::vector<std::vector<std::int32_t>> prompts() { return testing_support::golden_prompts(); }

struct run_result {
  generation_result out;
  std::vector<float> next_logits;  // logits of one more token run on the final state: the state's fingerprint
  std::int64_t length = 0;
};

run_result run(qwen3_next& model, generation_request request) {
  sequence_state state = model.new_state(static_cast<std::int64_t>(request.prompt.size()) + request.max_tokens + 2);
  result<generation_result> out = generate(model, state, request);
  EXPECT_TRUE(out) << out.err().message;
  run_result r;
  r.out = std::move(out).value();
  r.length = state.length();
  r.next_logits.resize(static_cast<std::size_t>(model.config().vocab_size));
  const std::int32_t probe[] = {5};
  EXPECT_TRUE(model.forward(probe, state, r.next_logits.data(), logits_mode::last));
  return r;
}

class Speculative : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_options options;
    options.threads = 2;
    result<std::unique_ptr<qwen3_next>> loaded = qwen3_next::load(data_dir / GetParam(), options);
    ASSERT_TRUE(loaded) << loaded.err().message;
    model_ = std::move(loaded).value();
  }
  generation_request request(const std::vector<std::int32_t>& prompt, std::int64_t max_tokens) const {
    generation_request r;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.greedy = true;
    return r;
  }
  std::unique_ptr<qwen3_next> model_;
};

TEST_P(Speculative, RightDraftsAreTakenAndTheOutputIsPlainDecodings) {
  for (const auto& prompt : prompts()) {
    const run_result plain = run(*model_, request(prompt, 40));
    ASSERT_EQ(plain.out.tokens.size(), 40u);
    // Drafts from a text that holds the answer: the prompt followed by what plain decoding wrote.
    generation_request fast = request(prompt, 40);
    fast.speculate = true;
    fast.lookup = prompt;
    fast.lookup.insert(fast.lookup.end(), plain.out.tokens.begin(), plain.out.tokens.end());
    const run_result spec = run(*model_, fast);
    EXPECT_EQ(spec.out.tokens, plain.out.tokens);
    EXPECT_EQ(spec.out.reason, plain.out.reason);
    EXPECT_EQ(spec.length, plain.length);
    EXPECT_EQ(spec.next_logits, plain.next_logits) << "the state after speculation differs";
    EXPECT_GT(spec.out.accepted, 20);
    EXPECT_LT(spec.out.forward_passes, plain.out.forward_passes / 2);
  }
}

TEST_P(Speculative, WrongDraftsAreTakenBackAndTheOutputIsPlainDecodings) {
  const auto all = prompts();
  for (const auto& prompt : {all[0], all[2]}) {
    const run_result plain = run(*model_, request(prompt, 24));
    // Drafts from the prompt (a random model does not copy it), and from pairs of the answer's tokens each
    // followed by a wrong one: a draft is found at every step, and its first token is always refused.
    const std::vector<std::int32_t>& o = plain.out.tokens;
    std::vector<std::int32_t> shifted;
    for (std::size_t i = 0; i + 2 < o.size(); ++i) {
      shifted.insert(shifted.end(), {o[i], o[i + 1], static_cast<std::int32_t>((o[i + 2] + 1) % model_->config().vocab_size)});
    }
    for (const std::vector<std::int32_t>& lookup : {std::vector<std::int32_t>{}, shifted}) {
      generation_request spec_request = request(prompt, 24);
      spec_request.speculate = true;
      spec_request.lookup = lookup;
      const run_result spec = run(*model_, spec_request);
      EXPECT_EQ(spec.out.tokens, plain.out.tokens);
      EXPECT_EQ(spec.length, plain.length);
      EXPECT_EQ(spec.next_logits, plain.next_logits) << "the state after taking drafts back differs";
      EXPECT_LE(spec.out.accepted, spec.out.drafted);
    }
    // The answer with every fifth token changed: runs of right drafts end in a wrong one, so drafts are
    // taken in part and the rest taken back, also on the path that runs a token with its drafts.
    std::vector<std::int32_t> spoiled = prompt;
    for (std::size_t i = 0; i < o.size(); ++i) {
      spoiled.push_back(i % 5 == 4 ? static_cast<std::int32_t>((o[i] + 1) % model_->config().vocab_size) : o[i]);
    }
    generation_request spoiled_request = request(prompt, 24);
    spoiled_request.speculate = true;
    spoiled_request.lookup = spoiled;
    const run_result partly = run(*model_, spoiled_request);
    EXPECT_EQ(partly.out.tokens, plain.out.tokens);
    EXPECT_EQ(partly.next_logits, plain.next_logits);
    EXPECT_GT(partly.out.accepted, 0);
    EXPECT_LT(partly.out.accepted, partly.out.drafted);
    generation_request shifted_request = request(prompt, 24);
    shifted_request.speculate = true;
    shifted_request.lookup = shifted;
    const run_result refused = run(*model_, shifted_request);
    EXPECT_GT(refused.out.drafted, 0);
    EXPECT_EQ(refused.out.accepted, 0) << "a wrong draft was taken";
  }
}

TEST_P(Speculative, StopsInsideTakenDraftsEndWhereTheyWouldHave) {
  const auto all = prompts();
  const std::vector<std::int32_t>& prompt = all[1];
  const run_result full = run(*model_, request(prompt, 40));
  std::vector<std::int32_t> lookup = prompt;
  lookup.insert(lookup.end(), full.out.tokens.begin(), full.out.tokens.end());
  // A callback that ends at the 13th token, a stop id at the 21st, and a token limit of 17.
  const auto with = [&](bool speculate, const std::function<void(generation_request&)>& change) {
    generation_request r = request(prompt, 40);
    r.speculate = speculate;
    r.lookup = lookup;
    change(r);
    return run(*model_, r);
  };
  const std::vector<std::function<void(generation_request&)>> endings = {
      [](generation_request& r) {
        auto n = std::make_shared<int>(0);
        r.on_token = [n](std::int32_t) { return ++*n < 13; };
      },
      [&](generation_request& r) { r.stop_ids = {full.out.tokens[20]}; },
      [](generation_request& r) { r.max_tokens = 17; },
  };
  for (const auto& ending : endings) {
    const run_result plain = with(false, ending);
    const run_result spec = with(true, ending);
    EXPECT_EQ(spec.out.tokens, plain.out.tokens);
    EXPECT_EQ(spec.out.reason, plain.out.reason);
    EXPECT_EQ(spec.length, plain.length);
    EXPECT_EQ(spec.next_logits, plain.next_logits);
    EXPECT_GT(spec.out.accepted, 0);
  }
}

TEST_P(Speculative, ARepetitionPenaltyAndLogprobsComeOutAsInPlainDecoding) {
  // The penalty changes the logits in place; checking a draft must not apply it twice. Logprobs are of the
  // raw logits, so they too must not depend on how the tokens were found.
  const auto all = prompts();
  for (const auto& prompt : {all[0], all[2]}) {
    generation_request base = request(prompt, 30);
    base.sampling.repetition_penalty = 1.3f;
    base.top_logprobs = 3;
    const run_result plain = run(*model_, base);
    generation_request fast = base;
    fast.speculate = true;
    fast.lookup = prompt;
    fast.lookup.insert(fast.lookup.end(), plain.out.tokens.begin(), plain.out.tokens.end());
    const run_result spec = run(*model_, fast);
    EXPECT_EQ(spec.out.tokens, plain.out.tokens);
    EXPECT_GT(spec.out.accepted, 0);
    ASSERT_EQ(plain.out.logprobs.size(), plain.out.tokens.size());
    ASSERT_EQ(spec.out.logprobs.size(), spec.out.tokens.size());
    for (std::size_t i = 0; i < plain.out.logprobs.size(); ++i) {
      const token_logprob& p = plain.out.logprobs[i];
      EXPECT_EQ(p.id, plain.out.tokens[i]);
      EXPECT_EQ(p.logprob, spec.out.logprobs[i].logprob);
      EXPECT_EQ(p.top, spec.out.logprobs[i].top);
      ASSERT_EQ(p.top.size(), 3u);
      EXPECT_LE(p.logprob, 0.0f);
      EXPECT_LE(p.logprob, p.top[0].second);  // the penalty may pick another token than the raw argmax
      EXPECT_GE(p.top[0].second, p.top[1].second);
      EXPECT_GE(p.top[1].second, p.top[2].second);
      EXPECT_LE(std::exp(p.top[0].second) + std::exp(p.top[1].second) + std::exp(p.top[2].second), 1.0001f);
    }
  }
}

TEST_P(Speculative, LogprobsAreTheRawDistribution) {
  // Greedy without a penalty: the token is the raw argmax, so its logprob is the top alternative's.
  const auto all = prompts();
  generation_request r = request(all[1], 12);
  r.top_logprobs = 2;
  std::vector<token_logprob> streamed;
  r.on_logprob = [&](const token_logprob& l) { streamed.push_back(l); };
  const run_result out = run(*model_, r);
  ASSERT_EQ(out.out.logprobs.size(), 12u);
  ASSERT_EQ(streamed.size(), 12u);
  for (std::size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(out.out.logprobs[i].top[0].first, out.out.tokens[i]);
    EXPECT_EQ(out.out.logprobs[i].top[0].second, out.out.logprobs[i].logprob);
    EXPECT_EQ(streamed[i].logprob, out.out.logprobs[i].logprob);
  }
  r.top_logprobs = -1;
  EXPECT_TRUE(run(*model_, r).out.logprobs.empty());
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, Speculative, ::testing::Values("bf16", "fp8"));

TEST(PromptLookup, DraftsWhatFollowsAndBacksOffWhenRefused) {
  const std::vector<std::int32_t> source = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  prompt_lookup lookup(source);
  const std::vector<std::int32_t> history = {9, 9, 2, 3};
  EXPECT_EQ(lookup.draft(history, 100), (std::vector<std::int32_t>{4, 5, 6, 7}));  // width 4 to start
  lookup.report(4, 4);                                                          // all taken: wider
  EXPECT_EQ(lookup.draft(std::vector<std::int32_t>{2, 3, 4, 5, 6, 7, 8}, 100),
            (std::vector<std::int32_t>{9, 10, 11, 12}));  // continues where it left off, to the end
  EXPECT_EQ(lookup.draft(history, 2), (std::vector<std::int32_t>{4, 5}));  // no more than the room left
  lookup.report(2, 0);  // refused: skip a step, then draft again
  EXPECT_TRUE(lookup.draft(history, 100).empty());
  EXPECT_FALSE(lookup.draft(history, 100).empty());
  lookup.report(2, 0);  // refused again: skip three
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(lookup.draft(history, 100).empty()) << i;
  EXPECT_FALSE(lookup.draft(history, 100).empty());
  EXPECT_TRUE(lookup.draft(std::vector<std::int32_t>{42, 43}, 100).empty());  // not in the source
  EXPECT_TRUE(lookup.draft(std::vector<std::int32_t>{3}, 100).empty());       // too short to match
}

TEST(SequenceState, RollbackRestoresTheRecurrentMemoryAndLength) {
  model_options options;
  options.threads = 1;
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(data_dir / "bf16", options);
  ASSERT_TRUE(model);
  sequence_state a = (*model)->new_state(64);
  sequence_state b = (*model)->new_state(64);
  const std::int32_t first[] = {3, 4, 5};
  const std::int32_t more[] = {6, 7};
  std::vector<float> la(static_cast<std::size_t>((*model)->config().vocab_size)), lb(la.size());
  ASSERT_TRUE((*model)->forward(first, a, la.data(), logits_mode::last));
  ASSERT_TRUE((*model)->forward(first, b, lb.data(), logits_mode::last));
  sequence_state::rollback_point point;
  a.save(point);
  ASSERT_TRUE((*model)->forward(more, a, la.data(), logits_mode::last));
  a.restore(point);
  EXPECT_EQ(a.length(), 3);
  const std::int32_t probe[] = {8};
  ASSERT_TRUE((*model)->forward(probe, a, la.data(), logits_mode::last));
  ASSERT_TRUE((*model)->forward(probe, b, lb.data(), logits_mode::last));
  EXPECT_EQ(la, lb);
}

}  // namespace
}  // namespace qcoder::engine
