// textDocument/inlineCompletion (LSP 3.18): ghost text at the cursor. The request is checked and the
// document snapshotted on the I/O thread, then completed on the inference thread by
// service::completion_service, with the workspace index and the recent snippets as context.
//
// - A new request for the same document cancels the one in flight (which answers RequestCancelled), as does
//   $/cancelRequest; generation stops within a token.
// - Typed requests (triggerKind Automatic) wait an adaptive debounce first: a little longer than the
//   user's usual pause between keystrokes in that document (the median of the recent ones, up to the
//   `debounceMs` setting), so a request the next keystroke would cancel never reaches the model. Invoked
//   requests (triggerKind 1) start at once and return up to three alternatives; typed ones one.
// - With `selectedCompletionInfo` (the suggest widget's selected item), the completion continues the text
//   as if the item were accepted, and the returned item replaces the item's range with its text plus the
//   continuation.
// - Because standard LSP cannot stream an inline completion, the text so far is also pushed as
//   `qcoder/inlineCompletionPartial` notifications (request id, uri, position, text), at most one per 50 ms.
// Thread-safety: the handler runs on the I/O thread; jobs on the inference thread; they share only the
// reply, the stop sources and the (thread-safe) context.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "lsp/server/settings.h"
#include "lsp/server/timer_queue.h"
#include "lsp/server/workspace_context.h"

namespace qcoder::lsp {

struct inline_completion_options {
  std::chrono::milliseconds load_wait{3000};  // how long a request waits for a model that is still loading
};

// Timestamps of one request through the server, for `bench lsp` (the server's own overhead).
struct completion_timing {
  std::chrono::steady_clock::time_point received;       // the request arrived
  std::chrono::steady_clock::time_point started;        // the job began on the inference thread
  std::chrono::steady_clock::time_point prompt_ready;   // the prompt was built
  std::chrono::steady_clock::time_point first_token;    // the model produced the first token
  std::chrono::steady_clock::time_point first_partial;  // the first partial notification was handed to the writer
  std::chrono::steady_clock::time_point replied;
  std::chrono::milliseconds debounce{0};
};

class inline_completion {
 public:
  inline_completion(jsonrpc::connection& rpc, const language_server& server, open_documents& docs, model_host& host,
                    const server_settings& settings, workspace_context* workspace = nullptr,
                    inline_completion_options options = {});
  ~inline_completion();
  // Cancels what is in flight and joins the requests waiting for the model (before the model host stops).
  void stop();
  // Called on the inference thread when a request finished (answered or not), with its timestamps.
  void set_on_timing(std::function<void(const completion_timing&)> hook) { on_timing_ = std::move(hook); }
  // The debounce the next typed request for `uri` would get (I/O thread).
  std::chrono::milliseconds debounce_for(const std::string& uri) const;

 private:
  struct job_input;
  struct typing {  // per document: the user's recent pauses between typed requests
    std::chrono::steady_clock::time_point last;
    std::deque<std::chrono::milliseconds> intervals;
  };
  void on_request(const jsonrpc::json& params, jsonrpc::reply r);
  void start(std::shared_ptr<job_input> in);
  void run(std::shared_ptr<job_input> in);

  jsonrpc::connection& rpc_;
  const language_server& server_;
  open_documents& docs_;
  model_host& host_;
  const server_settings& settings_;
  workspace_context* workspace_;
  inline_completion_options options_;
  std::map<std::string, std::stop_source> active_;  // by uri: the request in flight (I/O thread)
  std::map<std::string, typing> typing_;            // by uri (I/O thread)
  timer_queue debounced_;
  std::function<void(const completion_timing&)> on_timing_;
};

}  // namespace qcoder::lsp
