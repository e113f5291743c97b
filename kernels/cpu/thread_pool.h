// A persistent pool of worker threads for the kernels: the calling thread and size()-1 workers split a
// range of tasks. Workers spin briefly after each job (decode issues thousands of small jobs per second,
// and waking a sleeping thread costs more than the job) and then sleep on an atomic wait.
//
// One job at a time: parallel_for must be called from one thread (the inference thread) and blocks until
// every task ran. Nothing is allocated per job.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace qcoder::cpu {

class thread_pool {
 public:
  // `threads` counts the caller too; 0 means one per hardware thread.
  explicit thread_pool(int threads);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end, thread_index) over [0, n_tasks) in chunks of `grain` tasks; thread_index is in
  // [0, size()). Returns when all tasks are done.
  template <typename Fn>
  void parallel_for(std::int64_t n_tasks, std::int64_t grain, Fn&& fn) {
    if (n_tasks <= 0) return;
    if (workers_.empty() || n_tasks <= grain) {
      fn(std::int64_t{0}, n_tasks, 0);
      return;
    }
    run(n_tasks, grain, &invoke<std::remove_reference_t<Fn>>, &fn);
  }

 private:
  using job_fn = void (*)(void* context, std::int64_t begin, std::int64_t end, int thread_index);
  template <typename Fn>
  static void invoke(void* context, std::int64_t begin, std::int64_t end, int thread_index) {
    (*static_cast<Fn*>(context))(begin, end, thread_index);
  }
  void run(std::int64_t n_tasks, std::int64_t grain, job_fn fn, void* context);
  void work(int thread_index);
  void worker_loop(int thread_index);

  std::vector<std::thread> workers_;
  // The current job; published by bumping generation_.
  job_fn job_ = nullptr;
  void* context_ = nullptr;
  std::int64_t n_tasks_ = 0;
  std::int64_t grain_ = 1;
  alignas(64) std::atomic<std::int64_t> next_{0};
  alignas(64) std::atomic<std::uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace qcoder::cpu
