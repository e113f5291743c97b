// The inference thread: the one thread that owns the model and its prefix cache (and, through the model,
// the expert store). Whatever runs the model is a job queued here; jobs run one at a time, in order. The
// model loads on this thread as soon as the worker starts, so the editor is never blocked by a load, and
// load progress and failure are reported to whoever listens.
//
// Thread-safety: every public member may be called from any thread. Jobs run on the worker thread and must
// not block on other jobs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "kernels/common/result.h"
#include "service/text_backend.h"

namespace qcoder::service {

// What the loader hands the worker: the model, its prefix cache (may be null) and how to save the cache
// at a clean shutdown (may be empty); or, instead of a model, a remote backend (generations go to a
// server) with the tokenizer the prompts are built with.
struct loaded_engine {
  std::unique_ptr<engine::qwen3_next> model;
  std::unique_ptr<engine::prefix_cache> cache;
  std::function<result<void>(const engine::prefix_cache&)> save_cache;
  std::unique_ptr<text_backend> remote;
  std::shared_ptr<const engine::tokenizer> tokenizer;  // with `remote`
};

enum class model_state { loading, ready, failed, stopped };

class inference_worker {
 public:
  using loader_fn = std::function<result<loaded_engine>()>;
  using state_fn = std::function<void(model_state, const std::string& detail)>;  // called on the worker thread
  using job_fn = std::function<void(loaded_engine& engine)>;
  using unavailable_fn = std::function<void(const error& why)>;

  // Starts the thread, which loads the model first. `on_state` hears loading → ready or failed.
  inference_worker(loader_fn load, state_fn on_state = {});
  // Drops queued jobs (each gets its unavailable callback), finishes the running one, joins. Does not save
  // the prefix cache (only a clean shutdown() does).
  ~inference_worker();
  inference_worker(const inference_worker&) = delete;
  inference_worker& operator=(const inference_worker&) = delete;

  model_state state() const;
  // Waits up to `timeout` for the model. Errors: unsupported ("still loading") after the timeout, or the
  // load's own error.
  result<void> wait_ready(std::chrono::milliseconds timeout) const;

  // Queues a job. It runs once the model is ready; if the model failed to load or the worker stops first,
  // `on_unavailable` gets the reason instead (on whichever thread finds out).
  void post(job_fn job, unavailable_fn on_unavailable);
  std::size_t queued() const;

  // A clean shutdown: waits for the queue to drain, saves the prefix cache, stops the thread. Returns the
  // save's result. Later posts are refused.
  result<void> shutdown();

 private:
  struct queued_job {
    job_fn run;
    unavailable_fn refuse;
  };
  void main(loader_fn load);
  void set_state(model_state s, std::string detail);

  state_fn on_state_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<queued_job> jobs_;
  model_state state_ = model_state::loading;
  std::string load_error_;
  bool stopping_ = false;
  bool save_on_stop_ = false;
  result<void> save_result_ = ok();
  loaded_engine engine_;
  std::thread thread_;
};

}  // namespace qcoder::service
