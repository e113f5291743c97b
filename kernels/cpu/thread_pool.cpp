// Thread pool implementation: generation counter to publish jobs, atomic task counter to share them out,
// pending counter to join.
#include "kernels/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qcoder::cpu {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// How long a worker spins for the next job before sleeping, and the caller for the workers to finish,
// in iterations of `pause` (tens of cycles each): long enough to bridge the gaps between the many small
// jobs of one decode step, short enough not to steal much from other processes.
constexpr int spin_iterations = 20000;
constexpr int join_spin_iterations = 2000;

}  // namespace

thread_pool::thread_pool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

thread_pool::~thread_pool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void thread_pool::run(std::int64_t n_tasks, std::int64_t grain, job_fn fn, void* context) {
  job_ = fn;
  context_ = context;
  n_tasks_ = n_tasks;
  grain_ = std::max<std::int64_t>(1, grain);
  next_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  work(0);
  // Join: spin briefly (the usual case: workers finish within microseconds), then sleep, so that a worker
  // the OS has descheduled (other processes on the machine) gets this core instead of us burning it.
  int remaining = pending_.load(std::memory_order_acquire);
  for (int spin = 0; remaining != 0 && spin < join_spin_iterations; ++spin) {
    cpu_relax();
    remaining = pending_.load(std::memory_order_acquire);
  }
  while (remaining != 0) {
    pending_.wait(remaining, std::memory_order_acquire);
    remaining = pending_.load(std::memory_order_acquire);
  }
}

void thread_pool::work(int thread_index) {
  for (;;) {
    const std::int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (begin >= n_tasks_) return;
    job_(context_, begin, std::min(n_tasks_, begin + grain_), thread_index);
  }
}

void thread_pool::worker_loop(int thread_index) {
  std::uint64_t seen = 0;
  for (;;) {
    std::uint64_t now = generation_.load(std::memory_order_acquire);
    for (int spin = 0; now == seen && spin < spin_iterations; ++spin) {
      cpu_relax();
      now = generation_.load(std::memory_order_acquire);
    }
    if (now == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = now;
    if (stop_.load(std::memory_order_acquire)) return;
    work(thread_index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace qcoder::cpu
