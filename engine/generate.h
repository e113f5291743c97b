// The decode loop: prefill a prompt, then sample token by token until a stop condition, streaming each
// token to a callback. Used by `qcoder generate`, the language server and the HTTP server.
// Runs on the calling thread (the inference thread), which must own the model and the state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "engine/prefill.h"
#include "engine/sampler.h"

namespace qcoder::engine {

enum class finish_reason { length, stop_token, stop_string, cancelled, callback };

// An output token's log-probability under the model (log-softmax of the raw logits, before any sampling
// transform) and the most likely alternatives at that step, best first.
struct token_logprob {
  std::int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<std::int32_t, float>> top;
};

const char* to_string(finish_reason reason);

struct generation_request {
  std::vector<std::int32_t> prompt;
  std::int64_t max_tokens = 128;
  sampling_params sampling;
  std::vector<std::int32_t> stop_ids;    // e.g. the model's eos ids; the stop token is not part of the output
  std::vector<std::string> stop_strings; // checked on the decoded bytes of the output; needs token_bytes
  // The bytes of one token (for stop strings). May be empty when there are no stop strings.
  std::function<std::string(std::int32_t)> token_bytes;
  // Called after each new token; return false to stop.
  std::function<bool(std::int32_t)> on_token;
  // ≥ 0: record each output token's log-probability and this many alternatives (at most 20); the record
  // goes to on_logprob (just before on_token) and to the result. -1: none.
  int top_logprobs = -1;
  std::function<void(const token_logprob&)> on_logprob;
  std::stop_token stop;
  // With a cache, the prompt is served from it where it can be (see prefill), and the finished request
  // (prompt + output) is inserted with its logits, so the next request that continues it starts warm.
  prefix_cache* cache = nullptr;
  prefill_plan plan;
  // Speculative decoding by prompt lookup (greedy sampling only; ignored otherwise): when the last tokens
  // of the output also occur in `lookup` (the prompt when empty), the tokens that follow them there are
  // drafted and checked in one forward pass. The output is exactly what plain decoding gives; drafting
  // backs off while drafts keep failing, so a text that copies nothing costs little more than plain.
  bool speculate = false;
  std::vector<std::int32_t> lookup;
};

struct generation_result {
  std::vector<std::int32_t> tokens;  // the new tokens (a stop string's tokens stay; `text_end` cuts it)
  finish_reason reason = finish_reason::length;
  std::size_t text_end = std::string::npos;  // with stop_string: bytes of output text before the match
  std::int64_t prompt_tokens_restored = 0;  // from the prefix cache
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  std::int64_t drafted = 0;         // speculative: draft tokens checked
  std::int64_t accepted = 0;        // of them, the ones the model agreed with
  std::int64_t forward_passes = 0;  // decode forwards (each checks one token, or a token and its drafts)
  std::vector<token_logprob> logprobs;  // with request.top_logprobs ≥ 0: one per token of `tokens`
};

// Drafts for speculative decoding: the tokens that follow the output's last few tokens where they also
// occur in a source text. Drafts widen while they are taken and back off (narrower, and skipping
// steps) while they are not. Exposed for tests.
class prompt_lookup {
 public:
  static constexpr std::size_t min_ngram = 2;
  static constexpr std::size_t max_ngram = 4;
  static constexpr std::int64_t max_width = 16;

  explicit prompt_lookup(std::span<const std::int32_t> source);
  // Up to `room` tokens to try after `history` (empty: none found, or backing off).
  std::vector<std::int32_t> draft(std::span<const std::int32_t> history, std::int64_t room);
  // How the last drafts fared: `agreed` of `drafted` were taken.
  void report(std::size_t drafted, std::size_t agreed);
  // Whether the last drafts were all taken (the next ones are likely to be too).
  bool confident() const { return confident_; }

 private:
  std::vector<std::int32_t> source_;
  std::size_t resume_ = 0;  // in source_: the token after the last drafts taken
  std::int64_t width_ = 4;
  int failures_ = 0;        // drafts refused in a row
  int cooldown_ = 0;        // steps to skip before drafting again
  bool confident_ = false;
};

// Runs the request on `state`. Without a cache the state should be empty or hold a prefix the prompt
// continues; with one its contents are replaced.
result<generation_result> generate(qwen3_next& model, sequence_state& state, const generation_request& request);

// Many generations decoded together (continuous batching). Each step runs one forward pass over the next
// tokens of every running sequence (its sampled token, and its drafts when it speculates), so each weight
// read serves all of them: decode reads the attention, DeltaNet, shared-expert and head weights once per
// step instead of once per sequence. A sequence's output is exactly what generate() gives it alone (the
// forward pass is batch invariant). A sequence joins after its prompt is prefilled alone (through the
// cache, like generate()) and leaves the step it finishes; the batch owns and reuses the states. With a
// prefill chunk, a prompt is computed that many tokens per step, between the decode passes, so a long
// prompt does not stall the sequences already decoding (each step then does one chunk of one prompt).
// Thread-safety: the thread that owns the model.
class generation_batch {
 public:
  struct finished {
    std::size_t ticket = 0;
    generation_result result;
  };

  // `prefill_chunk`: prompt tokens computed per step (0: a whole prompt at add()).
  explicit generation_batch(qwen3_next& model, std::int64_t prefill_chunk = 0);
  ~generation_batch();
  generation_batch(const generation_batch&) = delete;
  generation_batch& operator=(const generation_batch&) = delete;

  // Adds the request (prefilling its prompt now, or chunk by chunk in the steps to come); its result comes
  // from a later step(), under the returned ticket (one that is cancelled or done at once comes from the
  // next step()). Errors: an invalid request (a token id out of the vocabulary included), a failed
  // prefill (nothing is added).
  result<std::size_t> add(generation_request request);
  // Sequences not yet returned by step().
  std::size_t size() const;
  // One forward pass over every running sequence (split when they have more tokens than one pass takes),
  // and one prefill chunk; returns those that finished. Each request's stop token is checked before its
  // tokens join the pass. An error (an expert that could not be read) ends every sequence of the batch.
  result<std::vector<finished>> step();
  // Seconds the last step spent on its prefill chunk (the rest was decoding).
  double last_prefill_seconds() const { return last_prefill_seconds_; }

 private:
  struct sequence;
  // Runs the next chunk of the prompt with the least left to compute.
  result<void> prefill_step();
  qwen3_next& model_;
  std::int64_t prefill_chunk_ = 0;
  double last_prefill_seconds_ = 0;
  std::vector<std::unique_ptr<sequence>> running_;
  std::vector<std::unique_ptr<sequence_state>> spare_states_;
  std::vector<sequence_step> steps_;
  std::vector<float> rows_;
  std::size_t next_ticket_ = 0;
};

}  // namespace qcoder::engine
