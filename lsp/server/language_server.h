// The language server's protocol layer: lifecycle (initialize, initialized, shutdown, exit) and the
// capabilities it announces, on top of a jsonrpc::connection. Features (text sync, inline completion, code
// actions) register their handlers on the same connection.
//
// Lifecycle per the spec: requests before `initialize` get -32002; a second `initialize` and requests after
// `shutdown` get -32600; `exit` ends the process with 0 after `shutdown`, 1 without.
// Thread-safety: handlers run on the I/O thread; the state is read by the transport's loop on that thread.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "lsp/jsonrpc/connection.h"

namespace qcoder::lsp {

enum class position_encoding { utf16, utf8 };

class language_server {
 public:
  explicit language_server(jsonrpc::connection& rpc);

  // Set once `exit` arrived: the process exit code (0 after shutdown, 1 without).
  std::optional<int> exit_code() const { return exit_code_; }
  bool shut_down() const { return shut_down_; }
  position_encoding encoding() const { return encoding_; }
  // The client's initialize params (empty object before initialize).
  const jsonrpc::json& client() const { return client_; }
  // Whether the client accepts server-initiated work-done progress (window.workDoneProgress).
  bool client_supports_progress() const;

  // Called with the initialize params before the reply (e.g. to read initializationOptions).
  void set_on_initialize(std::function<void(const jsonrpc::json& params)> hook) { on_initialize_ = std::move(hook); }
  // Capabilities a feature adds to the initialize reply (merged into the base set).
  void add_capabilities(const jsonrpc::json& more) { extra_capabilities_.merge_patch(more); }
  // Called when the client sends `initialized` (e.g. to start loading the model).
  void set_on_initialized(std::function<void()> hook) { on_initialized_ = std::move(hook); }
  // Called for `shutdown` with its reply (e.g. to save caches before answering); the default answers null.
  void set_on_shutdown(std::function<void(jsonrpc::reply)> hook) { on_shutdown_ = std::move(hook); }

 private:
  void on_initialize(const jsonrpc::json& params, jsonrpc::reply r);
  jsonrpc::json capabilities() const;

  jsonrpc::connection& rpc_;
  bool initialized_ = false;
  bool shut_down_ = false;
  std::optional<int> exit_code_;
  position_encoding encoding_ = position_encoding::utf16;
  jsonrpc::json client_ = jsonrpc::json::object();
  std::function<void(const jsonrpc::json&)> on_initialize_;
  jsonrpc::json extra_capabilities_ = jsonrpc::json::object();
  std::function<void()> on_initialized_;
  std::function<void(jsonrpc::reply)> on_shutdown_;
};

}  // namespace qcoder::lsp
