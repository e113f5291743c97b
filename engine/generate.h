// The decode loop: prefill a prompt, then sample token by token until a stop condition, streaming each
// token to a callback. Used by `qcoder generate`, the language server and the HTTP server.
// Runs on the calling thread (the inference thread), which must own the model and the state.
#pragma once

#include <cstdint>
#include <functional>
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

}  // namespace qcoder::engine
