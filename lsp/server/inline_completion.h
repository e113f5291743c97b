// textDocument/inlineCompletion (LSP 3.18): ghost text at the cursor. The request is checked and the
// document snapshotted on the I/O thread, then completed on the inference thread by
// service::completion_service. A new request for the same document cancels the one in flight (which
// answers RequestCancelled), as does $/cancelRequest; generation stops within a token. Because standard
// LSP cannot stream an inline completion, the text so far is also pushed as `qcoder/inlineCompletionPartial`
// notifications (request id, uri, position, text), at most one per 50 ms.
// triggerKind Automatic (2) returns one item, Invoked (1) up to three.
// Thread-safety: the handler runs on the I/O thread; jobs on the inference thread; they share only the
// reply and the stop sources.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "service/completion.h"

namespace qcoder::lsp {

struct inline_completion_options {
  std::chrono::milliseconds load_wait{3000};  // how long a request waits for a model that is still loading
  std::int64_t max_tokens = 128;
};

class inline_completion {
 public:
  inline_completion(jsonrpc::connection& rpc, const language_server& server, open_documents& docs, model_host& host,
                    inline_completion_options options = {});
  ~inline_completion();
  // Cancels what is in flight and joins the requests waiting for the model (before the model host stops).
  void stop();

 private:
  struct job_input;
  void on_request(const jsonrpc::json& params, jsonrpc::reply r);
  void run(std::shared_ptr<job_input> in);

  jsonrpc::connection& rpc_;
  const language_server& server_;
  open_documents& docs_;
  model_host& host_;
  inline_completion_options options_;
  std::map<std::string, std::stop_source> active_;  // by uri: the request in flight (I/O thread)
  std::vector<std::jthread> waiters_;               // requests waiting for a loading model
  std::unique_ptr<service::completion_service> service_;  // inference thread only
};

}  // namespace qcoder::lsp
