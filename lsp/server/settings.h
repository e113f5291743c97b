// The server's settings: what the client may set through `initializationOptions` (at start) and
// `workspace/configuration` (section "qcoder", asked after `initialized` and again on
// `workspace/didChangeConfiguration`). Keys keep the editor's camelCase:
//
//   model, expertCacheRam, prefixCache      where the model is and its memory budgets (read at load only)
//   contextTokens                            prompt budget of a completion (tokens)
//   maxTokens, editMaxTokens                 generation limits of completions and of code actions
//   debounceMs                               longest the adaptive debounce waits before a typed request starts
//   rewriteInstruction                       the instruction of "Rewrite selection" when none is given
//   acceptIncompleteEdits                    apply an edit whose answer hit editMaxTokens
//   enable                                   per LSP languageId: {"markdown": false}; "*" sets the default
//
// A field of the wrong type is reported and ignored; the others still apply.
// Thread-safety: plain data. The server keeps one on the I/O thread and copies it into each job.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qcoder::lsp {

struct server_settings {
  std::string model;             // a folder; empty: the command line's or the Hugging Face cache's
  std::string expert_cache_ram;  // SIZE, auto or none; empty: the command line's
  std::string prefix_cache;      // SIZE, auto or none; empty: the command line's
  std::size_t context_tokens = 2048;
  std::int64_t max_tokens = 128;
  std::int64_t edit_max_tokens = 1024;
  std::chrono::milliseconds debounce{150};
  std::string rewrite_instruction = "Improve this code: make it clearer and simpler without changing what it does.";
  bool accept_incomplete_edits = false;
  std::map<std::string, bool, std::less<>> enable;  // languageId -> on/off; "*" the default

  // Whether completions and actions are on for a document of this LSP languageId (on unless turned off).
  bool enabled_for(std::string_view language_id) const;
};

// Applies the fields present in `j` (an object; anything else is one error) to `settings`. Returns one
// message per field that was ignored, naming it (e.g. "qcoder.maxTokens: expected an integer in 1..8192").
std::vector<std::string> apply_settings(const nlohmann::json& j, server_settings& settings);

}  // namespace qcoder::lsp
