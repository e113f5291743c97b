// The emulator's runtime: the fibers that run a block's threads, the block and warp barriers, and shared
// memory.
//
// A launch runs on the calling OS thread. Each emulated GPU thread is a fiber (its own stack, switched by a
// few instructions of assembly: x86-64 only); a fiber runs until it reaches a barrier (__syncthreads, or a warp collective for its warp's
// lanes) or returns, and the block's scheduler then resumes the next fiber that can go on, round robin. One
// OS thread per launch instead of one per GPU thread makes a barrier a few hundred nanoseconds instead of a
// round of context switches through the kernel, fast enough to run the whole model on the emulator, and the
// order of execution repeatable.
//
// Barriers are our own because we must tell a correct kernel from a broken one instead of hanging:
// - a thread that reaches __syncthreads after another thread of its block returned, or that returns while
//   others wait at __syncthreads, aborts the block (CUDA leaves this undefined; on a GPU it hangs or
//   corrupts); the same for a warp collective and the lanes of its warp;
// - when no fiber of the block can go on (say half a warp at a shuffle and the other half at
//   __syncthreads), the block is deadlocked and aborts.
// An aborted block resumes its waiting fibers, which unwind out of the kernel body with an internal
// exception; the launch then returns the first error, naming kernel, block and thread.
//
// The sanitizers see fibers as threads. ThreadSanitizer gets exactly the happens-before edges CUDA gives and
// no others: fiber switches carry none (__tsan_switch_to_fiber_no_sync); every arrival at a barrier releases
// it and every departure acquires it, so __syncthreads orders all threads of a block and a warp collective
// the lanes of its warp; a block's fibers acquire the block's setup (which follows the host's launch call)
// and release into the launch's end, so the host code around a launch is ordered with it but the blocks of
// one launch are not ordered with each other (as on a GPU). The emulator's own bookkeeping, which every fiber touches, is hidden from TSan. A kernel that
// passes data between warps through shared memory without a __syncthreads is therefore a reported race.
// AddressSanitizer is told of every stack switch (__sanitizer_start/finish_switch_fiber).
// Thread-safety: each launch is confined to its OS thread; launches on different threads are independent.
#include "kernels/cuda/emu/emu.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <sys/mman.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include <fmt/format.h>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

// The stack switch: saves the callee-saved registers and the floating-point control words on the current
// stack, stores the stack pointer in *from_sp, and resumes the stack at to_sp the same way. A few
// nanoseconds, where swapcontext makes a system call (it saves the signal mask) on every switch. A new
// fiber's stack is laid out (prepare_fiber) so that the first switch "returns" into qcoder_emu_fiber_start.
extern "C" void qcoder_emu_switch(void** from_sp, void* to_sp);
extern "C" void qcoder_emu_fiber_start();
extern "C" [[noreturn]] void qcoder_emu_fiber_entry();
asm(R"(
  .text
  .globl qcoder_emu_switch
  .type qcoder_emu_switch, @function
qcoder_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size qcoder_emu_switch, .-qcoder_emu_switch

  .globl qcoder_emu_fiber_start
  .type qcoder_emu_fiber_start, @function
qcoder_emu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  call qcoder_emu_fiber_entry
  ud2
  .cfi_endproc
  .size qcoder_emu_fiber_start, .-qcoder_emu_fiber_start
)");

namespace qcoder::cuda::emu {

namespace {

constexpr unsigned max_threads_per_block = 1024;
constexpr std::size_t max_dynamic_shared_bytes = 227 * 1024;  // sm_90's opt-in limit, the largest of any target
// Per emulated thread. Kernels keep small arrays in registers on a GPU, here on this stack; sanitizer builds
// grow frames several times. Mapped without reserve: only the pages a kernel touches cost memory.
constexpr std::size_t fiber_stack_bytes = 1024 * 1024;
constexpr std::size_t guard_bytes = 4096;  // below each stack, unmapped: an overflow faults instead of corrupting

// Thrown inside a fiber to unwind it out of the kernel body once its block has failed.
struct block_aborted {};

// TSan must not see the emulator's bookkeeping (barrier counters, warp slots, the fiber table) as races
// between the fibers that touch it: it is ordered by the scheduler, which TSan cannot know.
class hidden_from_tsan {
 public:
#if defined(__SANITIZE_THREAD__)
  hidden_from_tsan() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~hidden_from_tsan() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#else
  hidden_from_tsan() {}  // NOLINT: non-trivial so that `hidden_from_tsan h;` is not an unused variable
#endif
  hidden_from_tsan(const hidden_from_tsan&) = delete;
  hidden_from_tsan& operator=(const hidden_from_tsan&) = delete;
};

void tsan_release(const void* address) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(address));
#else
  (void)address;
#endif
}

