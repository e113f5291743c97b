// Code actions that edit with the model: "Rewrite selection" (an instruction: the command's argument or the
// `rewriteInstruction` setting), "Complete function", "Document function" and "Fix: <diagnostic>".
//
// - textDocument/codeAction lists what applies at the range (cheap: no model); each action carries its
//   request in `data` (uri, version, kind, range, instruction).
// - codeAction/resolve computes the edit on the inference thread: minimal TextEdits (a diff of the old and
//   new text of the range) in a WorkspaceEdit that carries the document version (documentChanges when the
//   client supports them). A document that changed meanwhile fails with ContentModified; $/cancelRequest
//   stops the generation (RequestCancelled). Long generations report work-done progress when the client
//   accepts server-initiated progress.
// - Clients without resolve support get the same actions as commands: workspace/executeCommand
//   `qcoder.applyAction` computes the edit and applies it through workspace/applyEdit. The commands
//   `qcoder.rewriteSelection`, `qcoder.completeFunction`, `qcoder.addDocumentation` and
//   `qcoder.fixDiagnostic` do the same from explicit arguments, and `qcoder.status` returns the status.
// Thread-safety: handlers run on the I/O thread; edits on the inference thread; replies from either.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "lsp/server/settings.h"
#include "lsp/server/workspace_context.h"

namespace qcoder::lsp {

class code_actions {
 public:
  code_actions(jsonrpc::connection& rpc, const language_server& server, open_documents& docs, model_host& host,
               const server_settings& settings, workspace_context* workspace = nullptr,
               std::chrono::milliseconds load_wait = std::chrono::milliseconds(3000));

  // The commands workspace/executeCommand accepts (for the capabilities).
  static jsonrpc::json commands();
  // Another feature's command, run by workspace/executeCommand too (e.g. qcoder.refactorWorkspace).
  void add_command(std::string name, std::function<void(const jsonrpc::json& params, jsonrpc::reply r)> run) {
    extra_commands_[std::move(name)] = std::move(run);
  }

 private:
  struct edit_job;
  void on_code_action(const jsonrpc::json& params, jsonrpc::reply r);
  void on_resolve(const jsonrpc::json& params, jsonrpc::reply r);
  void on_execute(const jsonrpc::json& params, jsonrpc::reply r);
  // Checks an action's data against the open document and snapshots what the job needs.
  result<std::shared_ptr<edit_job>> prepare(const jsonrpc::json& data, const std::string& name);
  void run(std::shared_ptr<edit_job> job);   // once the model is ready (a bounded wait)
  void post(std::shared_ptr<edit_job> job);  // onto the inference thread

  jsonrpc::connection& rpc_;
  const language_server& server_;
  open_documents& docs_;
  model_host& host_;
  const server_settings& settings_;
  workspace_context* workspace_;
  std::chrono::milliseconds load_wait_;
  std::atomic<std::uint64_t> next_progress_{1};
  std::map<std::string, std::function<void(const jsonrpc::json&, jsonrpc::reply)>, std::less<>> extra_commands_;
};

}  // namespace qcoder::lsp
