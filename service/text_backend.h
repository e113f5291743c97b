// Where the assistant's generations run: the model on this machine (engine_backend) or an OpenAI-compatible
// server elsewhere (remote_backend: vLLM, SGLang, llama-server, another `qcoder serve`). The services
// (completions, edits, the refactor) build their prompts as token ids with the local tokenizer, read the
// output as text and post-process it themselves, so everything but the forward passes stays local and
// behaves the same over either backend.
//
// A remote prompt goes as token ids by default (the OpenAI API's array-of-integers prompt, which vLLM,
// SGLang, llama-server and `qcoder serve` take): the server sees exactly the tokens the local model would,
// so a greedy answer is the same, and a control token's text inside the user's own code ("<|im_start|>"
// in a string literal) stays text. For a server that does not take ids, or runs another tokenizer, the
// prompt can go as text instead: the ids decoded back with the control tokens spelled out (the raw FIM
// or chat prompt), tokenized again by the server; the tokens may then differ where we encoded pieces
// apart, and control-token texts in the code become control tokens.
//
// Thread-safety: an engine_backend belongs to the inference thread that owns its model. A remote_backend's
// generate() may run on several threads at once (each call is its own connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "engine/generate.h"
#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "engine/tokenizer/tokenizer.h"
#include "service/remote_completions.h"

namespace qcoder::service {

struct text_generation {
  std::vector<std::int32_t> prompt;
  std::int64_t max_tokens = 128;
  engine::sampling_params sampling;
  // Called as the output grows, with the new text (control tokens never in it); return false to stop.
  // Locally once per token (the piece is empty while a character is incomplete), remotely once per text
  // delta the server sends (usually a token each; empty while what may be a control token's text is held
  // back). Added tokens are left out either way.
  std::function<bool(std::string_view piece)> on_text;
  std::stop_token stop;
  // Local only: where the prefix cache should keep snapshots, and speculative decoding by prompt lookup.
  std::vector<std::int64_t> snapshot_at;
  bool speculate = false;
  std::vector<std::int32_t> lookup;
};

struct text_generated {
  // length, stop_token (the model ended its answer), callback (on_text said stop) or cancelled.
  engine::finish_reason reason = engine::finish_reason::length;
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;  // of the prompt, from a prefix cache (the server's, when it says)
  std::size_t generated_tokens = 0;
  double prefill_seconds = 0;  // remote: to the first text
  double decode_seconds = 0;   // remote: from the first text to the end
  std::int64_t drafted = 0;    // speculative decoding (local)
  std::int64_t accepted = 0;
  std::int64_t forward_passes = 0;
};

class text_backend {
 public:
  virtual ~text_backend() = default;
  // Errors: the backend's (an expert that could not be read; a server that is down, busy, or refused the
  // request: errc::unavailable). A cancelled generation is not an error: reason == cancelled.
  virtual result<text_generated> generate(const text_generation& request) = 0;
  // For status bars: the expert cache's hit rate so far, where there is one.
  virtual std::optional<double> expert_hit_rate() const { return std::nullopt; }
  // Where generations go, for messages: "the local model" or the server's URL.
  virtual std::string where() const = 0;
};

// The tokens that end a generation in our prompt formats: end of text and the FIM/chat control tokens that
// start a new part (the model moving on to another file or turn).
std::vector<std::int32_t> control_stop_ids(const engine::tokenizer& tok);

class engine_backend final : public text_backend {
 public:
  // `model` and `cache` (may be null) must outlive this.
  engine_backend(std::shared_ptr<const engine::tokenizer> tok, engine::qwen3_next& model, engine::prefix_cache* cache);

  result<text_generated> generate(const text_generation& request) override;
  std::optional<double> expert_hit_rate() const override;
  std::string where() const override { return "the local model"; }

  // For the callers that batch (the refactor's rewriter): the model, the cache, and the stop ids
  // generate() adds to a request.
  engine::qwen3_next& model() { return model_; }
  engine::prefix_cache* cache() { return cache_; }
  void add_stop_ids(engine::generation_request& request) const;
  // The token-level generation generate() wraps, on the backend's own sequence state.
  result<engine::generation_result> generate_tokens(engine::generation_request request);

 private:
  std::shared_ptr<const engine::tokenizer> tok_;
  engine::qwen3_next& model_;
  engine::prefix_cache* cache_;
  std::vector<std::int32_t> stop_ids_;
  std::optional<engine::sequence_state> state_;  // grown as prompts need; the prefix cache overwrites it
};

enum class remote_prompt { tokens, text };

class remote_backend final : public text_backend {
 public:
  remote_backend(std::shared_ptr<const engine::tokenizer> tok, std::unique_ptr<remote_completions> client,
                 remote_prompt form = remote_prompt::tokens);

  result<text_generated> generate(const text_generation& request) override;
  std::string where() const override;
  remote_completions& client() { return *client_; }

 private:
  std::shared_ptr<const engine::tokenizer> tok_;
  std::unique_ptr<remote_completions> client_;
  remote_prompt form_;
  std::vector<std::string> stop_texts_;  // the control tokens' texts: stop strings for the server
};

}  // namespace qcoder::service
