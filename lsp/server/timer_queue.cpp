// One sleeping thread, woken by new entries and by stop.
#include "lsp/server/timer_queue.h"

#include <algorithm>

namespace qcoder::lsp {

timer_queue::timer_queue() : thread_([this](std::stop_token stop) { main(stop); }) {}

timer_queue::~timer_queue() { stop(); }

void timer_queue::stop() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void timer_queue::schedule(clock::time_point at, std::stop_token cancel, std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back({at, std::move(cancel), std::move(fn)});
  }
  changed_.notify_all();
}

void timer_queue::main(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  for (;;) {
    const clock::time_point now = clock::now();
    const bool stopping = stop.stop_requested();
    auto due = std::find_if(pending_.begin(), pending_.end(),
                            [&](const entry& e) { return stopping || e.at <= now || e.cancel.stop_requested(); });
    if (due != pending_.end()) {
      entry e = std::move(*due);
      pending_.erase(due);
      lock.unlock();
      e.fn();
      lock.lock();
      continue;
    }
    if (stopping) return;
    if (pending_.empty()) {
      changed_.wait(lock, stop, [&] { return !pending_.empty(); });
      continue;
    }
    // Sleep until the next one is due, but look at cancellations every poll interval.
    clock::time_point wake = now + poll_interval;
    for (const entry& e : pending_) wake = std::min(wake, e.at);
    const std::size_t count = pending_.size();
    changed_.wait_until(lock, stop, wake, [&] { return pending_.size() != count; });
  }
}

}  // namespace qcoder::lsp
