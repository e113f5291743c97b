// Edits, protocol-free: rewrite a range of a file following an instruction, with the model. Every code
// action is one of these: rewrite the selection (the user's instruction), complete the function at the
// cursor, document it, or fix a diagnostic. Each picks the range it rewrites from the tree, asks the model
// (chat format, the file around the range as context, the answer opened as a fenced block so the reply is
// code) and returns the new text of the range plus the minimal replacements that produce it.
//
// An answer cut off by the token limit is an error unless the request accepts incomplete answers: applying
// half a function over a whole one loses code.
//
// Thread-safety: an edit_service belongs to the inference thread, like the completion_service it runs
// the model through.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "context/document.h"
#include "engine/generate.h"
#include "engine/tokenizer/stream_decoder.h"
#include "service/completion.h"
#include "service/text_diff.h"

namespace qcoder::service {

enum class edit_kind { rewrite, complete_body, document, fix };
std::string_view to_string(edit_kind kind);  // "rewrite", "complete", "document", "fix"
std::optional<edit_kind> edit_kind_from(std::string_view name);

struct edit_request {
  std::string path;
  std::optional<context::language> lang;
  std::string text;            // the whole file
  std::size_t begin = 0;       // byte offsets: the selection (rewrite), the diagnostic (fix), the cursor (others)
  std::size_t end = 0;
  edit_kind kind = edit_kind::rewrite;
  std::string instruction;     // rewrite: what to do; fix: the diagnostic's message
  std::int64_t max_tokens = 1024;
  std::size_t context_tokens = 1536;  // about this much of the file around the range goes in the prompt
  bool accept_incomplete = false;     // apply an answer cut off by max_tokens
  std::function<void(std::size_t generated_tokens)> on_progress;
  std::stop_token stop;
};

// The range an edit rewrites (whole lines) and the instruction the model gets.
struct edit_target {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::string instruction;
  std::string subject;  // e.g. "function parse_args", for titles and messages
};

// Errors: invalid_argument when the range is out of the text, not_found when the kind needs an enclosing
// function (complete, document) and there is none.
result<edit_target> find_edit_target(const context::source_view& src, const edit_request& request);

// The chat prompt for `target` (control tokens spelled out; encode with encode_prompt). It ends inside an
// opened fenced block, so the model's reply starts with the code.
std::string edit_prompt(const context::source_view& src, const edit_request& request, const edit_target& target);

// The code in a reply that started inside an opened fence: everything up to the closing fence line.
// `closed` says whether the fence was closed (the answer is complete). The result ends with a newline
// when `original` did.
std::string extract_code(std::string_view reply, std::string_view original, bool* closed = nullptr);

// The reply to a prompt that ends inside an opened fence (edit_prompt, the refactor's prompts), decoded as
// it streams: push() each token (from generation_request::on_token) or push_text() each piece of text
// (from text_generation::on_text) — false once the fence is closed, so generation stops there — then code()
// once generation ended.
class fenced_reply {
 public:
  explicit fenced_reply(const engine::tokenizer& tok) : decoder_(tok, /*skip_added=*/true) {}
  bool push(std::int32_t id);
  bool push_text(std::string_view text);
  // The code up to the closing fence, ending with a newline when `original` did. `complete`: the fence
  // was closed, or the model ended on its own (not cut off at the token limit).
  std::string code(std::string_view original, engine::finish_reason reason, bool* complete);

 private:
  engine::stream_decoder decoder_;
  std::string reply_, piece_;
};

struct edit_result {
  edit_target target;
  std::string replacement;                 // the new text of [target.begin, target.end)
  std::vector<text_replacement> edits;     // minimal, in offsets of the whole file
  bool cancelled = false;
  bool complete = true;                    // the model closed its answer (not cut by max_tokens)
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;
  std::size_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

class edit_service {
 public:
  // Encodes prompts with `runner`'s tokenizer; `runner` must outlive this.
  explicit edit_service(completion_service& runner);

  result<edit_result> edit(text_backend& backend, const edit_request& request);

 private:
  completion_service& runner_;
};

// What the inference thread keeps for the language server's features: completions and edits sharing one
// tokenizer.
struct assistant {
  std::unique_ptr<completion_service> completions;
  std::unique_ptr<edit_service> edits;

  static result<std::unique_ptr<assistant>> create(std::shared_ptr<const engine::tokenizer> tok,
                                                   context::prompt_options options = {});
};

}  // namespace qcoder::service