void tsan_acquire(const void* address) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(address));
#else
  (void)address;
#endif
}

// One barrier: `participants` threads must arrive; `exited` of them have returned from the kernel.
struct barrier_state {
  int participants = 0;
  int arrived = 0;
  int exited = 0;
  std::uint64_t generation = 0;
};

struct warp_state {
  barrier_state barrier;
  std::uint32_t lane_mask = 0;  // the lanes this warp has (all 32 but in a block's last, partial warp)
  const char* op = nullptr;     // the collective the arrived lanes are in, to catch mismatched ones
  std::array<std::array<std::byte, 8>, warp_size> slots{};
  std::array<std::array<std::byte, 8>, warp_size> published{};  // the slots as they were when all arrived
  std::uint32_t ballot = 0;                                       // the last vote, likewise
};

// One emulated thread: its stack and context, and what it waits for.
struct fiber {
  void* sp = nullptr;  // the saved stack pointer while switched out
  std::byte* stack = nullptr;  // the usable stack, fiber_stack_bytes above a guard page
  thread_state state;
  const barrier_state* waiting_on = nullptr;
  std::uint64_t waiting_generation = 0;
  bool done = false;
  void* tsan_fiber = nullptr;
};

}  // namespace

struct block_state {
  const char* kernel = "";
  uint3 block_idx{};
  int threads = 0;
  barrier_state block_barrier;
  std::vector<warp_state> warps;
  bool aborted = false;
  std::string error;
  std::map<const void*, std::unique_ptr<std::byte[]>> static_shared;
  std::unique_ptr<std::byte[]> dynamic_shared;

  warp_state& warp_of(const thread_state& thread) { return warps[static_cast<std::size_t>(thread.linear_id / warp_size)]; }
};

namespace {

thread_local thread_state* current_thread = nullptr;

// The fibers of the launches on this OS thread, kept for the next launch (stacks are the costly part).
class fiber_pool {
 public:
  fiber_pool() = default;
  fiber_pool(const fiber_pool&) = delete;
  fiber_pool& operator=(const fiber_pool&) = delete;
  ~fiber_pool() {
    for (fiber& f : fibers_) {
      munmap(f.stack - guard_bytes, fiber_stack_bytes + guard_bytes);
#if defined(__SANITIZE_THREAD__)
      __tsan_destroy_fiber(f.tsan_fiber);
#endif
    }
  }

