// The model behind the language server: started when the client says `initialized`, loaded in the
// background by the service's inference worker, with the load shown to the user as work-done progress
// (`window/workDoneProgress/create` + `$/progress`, when the client supports it) and as `qcoder/status`
// notifications for status bars. Handlers that need the model wait a bounded time for it, then fail clearly.
// Thread-safety: start() and wait_ready() on any thread; progress is sent from the worker thread through the
// connection's thread-safe sender.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "lsp/jsonrpc/connection.h"
#include "service/edit.h"
#include "service/inference_worker.h"

namespace qcoder::lsp {

// What one job did, for the status bar.
struct job_figures {
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;  // of the prompt, from the prefix cache
  std::size_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

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
  // Calls `then` with ok once the model is ready, or with the reason it is not: at once when it is ready,
  // failed or not started, else (still loading) from a waiting thread after up to `timeout`.
  void when_ready(std::chrono::milliseconds timeout, std::function<void(result<void>)> then);
  // The clean shutdown: lets queued jobs finish and saves the prefix cache.
  result<void> shutdown();
  // Stops the worker now (queued jobs are refused, the running one finishes); worker() is null after.
  // Call before destroying what jobs refer to.
  void stop();

  // What a job works with: the completion and edit services, and the backend they generate on (the
  // local model, or the remote server the loader set up).
  struct job_tools {
    service::assistant* assistant = nullptr;
    service::text_backend* backend = nullptr;
    service::engine_backend* local = nullptr;  // the backend, when it is the local model
    std::shared_ptr<const engine::tokenizer> tokenizer;
  };
  // Inference thread only (inside a job): the tools for the loaded engine; the services are made on first
  // use and again when the prompt options change.
  result<job_tools> tools(service::loaded_engine& engine, const context::prompt_options& prompt);
  // Inference thread only: `qcoder/status` busy at a job's start, idle with its figures at its end.
  // `failed`: why the job failed, when it did. A server that cannot be reached turns the status
  // "offline" and tells the user (once per outage); the next job that gets through says it is back.
  void job_started();
  void job_finished(const service::text_backend& backend, const job_figures& figures, const error* failed = nullptr);
  // The last status sent (state, figures, expert cache), for `qcoder.status`.
  jsonrpc::json status() const;

 private:
  void on_state(service::model_state state, const std::string& detail);

  jsonrpc::connection& rpc_;
  service::inference_worker::loader_fn load_;
  mutable std::mutex mutex_;
  std::unique_ptr<service::inference_worker> worker_;
  std::optional<std::string> progress_token_;
  bool progress_ended_ = false;
  jsonrpc::json status_ = jsonrpc::json::object();
  std::uint64_t jobs_done_ = 0;
  // Inference thread only:
  std::shared_ptr<const engine::tokenizer> tokenizer_;
  std::unique_ptr<service::assistant> assistant_;
  std::unique_ptr<service::engine_backend> local_;
  bool offline_ = false;  // the last job found the remote server down
  struct waiter {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex waiters_mutex_;
  std::vector<waiter> waiters_;  // requests waiting for a loading model
};

}  // namespace qcoder::lsp
