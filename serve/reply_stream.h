// One generation's answer to its client. Tokens come in on the inference thread; out go the API's
// objects: the whole JSON reply at the end, or server-sent events as soon as text is safe to show (text
// that may still become a stop string is held back, and so is a tool call until it is complete). Logprobs
// travel with the text they belong to; usage closes the stream when asked for.
//
// The transport sits behind reply_sink (http_sink for a real client), so the shapes are tested without a
// server. Thread-safety: one reply_stream per generation; its calls come from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer/stream_decoder.h"
#include "http/server.h"
#include "serve/openai_api.h"

namespace qcoder::serve {

class reply_sink {
 public:
  virtual ~reply_sink() = default;
  // The whole reply: a JSON body with its status.
  virtual void send(int status, std::string json_body, http::header_list headers) = 0;
  // A 200 event stream; false when the client is gone.
  virtual bool begin_stream() = 0;
  // One or more events; false when the client is gone.
  virtual bool write(std::string data) = 0;
  virtual void end() = 0;
};

std::unique_ptr<reply_sink> http_sink(http::responder reply);

class reply_stream {
 public:
  // `seed` makes the tool call ids (the rest of the reply does not depend on it).
  reply_stream(std::unique_ptr<reply_sink> sink, const api_request& request, const engine::tokenizer& tok,
               std::string model, std::uint64_t seed);

  void on_logprob(const engine::token_logprob& record) { pending_logprobs_.push_back(record); }
  // False ends the generation: a stop string was found, or the client is gone.
  bool on_token(std::int32_t id);
  // The end: an error (before anything was sent: an error status; else an error event), the client gone
  // (nothing more), or the last events / the whole reply with the finish reason and usage.
  void on_done(result<engine::generation_result> done);

 private:
  nlohmann::ordered_json head() const;
  void emit(std::string text, bool final);
  void send_whole(const usage_figures& usage, const std::string& reason);
  void write_event(const nlohmann::ordered_json& event);
  void finish_stream();

  std::unique_ptr<reply_sink> sink_;
  endpoint kind_;
  bool stream_, include_usage_, logprobs_;
  const engine::tokenizer& tok_;
  engine::stream_decoder decoder_;
  stop_scanner stops_;
  std::optional<service::tool_call_parser> tools_;
  std::string model_, id_;
  std::int64_t created_;
  std::size_t prompt_tokens_;
  std::string text_;  // not streaming: the whole content
  std::vector<service::tool_call> calls_;
  std::vector<engine::token_logprob> pending_logprobs_, all_logprobs_;
  std::size_t text_bytes_ = 0;  // streamed so far (completions' text_offset)
  std::size_t tool_index_ = 0;
  bool called_tools_ = false;
  bool started_ = false;
  bool role_sent_ = false;
  bool gone_ = false;
};

// OpenAI's error object for a status: {"error": {message, type, param, code}}.
api_error error_of(int status, std::string message, std::string type, std::string code = {});
std::string dump_json(const nlohmann::ordered_json& j);  // invalid UTF-8 replaced, never thrown
std::int64_t unix_now();
std::string random_id(const char* prefix);

}  // namespace qcoder::serve