  // At least `count` fibers; the deque keeps addresses stable as it grows.
  std::deque<fiber>& reserve(std::size_t count) {
    while (fibers_.size() < count) {
      void* mapped = mmap(nullptr, fiber_stack_bytes + guard_bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (mapped == MAP_FAILED) {
        std::fputs("qcoder cuda emulator: cannot map a fiber stack\n", stderr);
        std::abort();
      }
      mprotect(mapped, guard_bytes, PROT_NONE);
      fiber& f = fibers_.emplace_back();
      f.stack = static_cast<std::byte*>(mapped) + guard_bytes;
#if defined(__SANITIZE_THREAD__)
      f.tsan_fiber = __tsan_create_fiber(0);
#endif
    }
    return fibers_;
  }

 private:
  std::deque<fiber> fibers_;
};

// The scheduler of the block being run on this OS thread.
struct scheduler {
  void* sp = nullptr;
  fiber* running = nullptr;
  void* tsan_self = nullptr;              // the OS thread's own TSan context
  const void* asan_stack_bottom = nullptr;  // the OS thread's stack, as ASan reported it when we left it
  std::size_t asan_stack_size = 0;
  const void* end_sync = nullptr;  // released by each fiber as it returns, acquired by the host after
  std::function<void()> body;
};

thread_local scheduler* current_scheduler = nullptr;

// From the scheduler into `f`, until it blocks or returns.
[[gnu::noinline]] void resume(scheduler& s, fiber& f) {
  s.running = &f;
  current_thread = &f.state;
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(f.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, f.stack, fiber_stack_bytes);
#endif
  qcoder_emu_switch(&s.sp, f.sp);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  current_thread = nullptr;
  s.running = nullptr;
}

// From the running fiber back to the scheduler, to be resumed later.
[[gnu::noinline]] void yield(scheduler& s, fiber& f) {
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(s.tsan_self, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, s.asan_stack_bottom, s.asan_stack_size);
#endif
  qcoder_emu_switch(&f.sp, s.sp);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

// The last switch of a finished fiber (see fiber_main).
[[noreturn, gnu::noinline]] void leave_for_good(void** from, void* to, void* tsan_to, const void* asan_bottom,
                                               std::size_t asan_size) {
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(tsan_to, __tsan_switch_to_fiber_no_sync);
#else
  (void)tsan_to;
#endif
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(nullptr, asan_bottom, asan_size);
#else
  (void)asan_bottom;
  (void)asan_size;
#endif
  qcoder_emu_switch(from, to);
  std::abort();  // a finished fiber is never resumed
}

std::string where(const block_state& block, const thread_state& thread) {
  return fmt::format("kernel {} block ({},{},{}) thread ({},{},{})", block.kernel, block.block_idx.x,
                     block.block_idx.y, block.block_idx.z, thread.thread_idx.x, thread.thread_idx.y,
                     thread.thread_idx.z);
}

// Records the block's first error; waiting fibers see `aborted` when resumed and unwind.
void abort_block(block_state& block, std::string message) {
  if (!block.aborted) block.error = std::move(message);
  block.aborted = true;
}

// Arrives at `barrier`; `on_complete` runs in the fiber that completes the phase. Called with the
// bookkeeping hidden from TSan; the release/acquire pair is what orders the threads.
template <typename OnComplete>
void arrive_and_wait(block_state& block, barrier_state& barrier, const thread_state& thread, const char* what,
                     OnComplete on_complete) {
  if (block.aborted) throw block_aborted{};
  if (barrier.exited > 0) {
    abort_block(block, fmt::format("{}: reached {} after {} thread(s) that must also reach it returned from "
                                   "the kernel (a barrier in divergent code)",
                                   where(block, thread), what, barrier.exited));
    throw block_aborted{};
  }
  tsan_release(&barrier);
  if (++barrier.arrived == barrier.participants) {
    on_complete();
    barrier.arrived = 0;
    ++barrier.generation;
    tsan_acquire(&barrier);
    return;
  }
  scheduler& s = *current_scheduler;
  fiber& f = *s.running;
  f.waiting_on = &barrier;
  f.waiting_generation = barrier.generation;
  yield(s, f);
  f.waiting_on = nullptr;
  if (barrier.generation == f.waiting_generation) throw block_aborted{};  // resumed only to unwind
  tsan_acquire(&barrier);
}

// A thread returned from the kernel body: fail any barrier it leaves waiting.
void thread_exited(block_state& block, const thread_state& thread) {
  warp_state& warp = block.warp_of(thread);
  ++block.block_barrier.exited;
  ++warp.barrier.exited;
  if (block.block_barrier.arrived > 0) {
    abort_block(block, fmt::format("{}: returned from the kernel while {} thread(s) wait at __syncthreads "
                                   "(a barrier in divergent code)",
                                   where(block, thread), block.block_barrier.arrived));
  } else if (warp.barrier.arrived > 0) {
    abort_block(block, fmt::format("{}: returned from the kernel while {} lane(s) of its warp wait at {}",
                                   where(block, thread), warp.barrier.arrived, warp.op));
  }
}

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

// The body of every fiber: the kernel, then back to the scheduler for good.
[[noreturn]] void fiber_main() {
  scheduler* sched = nullptr;
  fiber* self = nullptr;
  block_state* block = nullptr;
  {
    hidden_from_tsan hidden;
    sched = current_scheduler;
    self = sched->running;
    block = self->state.block;
  }
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &sched->asan_stack_bottom, &sched->asan_stack_size);
#endif
  tsan_acquire(block);  // the launch's arguments and the block's setup, released by the scheduler
  try {
    sched->body();
    hidden_from_tsan hidden;
    thread_exited(*block, self->state);
  } catch (const block_aborted&) {
    // The block's error is already recorded; this thread just stops.
  } catch (const std::exception& e) {
    hidden_from_tsan hidden;
    abort_block(*block, fmt::format("{}: exception: {}", where(*block, self->state), e.what()));
  }
  // Back to the scheduler for good. What the switch needs is read first: once end_sync is released the
  // launch may return and its scheduler's memory be reused, and nothing after the release may touch it.
  const void* end_sync = nullptr;
  void* tsan_scheduler = nullptr;
  const void* asan_bottom = nullptr;
  std::size_t asan_size = 0;
  void* scheduler_sp = nullptr;
  {
    hidden_from_tsan hidden;
    end_sync = sched->end_sync;
    tsan_scheduler = sched->tsan_self;
    asan_bottom = sched->asan_stack_bottom;
    asan_size = sched->asan_stack_size;
    scheduler_sp = sched->sp;
    self->done = true;
  }
  tsan_release(end_sync);
  leave_for_good(&self->sp, scheduler_sp, tsan_scheduler, asan_bottom, asan_size);
}

void init_block(block_state& block, const char* kernel, uint3 block_idx, dim3 block_dim, std::size_t dynamic_shared_bytes) {
  block.kernel = kernel;
  block.block_idx = block_idx;
  block.threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  block.block_barrier.participants = block.threads;
  const int warps = (block.threads + warp_size - 1) / warp_size;
  block.warps.resize(static_cast<std::size_t>(warps));
  for (int w = 0; w < warps; ++w) {
    const int lanes = std::min(warp_size, block.threads - w * warp_size);
    auto& warp = block.warps[static_cast<std::size_t>(w)];
    warp.barrier.participants = lanes;
    warp.lane_mask = lanes == warp_size ? 0xffffffffu : (1u << lanes) - 1u;
  }
  if (dynamic_shared_bytes > 0) {
    block.dynamic_shared = std::make_unique_for_overwrite<std::byte[]>(dynamic_shared_bytes);
    std::memset(block.dynamic_shared.get(), 0xff, dynamic_shared_bytes);
  }
}

// Sets fiber `f` up as thread `i` of `block`, to start at fiber_main: its stack holds what
// qcoder_emu_switch pops (zeroed registers, the default MXCSR and x87 control word) under the address of
// qcoder_emu_fiber_start, placed so that the stack is 16-byte aligned at its call, as the ABI requires.
void prepare_fiber(fiber& f, block_state& block, unsigned i, dim3 grid, dim3 block_dim) {
  hidden_from_tsan hidden;  // the previous block's fiber read these; the release after setup orders the next
  f.state = thread_state{};
  f.state.linear_id = static_cast<int>(i);
  f.state.block_dim = block_dim;
  f.state.grid_dim = grid;
  f.state.block_idx = block.block_idx;
  f.state.thread_idx = uint3{i % block_dim.x, i / block_dim.x % block_dim.y, i / (block_dim.x * block_dim.y)};
  f.state.block = &block;
  f.waiting_on = nullptr;
  f.done = false;
  std::byte* top = f.stack + fiber_stack_bytes;  // page-aligned
  auto* slots = reinterpret_cast<std::uint64_t*>(top);
  slots[-1] = reinterpret_cast<std::uint64_t>(&qcoder_emu_fiber_start);
  for (int i = 2; i <= 7; ++i) slots[-i] = 0;  // rbp rbx r12 r13 r14 r15
  auto* control = reinterpret_cast<std::uint32_t*>(top - 64);
  control[0] = 0x1f80;  // MXCSR: all exceptions masked, round to nearest
  control[1] = 0x037f;  // x87 control word: the same, extended precision
  f.sp = top - 64;
}

// Runs every thread of `block` to completion (or to the block's abort).
void run_block(scheduler& s, std::deque<fiber>& fibers, block_state& block, dim3 grid, dim3 block_dim) {
  const auto count = static_cast<std::size_t>(block.threads);
  for (std::size_t i = 0; i < count; ++i) prepare_fiber(fibers[i], block, static_cast<unsigned>(i), grid, block_dim);
  tsan_release(&block);  // everything above (and the launch's setup) happens before the block's threads
  hidden_from_tsan hidden;  // the scheduling below reads what the fibers write about themselves
  std::size_t live = count;
  while (live > 0) {
    bool progressed = false;
    for (std::size_t i = 0; i < count; ++i) {
      fiber& f = fibers[i];
      if (f.done) continue;
      if (f.waiting_on != nullptr && !block.aborted && f.waiting_on->generation == f.waiting_generation) continue;
      resume(s, f);
      progressed = true;
      if (f.done) --live;
    }
    if (!progressed) {
      // Every live fiber waits at a barrier that cannot complete.
      for (std::size_t i = 0; i < count; ++i) {
        if (!fibers[i].done) {
          abort_block(block, fmt::format("{}: deadlock: every live thread waits at a barrier that cannot complete "
                                         "(threads of one warp or block in different __syncthreads/warp collectives)",
                                         where(block, fibers[i].state)));
          break;
        }
      }
    }
  }
}

}  // namespace
}  // namespace qcoder::cuda::emu

