// Runs functions at a later time on one thread of its own: the debounce of typed completion requests. A
// request superseded by the next keystroke runs early instead (within a poll interval of its cancellation),
// so that it answers RequestCancelled without ever reaching the model.
// Thread-safety: schedule() and stop() from any thread; functions run on the queue's thread, in due order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace qcoder::lsp {

class timer_queue {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds poll_interval{5};
  timer_queue();
  ~timer_queue();  // stop()
  timer_queue(const timer_queue&) = delete;
  timer_queue& operator=(const timer_queue&) = delete;

  // Runs `fn` at `at`, or as soon as `cancel` fires (within poll_interval); `fn` checks the token itself.
  void schedule(clock::time_point at, std::stop_token cancel, std::function<void()> fn);
  // Runs what is pending now (as cancelled callers expect an answer), then joins the thread.
  void stop();

 private:
  struct entry {
    clock::time_point at;
    std::stop_token cancel;
    std::function<void()> fn;
  };
  void main(std::stop_token stop);

  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::vector<entry> pending_;
  std::jthread thread_;
};

}  // namespace qcoder::lsp
