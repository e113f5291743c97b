// `qcoder serve` inside the test process: the tiny model behind an OpenAI-compatible server on a free
// loopback port, and engines that send their prompts to it (the remote backend). The suites that run a
// service over both backends use these; stop() and restart() (on the same port) stand for a server that
// goes down and comes back.
#pragma once

#include <memory>
#include <string>

#include <fmt/core.h>

#include "engine/model_config.h"
#include "serve/openai_server.h"
#include "service/inference_worker.h"
#include "service/text_backend.h"
#include "tests/support/tiny_engine.h"

namespace qcoder::testing_support {

class tiny_server {
 public:
  // Loads the tiny model on a worker of its own and listens on 127.0.0.1 (`port` 0: a free one).
  static result<std::unique_ptr<tiny_server>> start(std::uint16_t port = 0) {
    auto s = std::unique_ptr<tiny_server>(new tiny_server());
    QCODER_TRY(engine::tokenizer tok, engine::tokenizer::load_model_dir(tiny_model_root / "bf16"));
    s->tok_ = std::make_shared<const engine::tokenizer>(std::move(tok));
    s->worker_ = std::make_unique<service::inference_worker>([] { return load_tiny_engine(16u << 20); });
    QCODER_CHECK(s->worker_->wait_ready(std::chrono::seconds(60)));
    QCODER_CHECK(s->listen(port));
    return s;
  }
  ~tiny_server() { stop(); }

  std::uint16_t port() const { return port_; }
  std::string url() const { return fmt::format("http://127.0.0.1:{}/v1", port_); }
  // Closes the port and every connection (generations in flight end at their next token).
  void stop() {
    if (server_) server_->stop();
    server_.reset();
  }
  // Listens again on the same port.
  result<void> restart() { return listen(port_); }
  // A figure from /metrics (the Prometheus text), -1 when it is not there.
  double metric(std::string_view name) const {
    if (!server_) return -1;
    const std::string text = server_->metrics_text();
    const std::string key = std::string(name) + " ";
    for (std::size_t at = 0; (at = text.find(key, at)) != std::string::npos; at += key.size()) {
      if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + key.size()));
    }
    return -1;
  }

 private:
  tiny_server() = default;
  result<void> listen(std::uint16_t port) {
    std::vector<std::int32_t> stops = service::control_stop_ids(*tok_);
    QCODER_TRY(engine::model_config config, engine::model_config::load(tiny_model_root / "bf16"));
    for (const std::int64_t id : config.eos_token_ids) stops.push_back(static_cast<std::int32_t>(id));
    serve::serve_options options;
    options.http.host = "127.0.0.1";
    options.http.port = port;
    options.model_name = "tiny";
    options.context_tokens = 4096;
    options.scheduling.max_running = 4;
    QCODER_TRY(server_, serve::openai_server::start(*worker_, tok_, std::move(stops), std::move(options)));
    port_ = server_->port();
    return ok();
  }

  std::shared_ptr<const engine::tokenizer> tok_;
  std::unique_ptr<service::inference_worker> worker_;
  std::unique_ptr<serve::openai_server> server_;
  std::uint16_t port_ = 0;
};

// An engine whose generations go to `url`, with the tiny model's tokenizer (what `--backend URL` loads).
inline result<service::loaded_engine> load_remote_engine(const std::string& url, service::remote_options options = {},
                                                        service::remote_prompt form = service::remote_prompt::tokens) {
  QCODER_TRY(engine::tokenizer tok, engine::tokenizer::load_model_dir(tiny_model_root / "bf16"));
  auto shared = std::make_shared<const engine::tokenizer>(std::move(tok));
  options.url = url;
  if (options.backoff == service::remote_options{}.backoff) options.backoff = std::chrono::milliseconds(20);
  QCODER_TRY(std::unique_ptr<service::remote_completions> client, service::remote_completions::create(std::move(options)));
  service::loaded_engine e;
  e.tokenizer = shared;
  e.remote = std::make_unique<service::remote_backend>(shared, std::move(client), form);
  return e;
}

}  // namespace qcoder::testing_support
