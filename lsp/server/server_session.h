// One language-server session: every feature of `qcoder lsp` wired onto one connection. The command, the
// in-process tests and `bench lsp` all build this, so they exercise the same server.
//
// At `initialize` it reads initializationOptions into the settings and starts indexing the workspace; at
// `initialized` it starts loading the model (the loader gets the settings: model folder and budgets) and
// asks the client for the "qcoder" configuration section (again on workspace/didChangeConfiguration).
// Thread-safety: receive() on the I/O thread; see each feature.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "lsp/jsonrpc/connection.h"
#include "lsp/server/code_actions.h"
#include "lsp/server/inline_completion.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "lsp/server/refactor_workspace.h"
#include "lsp/server/settings.h"
#include "lsp/server/workspace_context.h"

namespace qcoder::lsp {

struct session_options {
  std::chrono::milliseconds load_wait{3000};
  context::index_options index;
  bool index_workspace = true;  // false: no workspace index even when the client names a folder
  server_settings settings;  // the defaults (the command line's); the client's settings apply over them
};

class server_session {
 public:
  using loader_fn = std::function<result<service::loaded_engine>(const server_settings& settings)>;

  server_session(jsonrpc::send_fn send, loader_fn load, session_options options = {});
  ~server_session();

  // One message body from the client.
  void receive(std::string_view body) { rpc_.receive(body); }
  // A frame that could not be read (transport error).
  void reject_frame(std::string_view why) { rpc_.reject_frame(why); }
  // Set once `exit` arrived (0 after shutdown, else 1); the shutdown's cache save has finished by then.
  std::optional<int> exit_code();
  // Cancels everything and stops the threads, in dependency order (idempotent; the destructor calls it).
  void stop();

  const server_settings& settings() const { return settings_; }
  inline_completion& completions() { return completions_; }
  workspace_context& workspace() { return workspace_; }
  jsonrpc::connection& rpc() { return rpc_; }

 private:
  void apply(const jsonrpc::json& j, std::string_view from);
  void ask_configuration();

  jsonrpc::connection rpc_;
  session_options options_;
  server_settings settings_;
  server_settings load_settings_;  // a copy for the loader (it runs on the inference thread)
  language_server server_;
  open_documents docs_;
  workspace_context workspace_;
  model_host host_;
  inline_completion completions_;
  code_actions actions_;
  refactor_workspace refactor_;
  std::thread shutting_down_;
  bool stopped_ = false;
};

}  // namespace qcoder::lsp
