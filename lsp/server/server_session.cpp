// Wiring and the session's lifecycle hooks.
#include "lsp/server/server_session.h"

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;

server_session::server_session(jsonrpc::send_fn send, loader_fn load, session_options options)
    : rpc_(std::move(send)),
      options_(std::move(options)),
      settings_(options_.settings),
      server_(rpc_),
      docs_(rpc_, server_),
      workspace_(docs_, options_.index),
      host_(rpc_, [this, load = std::move(load)] { return load(load_settings_); }),
      completions_(rpc_, server_, docs_, host_, settings_, &workspace_, {options_.load_wait}),
      actions_(rpc_, server_, docs_, host_, settings_, &workspace_, options_.load_wait),
      refactor_(rpc_, server_, docs_, host_, settings_, workspace_, options_.load_wait) {
  actions_.add_command(std::string(refactor_workspace::command),
                       [this](const json& params, jsonrpc::reply r) { refactor_.run(params, std::move(r)); });
  server_.add_capabilities({{"inlineCompletionProvider", true},
                            {"codeActionProvider", {{"codeActionKinds", {"quickfix", "refactor.rewrite"}}, {"resolveProvider", true}}},
                            {"executeCommandProvider", {{"commands", code_actions::commands()}}}});
  server_.set_on_initialize([this](const json& params) {
    if (const json* init = jsonrpc::find_path(params, {"initializationOptions"})) apply(*init, "initializationOptions");
    if (options_.index_workspace) workspace_.start(params);
  });
  server_.set_on_initialized([this] {
    load_settings_ = settings_;
    host_.start(server_.client_supports_progress());
    ask_configuration();
  });
  rpc_.on_notification("workspace/didChangeConfiguration", [this](const json& params) {
    // Push-style clients send the settings; pull-style ones send null and expect us to ask.
    if (const json* pushed = jsonrpc::find_path(params, {"settings", "qcoder"})) {
      apply(*pushed, "didChangeConfiguration");
    } else {
      ask_configuration();
    }
  });
  server_.set_on_shutdown([this](jsonrpc::reply r) {
    // Saving the prefix cache can take a while: off the I/O thread, answering when done.
    shutting_down_ = std::thread([this, r = std::move(r)]() mutable {
      if (result<void> saved = host_.shutdown(); !saved) spdlog::warn("lsp: {}", saved.err().message);
      r.result(nullptr);
    });
  });
}

server_session::~server_session() { stop(); }

std::optional<int> server_session::exit_code() {
  std::optional<int> code = server_.exit_code();
  if (code && shutting_down_.joinable()) shutting_down_.join();  // its answer goes out before we stop
  return code;
}

void server_session::stop() {
  if (stopped_) return;
  stopped_ = true;
  rpc_.cancel_all();
  if (shutting_down_.joinable()) shutting_down_.join();
  completions_.stop();
  workspace_.stop();
  host_.stop();  // no job may outlive the features it calls back into
}

void server_session::apply(const json& j, std::string_view from) {
  for (const std::string& problem : apply_settings(j, settings_)) {
    spdlog::warn("lsp: {} ({}): ignored", problem, from);
    rpc_.notify("window/showMessage", {{"type", 2}, {"message", "qcoder: setting " + problem}});
  }
}

void server_session::ask_configuration() {
  const json* pull = jsonrpc::find_path(server_.client(), {"capabilities", "workspace", "configuration"});
  if (pull == nullptr || !pull->is_boolean() || !pull->get<bool>()) return;
  rpc_.request("workspace/configuration", {{"items", json::array({{{"section", "qcoder"}}})}},
               [this](const json* result, const jsonrpc::rpc_error* e) {
                 if (e != nullptr) return spdlog::debug("lsp: workspace/configuration failed: {}", e->message);
                 if (result != nullptr && result->is_array() && !result->empty()) apply((*result)[0], "workspace/configuration");
               });
}

}  // namespace qcoder::lsp
