// The OpenAI API's request and response shapes for /v1/completions and /v1/chat/completions, without
// transport: a JSON body in, a validated generation out (or the error the API would give); a generation's
// text and tokens in, the JSON objects (whole, or the chunks of a stream) out.
//
// Prompts: /v1/completions takes the prompt raw, so control tokens written in it are control tokens (a FIM
// prompt works as is); with `suffix`, the FIM prompt is built here and the caller's text stays text.
// /v1/chat/completions renders the messages with the model's chat template (service/chat_format); message
// content is text, never control tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "service/chat_format.h"
#include "service/text_scan.h"

namespace qcoder::serve {

// An error as the API reports it: the HTTP status and the body's error object.
struct api_error {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;   // e.g. "context_length_exceeded", "model_not_found"; empty: null
  std::string param;  // the offending field; empty: null
  nlohmann::ordered_json body() const;
};

enum class endpoint { completions, chat };

// What the server knows when it reads a request.
struct api_context {
  const engine::tokenizer* tok = nullptr;
  std::string model_name;           // the one model served; requests must name it
  std::int64_t context_tokens = 0;  // prompt + max_tokens may not exceed this
  std::int64_t default_chat_max_tokens = 4096;
};

// A request after validation.
// OpenAI takes up to 4 stop strings; like vLLM and llama-server we take more, so a client can list every
// control token of a prompt format (the remote backend sends nine).
inline constexpr std::size_t max_stop_strings = 16;

struct api_request {
  endpoint kind = endpoint::completions;
  std::vector<std::int32_t> prompt;
  engine::sampling_params sampling;
  std::int64_t max_tokens = 16;
  std::vector<std::string> stop;  // up to max_stop_strings, non-empty
  int top_logprobs = -1;          // -1: no logprobs
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<service::tool_spec> tools;  // chat: the tools the reply may call (empty with tool_choice "none")
};

// Reads and checks a request body; the error names the field.
std::optional<api_error> parse_request(endpoint kind, const nlohmann::ordered_json& body, const api_context& context,
                                       api_request& out);

// Stop strings are cut as the text streams (service/text_scan).
using service::stop_scanner;

struct usage_figures {
  std::size_t prompt_tokens = 0;
  std::size_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
};
nlohmann::ordered_json usage_json(const usage_figures& u);

// The logprobs object of one choice, for the tokens in `records` (completions: tokens / token_logprobs /
// top_logprobs / text_offset; chat: content [{token, logprob, bytes, top_logprobs}]). `text_offset` is the
// byte offset of the first record's token in the choice's text (completions only).
nlohmann::ordered_json logprobs_json(endpoint kind, const engine::tokenizer& tok, const std::vector<engine::token_logprob>& records,
                             std::size_t text_offset = 0);

// "stop", "length" or "tool_calls".
std::string finish_reason_text(engine::finish_reason reason, bool stopped_by_string, bool called_tools);

// The common head of a response or chunk: id, object, created, model.
nlohmann::ordered_json response_head(endpoint kind, bool chunk, const std::string& id, std::int64_t created, const std::string& model);

// OpenAI's wire form of a parsed tool call: {id, type: "function", function: {name, arguments: "<json>"}}.
nlohmann::ordered_json tool_call_json(const service::tool_call& call, std::optional<std::size_t> index = std::nullopt);

}  // namespace qcoder::serve
