// Assembles a fill-in-the-middle prompt for the cursor within a token budget, in Qwen's repo-level format:
//
//   <|repo_name|>NAME\n                                        repo          (stable for the session)
//   <|file_sep|>PATH\nSIGNATURES...                            imports       (definitions of imported names)
//   <|file_sep|>PATH\nSNIPPETS...                              used          (names used near the cursor)
//   <|file_sep|>PATH\nTEXT                                     snippet       (recently viewed, then edited)
//   <|file_sep|>PATH\n<|fim_prefix|>                           file
//   SCOPE HEADERS (when the prefix starts inside them)         scope
//   PREFIX                                                     prefix        (up to the cursor's line)
//   <|fim_suffix|>SUFFIX<|fim_middle|>                         suffix
//   THE CURSOR'S LINE UP TO THE CURSOR                         middle
//
// Blocks run from most to least stable, and each block's text depends only on its own sources: the
// imports block on the file's imports and the index, never on the cursor (it has a fixed share of the
// budget and is chosen first), so consecutive requests share the longest token prefix and the prefix
// cache downstream can reuse it. The prefix starts and the suffix ends at statement boundaries from the
// tree (line boundaries for plain text). The cursor's line up to the cursor comes last, after
// <|fim_middle|>, as the start of the answer: typing on a line then changes only the prompt's last few
// tokens, and the prefix cache holds the suffix that used to follow each keystroke (a very long line, or
// `chat`, keeps it in the prefix). With `chat`, the same text is wrapped in a chat turn.
//
// Budgets are exact: every block is encoded (document text with added tokens disabled, so file content
// cannot forge a control token; the control tokens by their text) and the prompt's ids are the blocks' ids
// concatenated. The sum never exceeds budget_tokens.
//
// Thread-safety: a builder holds an encoder (a word cache), so it belongs to one thread at a time; the
// index and the snippet ring it reads are thread-safe. Build one builder per worker thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "context/document.h"
#include "context/recent_snippets.h"
#include "context/workspace_index.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/common/result.h"

namespace qcoder::context {

struct prompt_options {
  std::size_t budget_tokens = 2048;
  double prefix_share = 0.35;   // at most this share of the budget before the cursor
  double suffix_share = 0.10;   // at most this share after it (the suffix is kept shorter)
  double imports_share = 0.45;  // at most this share for definitions of imported names
  double related_share = 0.25;  // kept from the prefix for definitions of names used near the cursor
  std::size_t near_lines_before = 60;  // "near the cursor": the lines searched for used names (at least;
  std::size_t near_lines_after = 10;   // the whole enclosing function, up to 200 lines, when longer)
  std::size_t full_snippets = 3;  // the nearest used names get a snippet; the rest their signatures
  bool chat = false;              // wrap the prompt in a chat turn (<|im_start|>user ... assistant)
  std::string repo_name = "workspace";
};

enum class block_kind { chat_open, repo, imports, used, snippet, file, scope, prefix, suffix, middle, chat_close };
std::string_view to_string(block_kind kind);

struct prompt_block {
  block_kind kind;
  std::string name;  // e.g. "imports src/util.py"
  std::string text;  // with the control tokens spelled out
  std::size_t tokens = 0;
};

struct prompt {
  std::string text;  // every block's text, in order
  std::vector<engine::token_id> ids;
  std::vector<prompt_block> blocks;
  std::size_t budget = 0;
  std::size_t tokens() const { return ids.size(); }
};

struct prompt_request {
  source_view source;  // the file being edited; its path relative to the index root
  std::size_t cursor = 0;  // byte offset in source.text
  const workspace_index* index = nullptr;   // optional
  const recent_snippets* recent = nullptr;  // optional
};

class prompt_builder {
 public:
  // Error when the tokenizer lacks one of the control tokens the format needs.
  static result<prompt_builder> create(const engine::tokenizer& tok, prompt_options options = {});

  result<prompt> build(const prompt_request& request);
  const prompt_options& options() const { return options_; }

  // Tokens of `text` as document content (for callers that budget their own pieces).
  std::size_t count_tokens(std::string_view text);

 private:
  struct piece {
    bool control;  // a control token by its text, else document text
    std::string text;
  };
  prompt_builder(const engine::tokenizer& tok, prompt_options options);
  prompt_block make_block(block_kind kind, std::string name, const std::vector<piece>& pieces,
                          std::vector<engine::token_id>* ids);

  const engine::tokenizer* tok_;
  engine::encoder encoder_;
  prompt_options options_;
};

}  // namespace qcoder::context
