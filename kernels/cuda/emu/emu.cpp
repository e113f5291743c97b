// The emulator's runtime: the thread pool that runs a block, the block and warp barriers, and shared memory.
//
// Barriers are our own (a mutex and a condition variable per block) rather than std::barrier, because we
// need to tell a correct kernel from a broken one instead of hanging or silently shrinking the barrier as
// arrive_and_drop would:
// - a thread that reaches __syncthreads after another thread of its block returned, or that returns while
//   others wait at __syncthreads, aborts the block (CUDA leaves this undefined; on a GPU it hangs or
//   corrupts);
// - the same for a warp collective and the lanes of its warp;
// - when every live thread of the block waits and no barrier can complete (say half a warp at a shuffle and
//   the other half at __syncthreads), the block is deadlocked and aborts.
// An aborted block wakes its waiting threads, which unwind out of the kernel body with an internal exception;
// the launch then returns the first error, naming kernel, block and thread.
//
// Locks follow what the hardware synchronises, so that ThreadSanitizer sees exactly the happens-before edges
// CUDA gives: __syncthreads goes through the block's mutex (all threads), a warp collective through its warp's
// own mutex (that warp's lanes only). A kernel that passes data between warps through shared memory without a
// __syncthreads between the write and the read is therefore a data race TSan reports, even when both warps
// meanwhile shuffle. The block-wide bookkeeping that every thread touches (how many threads are blocked or
// gone, whether the block failed) is relaxed atomics, which give TSan no edges; waiting threads wake up
// periodically to look at it (see wait_for_phase), so an abort or a deadlock never needs a lock shared by all.
#include "kernels/cuda/emu/emu.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace qcoder::cuda::emu {

namespace {

constexpr unsigned max_threads_per_block = 1024;
constexpr std::size_t max_dynamic_shared_bytes = 227 * 1024;  // sm_90's opt-in limit, the largest of any target

// Thrown inside an emulated thread to unwind it out of the kernel body once its block has failed.
struct block_aborted {};

// One barrier: `participants` threads must arrive; `exited` of them have returned from the kernel. Guarded by
// the mutex of its owner (the block's for __syncthreads, the warp's for a warp collective).
struct barrier_state {
  int participants = 0;
  int arrived = 0;
  int exited = 0;
  std::uint64_t generation = 0;
};

struct warp_state {
  std::mutex mutex;
  std::condition_variable changed;
  barrier_state barrier;
  std::uint32_t lane_mask = 0;  // the lanes this warp has (all 32 but in a block's last, partial warp)
  const char* op = nullptr;     // the collective the arrived lanes are in, to catch mismatched ones
  std::array<std::array<std::byte, 8>, warp_size> slots{};
  std::array<std::array<std::byte, 8>, warp_size> published{};  // the slots as they were when all arrived
  std::uint32_t ballot = 0;                                       // the last vote, likewise
};

// How long a waiting thread sleeps before it looks again for an abort or a deadlock that no notification
// announced (those are posted without the waiter's lock, so a wake-up can be missed; the next look finds it).
constexpr auto poll_interval = std::chrono::milliseconds(10);

}  // namespace

struct block_state {
  const char* kernel = "";
  uint3 block_idx{};
  int threads = 0;
  // __syncthreads.
  std::mutex mutex;
  std::condition_variable changed;
  barrier_state block_barrier;
  // Threads waiting in any barrier plus threads that returned: when it reaches `threads`, no barrier can
  // ever complete (the last thread to arrive at a barrier completes it instead of waiting, and counts the
  // waiters it wakes back out before waking them).
  std::atomic<int> inactive{0};
  std::atomic<bool> aborted{false};
  std::mutex error_mutex;  // a leaf lock: taken with or without a barrier's mutex, never the other way round
  std::string error;
  int warp_count = 0;
  std::unique_ptr<warp_state[]> warps;
  std::mutex shared_mutex;  // the map of static shared buffers
  std::map<const void*, std::unique_ptr<std::byte[]>> static_shared;
  std::unique_ptr<std::byte[]> dynamic_shared;

