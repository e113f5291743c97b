// The worker thread's loop: load, then run jobs until told to stop.
#include "service/inference_worker.h"

#include <spdlog/spdlog.h>

namespace qcoder::service {

inference_worker::inference_worker(loader_fn load, state_fn on_state) : on_state_(std::move(on_state)) {
  thread_ = std::thread([this, load = std::move(load)]() mutable { main(std::move(load)); });
}

inference_worker::~inference_worker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void inference_worker::set_state(model_state s, std::string detail) {
  {
    std::lock_guard lock(mutex_);
    state_ = s;
    if (s == model_state::failed) load_error_ = detail;
  }
  changed_.notify_all();
  if (on_state_) on_state_(s, detail);
}

void inference_worker::main(loader_fn load) {
  result<loaded_engine> loaded = load();
  if (!loaded) {
    spdlog::error("model load failed: {}", loaded.err().message);
    set_state(model_state::failed, loaded.err().message);
  } else {
    engine_ = std::move(loaded).value();
    set_state(model_state::ready, "");
  }
  std::deque<queued_job> refused;
  for (;;) {
    queued_job next;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_ || state_ == model_state::failed) {
        // Stopping: what is still queued is refused. Failed: jobs posted while loading are refused.
        refused.swap(jobs_);
        if (stopping_) {
          if (state_ == model_state::ready) state_ = model_state::stopped;
          break;
        }
      } else {
        next = std::move(jobs_.front());
        jobs_.pop_front();
      }
    }
    if (next.run) {
      next.run(engine_);
      changed_.notify_all();  // shutdown() waits for the queue to drain
      continue;
    }
    const error why{errc::cancelled, "the model failed to load: " + load_error_};
    for (queued_job& j : refused) {
      if (j.refuse) j.refuse(why);
    }
    refused.clear();
  }
  const error why{errc::cancelled, state_ == model_state::failed ? "the model failed to load: " + load_error_
                                                                  : std::string("the server is shutting down")};
  for (queued_job& j : refused) {
    if (j.refuse) j.refuse(why);
  }
  // Only a clean shutdown saves the prefix cache.
  std::lock_guard lock(mutex_);
  if (save_on_stop_ && engine_.cache && engine_.save_cache) save_result_ = engine_.save_cache(*engine_.cache);
}

model_state inference_worker::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

result<void> inference_worker::wait_ready(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return state_ != model_state::loading; });
  switch (state_) {
    case model_state::ready: return ok();
    case model_state::loading: return fail(errc::unsupported, "the model is still loading");
    case model_state::failed: return fail(errc::not_found, "the model failed to load: {}", load_error_);
    case model_state::stopped: return fail(errc::cancelled, "the server is shutting down");
  }
  return ok();
}

void inference_worker::post(job_fn job, unavailable_fn on_unavailable) {
  std::unique_lock lock(mutex_);
  if (stopping_ || state_ == model_state::failed || state_ == model_state::stopped) {
    const error why{errc::cancelled, state_ == model_state::failed ? "the model failed to load: " + load_error_
                                                                    : std::string("the server is shutting down")};
    lock.unlock();
    if (on_unavailable) on_unavailable(why);
    return;
  }
  jobs_.push_back({std::move(job), std::move(on_unavailable)});
  lock.unlock();
  changed_.notify_all();
}

std::size_t inference_worker::queued() const {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

result<void> inference_worker::shutdown() {
  // Waits for the load, then for the queue: a clean shutdown lets queued jobs finish (their requests were
  // cancelled by then, so they end quickly).
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return state_ != model_state::loading && (jobs_.empty() || state_ != model_state::ready); });
  stopping_ = true;
  save_on_stop_ = true;
  lock.unlock();
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  return save_result_;
}

}  // namespace qcoder::service