extern "C" void qcoder_emu_fiber_entry() { qcoder::cuda::emu::fiber_main(); }

namespace qcoder::cuda::emu {
namespace {

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

thread_state& this_thread() {
  thread_state* current = nullptr;
  {
    hidden_from_tsan hidden;  // written by the scheduler before each switch, which TSan cannot order
    current = current_thread;
  }
  if (current == nullptr) {
    // A builtin read outside a launch is a bug in the caller; there is no block to report it to.
    std::fputs("qcoder cuda emulator: threadIdx/__syncthreads/... used outside a kernel launch\n", stderr);
    std::abort();
  }
  return *current;
}

void sync_threads() {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  hidden_from_tsan hidden;
  arrive_and_wait(block, block.block_barrier, thread, "__syncthreads", [] {});
}

void warp_exchange(std::uint32_t mask, const void* in, void* out, std::size_t bytes,
                   const std::function<int(int lane)>& source, const char* op) {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  const int lane = thread.linear_id % warp_size;
  hidden_from_tsan hidden;
  warp_state& warp = checked_warp(block, thread, mask, op);
  std::memcpy(warp.slots[static_cast<std::size_t>(lane)].data(), in, bytes);
  arrive_and_wait(block, warp.barrier, thread, op, [&] { warp.published = warp.slots; });
  int from = source(lane);
  // Reading a lane the warp does not have is undefined in CUDA; keep our own value rather than read garbage.
  if (from < 0 || from >= warp_size || (warp.lane_mask >> from & 1u) == 0) from = lane;
  std::memcpy(out, warp.published[static_cast<std::size_t>(from)].data(), bytes);
}

std::uint32_t warp_ballot(std::uint32_t mask, bool predicate, const char* op) {
  thread_state& thread = this_thread();
  block_state& block = *thread.block;
  const int lane = thread.linear_id % warp_size;
  hidden_from_tsan hidden;
  warp_state& warp = checked_warp(block, thread, mask, op);
  warp.slots[static_cast<std::size_t>(lane)][0] = std::byte{predicate ? std::uint8_t{1} : std::uint8_t{0}};
  arrive_and_wait(block, warp.barrier, thread, op, [&] {
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
  std::byte* p = nullptr;
  bool created = false;
  {
    hidden_from_tsan hidden;
    auto& buffer = block.static_shared[key];
    if (!buffer) {
      buffer = std::make_unique_for_overwrite<std::byte[]>(bytes);
      created = true;
    }
    p = buffer.get();
  }
  // The first thread to get here fills the buffer; every other thread's declaration is ordered after that
  // fill (as a GPU's shared memory exists before the block's threads start), and after nothing else.
  if (created) {
    std::memset(p, 0xff, bytes);
    tsan_release(p);
  } else {
    tsan_acquire(p);
  }
  return p;
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

#if defined(__SANITIZE_THREAD__)
constexpr bool keep_block_states = true;
#else
constexpr bool keep_block_states = false;
#endif

result<void> run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                      const std::function<void()>& body) {
  QCODER_CHECK(check_config(kernel, grid, block, dynamic_shared_bytes));
  if (current_scheduler != nullptr) {
    return fail(errc::invalid_argument, "kernel {}: launched from inside a kernel (dynamic parallelism is not emulated)",
                kernel);
  }
  thread_local fiber_pool pool;
  std::deque<fiber>& fibers = pool.reserve(static_cast<std::size_t>(block.x) * block.y * block.z);
  scheduler s;
  s.body = body;
#if defined(__SANITIZE_THREAD__)
  s.tsan_self = __tsan_get_current_fiber();
#endif
  // Two addresses unique to this launch for the host ↔ fiber happens-before edges.
  const char end_sync = 0;
  s.end_sync = &end_sync;
  current_scheduler = &s;
  result<void> outcome = ok();
  // Under TSan each block's state (and shared memory) lives until the launch's end: freeing or reusing it is
  // a write, which must come after the fibers' last use of it in TSan's order, and only the launch's end
  // orders them with the host. Elsewhere a block's state goes when the block ends (big grids would otherwise
  // hold every block's shared memory at once: a tenth of the emulator's time went to growing the heap).
  std::deque<block_state> blocks;
  for (unsigned z = 0; z < grid.z && outcome; ++z) {
    for (unsigned y = 0; y < grid.y && outcome; ++y) {
      for (unsigned x = 0; x < grid.x && outcome; ++x) {
        block_state& state = blocks.emplace_back();
        init_block(state, kernel, uint3{x, y, z}, block, dynamic_shared_bytes);
        run_block(s, fibers, state, grid, block);
        hidden_from_tsan hidden;
        if (state.aborted) outcome = fail(errc::internal, "{}", state.error);
        if (!keep_block_states) blocks.pop_back();  // its memory serves the next block
      }
    }
  }
  current_scheduler = nullptr;
  tsan_acquire(s.end_sync);
  blocks.clear();
  return outcome;
}

}  // namespace qcoder::cuda::emu