  warp_state& warp_of(const thread_state& thread) { return warps[static_cast<std::size_t>(thread.linear_id / warp_size)]; }
};

namespace {

thread_local thread_state* current_thread = nullptr;

std::string where(const block_state& block, const thread_state& thread) {
  return fmt::format("kernel {} block ({},{},{}) thread ({},{},{})", block.kernel, block.block_idx.x,
                     block.block_idx.y, block.block_idx.z, thread.thread_idx.x, thread.thread_idx.y,
                     thread.thread_idx.z);
}

// Records the block's first error and tells every waiting thread; the caller then throws block_aborted.
void abort_block(block_state& block, std::string message) {
  {
    std::lock_guard lock(block.error_mutex);
    if (!block.aborted.load(std::memory_order_relaxed)) block.error = std::move(message);
    block.aborted.store(true, std::memory_order_relaxed);
  }
  block.changed.notify_all();
  for (int w = 0; w < block.warp_count; ++w) block.warps[static_cast<std::size_t>(w)].changed.notify_all();
}

bool aborted(const block_state& block) { return block.aborted.load(std::memory_order_relaxed); }

// Arrives at `barrier` (guarded by `lock`, announced through `changed`); `on_complete` runs under the lock in
// the thread that completes the phase.
template <typename OnComplete>
void arrive_and_wait(std::unique_lock<std::mutex>& lock, std::condition_variable& changed, block_state& block,
                     barrier_state& barrier, const thread_state& thread, const char* what, OnComplete on_complete) {
  if (aborted(block)) throw block_aborted{};
  if (barrier.exited > 0) {
    abort_block(block, fmt::format("{}: reached {} after {} thread(s) that must also reach it returned from "
                                   "the kernel (a barrier in divergent code)",
                                   where(block, thread), what, barrier.exited));
    throw block_aborted{};
  }
  if (++barrier.arrived == barrier.participants) {
    on_complete();
    block.inactive.fetch_sub(barrier.participants - 1, std::memory_order_relaxed);  // the waiters, woken below
    barrier.arrived = 0;
    ++barrier.generation;
    changed.notify_all();
    return;
  }
  const std::uint64_t generation = barrier.generation;
  block.inactive.fetch_add(1, std::memory_order_relaxed);
  while (!changed.wait_for(lock, poll_interval, [&] { return aborted(block) || barrier.generation != generation; })) {
    if (block.inactive.load(std::memory_order_relaxed) == block.threads) {
      abort_block(block, fmt::format("{}: deadlock: every live thread waits at a barrier that cannot complete "
                                     "(threads of one warp or block in different __syncthreads/warp collectives)",
                                     where(block, thread)));
    }
  }
  if (barrier.generation == generation) throw block_aborted{};
}

// A thread returned from the kernel body: fail any barrier it leaves waiting.
void thread_exited(block_state& block, const thread_state& thread) {
  warp_state& warp = block.warp_of(thread);
  {
    std::lock_guard lock(warp.mutex);
    ++warp.barrier.exited;
    if (warp.barrier.arrived > 0) {
      abort_block(block, fmt::format("{}: returned from the kernel while {} lane(s) of its warp wait at {}",
                                     where(block, thread), warp.barrier.arrived, warp.op));
    }
  }
  {
    std::lock_guard lock(block.mutex);
    ++block.block_barrier.exited;
    if (block.block_barrier.arrived > 0) {
      abort_block(block, fmt::format("{}: returned from the kernel while {} thread(s) wait at __syncthreads "
                                     "(a barrier in divergent code)",
                                     where(block, thread), block.block_barrier.arrived));
    }
  }
  block.inactive.fetch_add(1, std::memory_order_relaxed);
}

// The calling lane's warp, checked for a collective `op` with `mask`; the caller holds the warp's mutex.
warp_state& checked_warp(block_state& block, const thread_state& thread, std::uint32_t mask, const char* op) {
  warp_state& warp = block.warp_of(thread);
  if (mask != warp.lane_mask) {
    abort_block(block, fmt::format("{}: {} with mask {:#010x}, but its warp has lanes {:#010x}; the emulator "
                                   "supports only the mask of all the warp's lanes",
                                   where(block, thread), op, mask, warp.lane_mask));
    throw block_aborted{};
  }
  if (warp.barrier.arrived > 0 && warp.op != op) {
    abort_block(block, fmt::format("{}: {} while other lanes of its warp wait at {}", where(block, thread), op,
                                   warp.op));
    throw block_aborted{};
  }
  warp.op = op;
  return warp;
}

}  // namespace

