// Inline completion, protocol-free: from a file's text and a cursor to cleaned completion text. Decides
// the mode from the tree (none / single line / multi-line), builds the FIM prompt with context's prompt
// builder, generates through the prefix cache, and cleans the stream with the completion filter, which
// stops generation as soon as the rest cannot be used.
//
// The model runs behind a text_backend (local or remote); the prompt, the mode and the cleaning stay here.
// Thread-safety: a completion_service belongs to one thread at a time (it holds the prompt builder's
// encoder); in the language server, the inference thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "context/completion_filter.h"
#include "context/prompt_builder.h"
#include "engine/tokenizer/tokenizer.h"
#include "service/text_backend.h"

namespace qcoder::service {

struct completion_request {
  std::string path;                       // relative or absolute; labels the file in the prompt
  std::optional<context::language> lang;  // nullopt: plain text
  std::string text;                       // the whole file as the editor has it
  std::size_t cursor = 0;                 // byte offset in text
  int alternatives = 1;                   // 1 (typing) or more (asked for): greedy first, then sampled
  std::int64_t max_tokens = 128;
  const context::workspace_index* index = nullptr;   // optional: definitions from other files
  const context::recent_snippets* recent = nullptr;  // optional: recently edited and viewed code
  // Called once the prompt is built, before the model runs (for timing).
  std::function<void()> on_prompt;
  // Called with the cleaned text of the first alternative so far, as it grows; return false to stop.
  std::function<bool(const std::string& text)> on_partial;
  std::stop_token stop;
};

struct completion_result {
  std::vector<std::string> items;  // distinct, non-empty
  context::completion_mode mode = context::completion_mode::none;
  std::string reason;              // why the mode, or why nothing
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;  // of the prompt, from the prefix cache
  std::size_t generated_tokens = 0;
  double prefill_seconds = 0;  // of the first alternative
  double decode_seconds = 0;   // of every alternative
  bool cancelled = false;
};

class completion_service {
 public:
  // Loads the tokenizer from the model's folder. Error when it or a FIM control token is missing.
  static result<std::unique_ptr<completion_service>> create(const std::filesystem::path& model_dir,
                                                            context::prompt_options options = {});
  // With a tokenizer already loaded. Error when a FIM control token is missing.
  static result<std::unique_ptr<completion_service>> create(std::shared_ptr<const engine::tokenizer> tok,
                                                            context::prompt_options options = {});

  result<completion_result> complete(text_backend& backend, const completion_request& request);

  const engine::tokenizer& tokenizer() const { return *tok_; }
  // Shared with the backends that decode through it.
  std::shared_ptr<const engine::tokenizer> shared_tokenizer() const { return tok_; }
  const context::prompt_options& prompt_options() const { return builder_.options(); }

 private:
  completion_service(std::shared_ptr<const engine::tokenizer> tok, context::prompt_builder builder);
  std::shared_ptr<const engine::tokenizer> tok_;
  context::prompt_builder builder_;
};

}  // namespace qcoder::service
