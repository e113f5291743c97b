// workspace/executeCommand `qcoder.refactorWorkspace`: `qcoder refactor` from the editor. Arguments:
// [{"instruction": "...", "include": [globs], "exclude": [globs], "checkRelevance": true}].
//
// It runs service::run_refactor over the workspace folder on the inference thread, with work-done
// progress (files done, percentage) and $/cancelRequest stopping it between units. Open documents are
// refactored from the editor's text, unsaved changes included. The result goes to the editor as one
// workspace/applyEdit (so one undo takes it back): minimal TextEdits per file, versioned for open
// documents; a document edited while the refactor ran is left out rather than edited from stale text.
// The reply: {applied, files, skipped, unitsChanged, unitsRewritten, seconds}.
// Thread-safety: run() on the I/O thread; the job on the inference thread; replies from either.
#pragma once

#include <atomic>
#include <chrono>

#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "lsp/server/settings.h"
#include "lsp/server/workspace_context.h"

namespace qcoder::lsp {

class refactor_workspace {
 public:
  static constexpr std::string_view command = "qcoder.refactorWorkspace";

  refactor_workspace(jsonrpc::connection& rpc, const language_server& server, open_documents& docs, model_host& host,
                     const server_settings& settings, workspace_context& workspace, std::chrono::milliseconds load_wait);

  void run(const jsonrpc::json& params, jsonrpc::reply r);

 private:
  jsonrpc::connection& rpc_;
  const language_server& server_;
  open_documents& docs_;
  model_host& host_;
  const server_settings& settings_;
  workspace_context& workspace_;
  std::chrono::milliseconds load_wait_;
  std::atomic<std::uint64_t> next_progress_{1};
};

}  // namespace qcoder::lsp
