// The model behind the language server: started when the client says `initialized`, loaded in the
// background by the service's inference worker, with the load shown to the user as work-done progress
// (`window/workDoneProgress/create` + `$/progress`, when the client supports it) and as `qcoder/status`
// notifications for status bars. Handlers that need the model wait a bounded time for it, then fail clearly.
// Thread-safety: start() and wait_ready() on any thread; progress is sent from the worker thread through the
// connection's thread-safe sender.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "lsp/jsonrpc/connection.h"
#include "service/inference_worker.h"

namespace qcoder::lsp {

class model_host {
 public:
  model_host(jsonrpc::connection& rpc, service::inference_worker::loader_fn load);
  ~model_host();

  // Starts loading (once). `progress` says whether the client accepts server-initiated progress.
  void start(bool progress);
  // The worker, once started (nullptr before).
  service::inference_worker* worker() const;
  // Waits up to `timeout` for the model; the error says why it is not there (loading, failed, not started).
  result<void> wait_ready(std::chrono::milliseconds timeout) const;
  // The clean shutdown: lets queued jobs finish and saves the prefix cache.
  result<void> shutdown();
  // Stops the worker now (queued jobs are refused, the running one finishes); worker() is null after.
  // Call before destroying what jobs refer to.
  void stop();

 private:
  void on_state(service::model_state state, const std::string& detail);

  jsonrpc::connection& rpc_;
  service::inference_worker::loader_fn load_;
  mutable std::mutex mutex_;
  std::unique_ptr<service::inference_worker> worker_;
  std::optional<std::string> progress_token_;
  bool progress_ended_ = false;
};

}  // namespace qcoder::lsp
