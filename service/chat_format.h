// The OpenAI chat format <-> Qwen3-Coder's prompt format, for the OpenAI-compatible server
// (POST /v1/chat/completions): read the request's messages and tools, render them the way Qwen3-Coder-Next's
// chat template does, and read tool calls back out of the model's streamed reply. Pure functions and one
// small state machine; nothing here touches the model.
//
// Two things the plain template does not give us, and why:
//  - A trust boundary. The template is one string, so a user message holding "<|im_end|>" would forge a turn
//    once tokenized. render_chat returns pieces instead, each marked as ours (control) or the client's, and
//    encode_pieces never reads a control token out of the client's text.
//  - Key order. Tool schemas and call arguments are kept as nlohmann::ordered_json: the template walks them
//    in the order the client sent them, and a call the model made must render back exactly as the model wrote
//    it (argument order included) or the next request misses the prefix cache from that point on. Callers
//    should parse the request body as ordered_json too; a plain nlohmann::json converts, alphabetized.
//
// Thread-safety: the free functions are pure. A tool_call_parser is one reply's state: one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"
#include "kernels/common/result.h"

namespace qcoder::service {

// ---- the request ---------------------------------------------------------------------------------

struct tool_call {
  std::string id;                  // "call_..." (ours) or whatever the client sent back
  std::string name;
  nlohmann::ordered_json arguments = nlohmann::ordered_json::object();  // always an object
};

struct chat_message {
  std::string role;        // "system", "user", "assistant" or "tool" ("developer" arrives as "system")
  std::string content;     // text parts joined with "\n"; "" for an assistant turn that only calls tools
  std::vector<tool_call> tool_calls;  // assistant only
  std::string tool_call_id;           // tool only; informational (the template does not show it)
};

// `messages` of a chat completion request. Errors name the JSON path, e.g. "messages[2].content: expected a
// string or an array of text parts": invalid_argument for a wrong shape, parse_error for call arguments that
// are not JSON, unsupported for what we do not take (image parts, the legacy function_call).
// Accepted: content as a string, an array of {"type": "text", "text": ...} parts, or null for an assistant
// turn; assistant tool_calls[i] = {id?, type?: "function", function: {name, arguments}} where arguments is
// the API's JSON-encoded string (an object is accepted too, "" means {}).
result<std::vector<chat_message>> parse_messages(const nlohmann::ordered_json& messages);

struct tool_spec {
  std::string name;
  std::string description;           // "" when absent
  nlohmann::ordered_json parameters;  // the JSON schema (an object), or null when absent
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // other keys of "function" ("strict"...):
                                                                    // the template lists them too
};

// `tools` of the request: [{type: "function", function: {name, description?, parameters?}}]. A name must
// survive the reply format's "<function=NAME>" tag: no white space, '<' or '>'. Names must be unique.
result<std::vector<tool_spec>> parse_tools(const nlohmann::ordered_json& tools);

// ---- the prompt ----------------------------------------------------------------------------------

struct prompt_piece {
  std::string text;
  bool control = false;  // true: our template text, control tokens meant; false: the client's text
};

// The prompt Qwen3-Coder-Next's chat template renders for `messages` and `tools`: ChatML turns, the tools as
// an XML-like "# Tools" section in the system turn, earlier calls as <tool_call><function=...> blocks and
// tool results as <tool_response> blocks inside user turns (consecutive results share one turn), then
// "<|im_start|>assistant\n" when add_generation_prompt. Adjacent pieces of one kind are merged; join_pieces
// gives the string the template would (see chat_format.cpp for the few deliberate departures).
std::vector<prompt_piece> render_chat(const std::vector<chat_message>& messages, const std::vector<tool_spec>& tools,
                                      bool add_generation_prompt = true);

// Token ids of the pieces. Control tokens are read only out of control pieces; everything else is encoded
// as plain text across piece boundaries, so for text that spells no control token the ids equal
// tok.encode_prompt(join_pieces(pieces)), the tokenization the model was trained on.
std::vector<std::int32_t> encode_pieces(const engine::tokenizer& tok, const std::vector<prompt_piece>& pieces);

// The whole prompt as one string (tests, logs).
std::string join_pieces(const std::vector<prompt_piece>& pieces);

// ---- the reply -----------------------------------------------------------------------------------

// "call_" + 24 random letters and digits.
std::string make_tool_call_id(std::mt19937_64& rng);

// Splits a streamed reply into the text to show and the tool calls, in the format the prompt asks for:
//   <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n...</function>\n</tool_call>
// Feed it the decoded text of each token, with added tokens kept ("<tool_call>" is one of them: a decoder
// that skips added tokens loses it) and the stop token left out.
//
// - Text that may be the start of "<tool_call>" is held back until the next push tells, so a tag is never
//   shown; so is white space at the end of a push, which is dropped if a call follows. White space after a
//   call (between calls) is dropped too.
// - A parameter's value is its text minus the one newline the format puts on each side, converted by the
//   tool's JSON schema type for that parameter: "string" stays text exactly; integer, number, boolean, null,
//   object and array are parsed (true/True, null/None) and stay text when they do not parse. A type list or
//   anyOf tries each type in order. Parameters the schema does not list, and calls to functions not in
//   `tools`, keep text values (the server decides what an unknown function means).
// - finish(): held-back text is content after all. An unterminated call whose </function> arrived is a
//   call (the model stopped before </tool_call>); one cut off earlier (the token limit) is returned as
//   content, raw: half the arguments of a call must not be run.
class tool_call_parser {
 public:
  struct output {
    std::string content;          // text safe to show now (a delta)
    std::vector<tool_call> calls;  // calls completed by this push
  };

  // `seed` drives the call ids, so tests get the same ids every run.
  explicit tool_call_parser(std::vector<tool_spec> tools, std::uint64_t seed = std::random_device{}());

  output push(std::string_view text);
  output finish();

 private:
  void drain(output& out);  // moves whatever is decided out of pending_
  std::optional<tool_call> parse_call(std::string_view block);  // nothing: no <function=NAME> in it
  nlohmann::ordered_json convert(const std::string& function, const std::string& parameter, std::string value) const;

  std::vector<tool_spec> tools_;
  std::unordered_map<std::string, std::size_t> by_name_;
  std::mt19937_64 rng_;
  std::string pending_;           // text not yet decided
  bool in_call_ = false;          // pending_ is the inside of a <tool_call> block
  bool after_call_ = false;       // drop white space before the next text
  std::size_t close_scan_ = 0;    // where to resume looking for </tool_call> in pending_
};

}  // namespace qcoder::service