thread_state& this_thread() {
  if (current_thread == nullptr) {
    // A builtin read outside a launch is a bug in the caller; there is no block to report it to.
    std::fputs("qcoder cuda emulator: threadIdx/__syncthreads/... used outside a kernel launch\n", stderr);
    std::abort();
  }
  return *current_thread;
}

void sync_threads() {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  std::unique_lock lock(block.mutex);
  arrive_and_wait(lock, block.changed, block, block.block_barrier, thread, "__syncthreads", [] {});
}

void warp_exchange(std::uint32_t mask, const void* in, void* out, std::size_t bytes,
                   const std::function<int(int lane)>& source, const char* op) {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  const int lane = thread.linear_id % warp_size;
  warp_state& warp = block.warp_of(thread);
  std::unique_lock lock(warp.mutex);
  checked_warp(block, thread, mask, op);
  std::memcpy(warp.slots[static_cast<std::size_t>(lane)].data(), in, bytes);
  arrive_and_wait(lock, warp.changed, block, warp.barrier, thread, op, [&] { warp.published = warp.slots; });
  int from = source(lane);
  // Reading a lane the warp does not have is undefined in CUDA; keep our own value rather than read garbage.
  if (from < 0 || from >= warp_size || (warp.lane_mask >> from & 1u) == 0) from = lane;
  std::memcpy(out, warp.published[static_cast<std::size_t>(from)].data(), bytes);
}

std::uint32_t warp_ballot(std::uint32_t mask, bool predicate, const char* op) {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  const int lane = thread.linear_id % warp_size;
  warp_state& warp = block.warp_of(thread);
  std::unique_lock lock(warp.mutex);
  checked_warp(block, thread, mask, op);
  warp.slots[static_cast<std::size_t>(lane)][0] = std::byte{predicate ? std::uint8_t{1} : std::uint8_t{0}};
  arrive_and_wait(lock, warp.changed, block, warp.barrier, thread, op, [&] {
    warp.ballot = 0;
    for (int l = 0; l < warp_size; ++l) {
      if ((warp.lane_mask >> l & 1u) != 0 && warp.slots[static_cast<std::size_t>(l)][0] != std::byte{0}) {
        warp.ballot |= 1u << l;
      }
    }
  });
  return warp.ballot;
}

void* static_shared(const void* key, std::size_t bytes) {
  block_state& block = *this_thread().block;
  std::lock_guard lock(block.shared_mutex);
  auto& buffer = block.static_shared[key];
  if (!buffer) {
    buffer = std::make_unique_for_overwrite<std::byte[]>(bytes);
    std::memset(buffer.get(), 0xff, bytes);
  }
  return buffer.get();
}

void* dynamic_shared() { return this_thread().block->dynamic_shared.get(); }

std::string kernel_name(const void* function, const std::source_location& launched_at) {
  std::string name = fmt::format("at {}", function);
  Dl_info info{};
  if (dladdr(function, &info) != 0 && info.dli_sname != nullptr) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status),
                                                     std::free);
    name = status == 0 ? demangled.get() : info.dli_sname;
  }
  return fmt::format("{} (launched at {}:{})", name, launched_at.file_name(), launched_at.line());
}

