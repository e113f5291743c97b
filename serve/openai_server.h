// `qcoder serve`'s HTTP side: the OpenAI-compatible routes on the shared engine.
//
//   POST /v1/completions        raw prompt (FIM prompts work as written), or prompt + suffix
//   POST /v1/chat/completions   the chat template, tools and tool calls
//   GET  /v1/models, /v1/models/{id}, /health, /metrics (Prometheus text)
//
// Requests are checked and tokenized on the I/O thread, then queued on the scheduler; their tokens are
// turned into text, stop strings and tool calls on the inference thread and written to the client as they
// come (server-sent events) or at the end. A client that goes away stops its generation at the next token.
// Thread-safety: start() and stop() from one thread; everything else runs on the server's threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "http/auth.h"
#include "http/server.h"
#include "serve/openai_api.h"
#include "serve/scheduler.h"
#include "service/inference_worker.h"

namespace qcoder::serve {

struct serve_options {
  http::server_options http;
  std::string api_key;  // required from clients when set (Bearer); must be set to listen beyond loopback
  std::string model_name;
  std::int64_t context_tokens = 32768;
  scheduler_options scheduling;
};

class openai_server {
 public:
  // `tok` and `stop_ids` (ids that end any generation: end of text, chat and FIM control tokens) are the
  // model's; the worker may still be loading.
  static result<std::unique_ptr<openai_server>> start(service::inference_worker& worker,
                                                      std::shared_ptr<const engine::tokenizer> tok,
                                                      std::vector<std::int32_t> stop_ids, serve_options options);
  ~openai_server();
  std::uint16_t port() const;
  // Stops accepting and closes connections (their generations end at the next token).
  void stop();
  std::string metrics_text() const;

 private:
  openai_server(service::inference_worker& worker, std::shared_ptr<const engine::tokenizer> tok,
                std::vector<std::int32_t> stop_ids, serve_options options);
  void handle(http::request request, http::responder reply);
  void generate(endpoint kind, const http::request& request, http::responder reply);

  service::inference_worker& worker_;
  std::shared_ptr<const engine::tokenizer> tok_;
  std::vector<std::int32_t> stop_ids_;
  serve_options options_;
  scheduler scheduler_;
  std::unique_ptr<http::server> http_;
  std::int64_t started_at_ = 0;  // unix seconds
  std::atomic<std::uint64_t> http_errors_{0};
  std::atomic<std::uint64_t> requests_{0};
};

}  // namespace qcoder::serve