namespace {

std::unique_ptr<block_state> make_block(const char* kernel, uint3 block_idx, dim3 block_dim,
                                        std::size_t dynamic_shared_bytes) {
  auto block = std::make_unique<block_state>();
  block->kernel = kernel;
  block->block_idx = block_idx;
  block->threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  block->block_barrier.participants = block->threads;
  const int warps = (block->threads + warp_size - 1) / warp_size;
  block->warp_count = warps;
  block->warps = std::make_unique<warp_state[]>(static_cast<std::size_t>(warps));
  for (int w = 0; w < warps; ++w) {
    const int lanes = std::min(warp_size, block->threads - w * warp_size);
    auto& warp = block->warps[static_cast<std::size_t>(w)];
    warp.barrier.participants = lanes;
    warp.lane_mask = lanes == warp_size ? 0xffffffffu : (1u << lanes) - 1u;
  }
  if (dynamic_shared_bytes > 0) {
    block->dynamic_shared = std::make_unique_for_overwrite<std::byte[]>(dynamic_shared_bytes);
    std::memset(block->dynamic_shared.get(), 0xff, dynamic_shared_bytes);
  }
  return block;
}

// Runs one emulated thread's share of every block, in order; the launching thread hands out blocks.
class block_runner {
 public:
  block_runner(dim3 grid, dim3 block, const std::function<void()>& body) : grid_(grid), block_(block), body_(body) {
    const unsigned n = block.x * block.y * block.z;
    threads_.reserve(n);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { worker(static_cast<int>(i)); });
  }
  ~block_runner() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) t.join();
  }
  block_runner(const block_runner&) = delete;
  block_runner& operator=(const block_runner&) = delete;

  // Runs every thread of `block` to completion.
  void run(block_state& block) {
    std::unique_lock lock(mutex_);
    current_ = &block;
    done_ = 0;
    ++generation_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return done_ == threads_.size(); });
  }

 private:
  void worker(int linear_id) {
    thread_state state;
    state.linear_id = linear_id;
    state.block_dim = block_;
    state.grid_dim = grid_;
    state.thread_idx = uint3{static_cast<unsigned>(linear_id) % block_.x,
                             static_cast<unsigned>(linear_id) / block_.x % block_.y,
                             static_cast<unsigned>(linear_id) / (block_.x * block_.y)};
    current_thread = &state;
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) break;
        seen = generation_;
        state.block = current_;
      }
      state.block_idx = state.block->block_idx;
      run_body(state);
      std::lock_guard lock(mutex_);
      if (++done_ == threads_.size()) changed_.notify_all();
    }
    current_thread = nullptr;
  }

  void run_body(thread_state& state) {
    block_state& block = *state.block;
    try {
      body_();
      thread_exited(block, state);
    } catch (const block_aborted&) {
      // The block's error is already recorded; this thread just stops.
    } catch (const std::exception& e) {
      abort_block(block, fmt::format("{}: exception: {}", where(block, state), e.what()));
    }
  }

  dim3 grid_;
  dim3 block_;
  const std::function<void()>& body_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  std::uint64_t generation_ = 0;
  std::size_t done_ = 0;
  block_state* current_ = nullptr;
  std::vector<std::thread> threads_;  // last: started after every other member is ready
};

result<void> check_config(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > max_threads_per_block || block.z > 64) {
    return fail(errc::invalid_argument, "kernel {}: block ({},{},{}) is not a valid CUDA block", kernel, block.x,
                block.y, block.z);
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    return fail(errc::invalid_argument, "kernel {}: grid ({},{},{}) is not a valid CUDA grid", kernel, grid.x, grid.y,
                grid.z);
  }
  if (dynamic_shared_bytes > max_dynamic_shared_bytes) {
    return fail(errc::invalid_argument, "kernel {}: {} bytes of dynamic shared memory exceed the {} any GPU has",
                kernel, dynamic_shared_bytes, max_dynamic_shared_bytes);
  }
  return ok();
}

}  // namespace

result<void> run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                      const std::function<void()>& body) {
  QCODER_CHECK(check_config(kernel, grid, block, dynamic_shared_bytes));
  block_runner runner(grid, block, body);
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        auto state = make_block(kernel, uint3{x, y, z}, block, dynamic_shared_bytes);
        runner.run(*state);
        if (aborted(*state)) return fail(errc::internal, "{}", state->error);
      }
    }
  }
  return ok();
}

}  // namespace qcoder::cuda::emu
