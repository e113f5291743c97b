// The emulator's streams, events and graphs; see streams.h. A stream's thread takes its queue's front, runs it
// with the stream's lock released, and keeps the first error. Events count: record() queues a closure that
// marks the event's next generation done; wait_for() queues (or, on the host, performs) a wait for the
// generation that was last recorded when it was called.
#include "kernels/cuda/emu/streams.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

struct CUgraphExec_st {
  std::vector<qcoder::cuda::emu::work> items;
};

struct CUstream_st {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<qcoder::cuda::emu::work> queue;
  bool running = false;  // an item was taken off the queue and has not finished
  bool stop = false;
  std::optional<qcoder::error> first_error;
  std::unique_ptr<CUgraphExec_st> capture;  // non-null while capturing
  std::thread thread;                       // last: started once the rest is ready
};

struct CUevent_st {
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t recorded = 0;  // generations handed out by record()
  std::uint64_t done = 0;      // generations whose point has run
};

namespace qcoder::cuda::emu {

namespace {

void run_stream(CUstream_st* s) {
  std::unique_lock lock(s->mutex);
  for (;;) {
    s->changed.wait(lock, [&] { return s->stop || !s->queue.empty(); });
    if (s->queue.empty()) return;  // stopping, and nothing left to run
    work item = std::move(s->queue.front());
    s->queue.pop_front();
    s->running = true;
    lock.unlock();
    result<void> r = item();
    lock.lock();
    s->running = false;
    if (!r && !s->first_error) s->first_error = r.take_error();
    s->changed.notify_all();
  }
}

// Waits until generation `target` of `event` has run.
void wait_generation(CUevent_st* event, std::uint64_t target) {
  std::unique_lock lock(event->mutex);
  event->changed.wait(lock, [&] { return event->done >= target; });
}

}  // namespace

result<void> submit(CUstream_st* stream, work item) {
  if (stream == nullptr) return item();
  std::lock_guard lock(stream->mutex);
  if (stream->capture) {
    stream->capture->items.push_back(std::move(item));
  } else {
    stream->queue.push_back(std::move(item));
    stream->changed.notify_all();
  }
  return ok();
}

CUstream_st* new_stream() {
  auto* s = new CUstream_st;
  s->thread = std::thread(run_stream, s);
  return s;
}

void delete_stream(CUstream_st* stream) {
  if (stream == nullptr) return;
  {
    std::lock_guard lock(stream->mutex);
    stream->stop = true;
    stream->changed.notify_all();
  }
  stream->thread.join();  // runs what is queued first, as cudaStreamDestroy lets it finish
  delete stream;
}

result<void> wait_stream(CUstream_st* stream) {
  if (stream == nullptr) return ok();
  std::unique_lock lock(stream->mutex);
  if (stream->capture) return fail(errc::invalid_argument, "synchronize on a stream that is being captured");
  stream->changed.wait(lock, [&] { return stream->queue.empty() && !stream->running; });
  if (stream->first_error) {
    error e = std::move(*stream->first_error);
    stream->first_error.reset();
    return e;
  }
  return ok();
}

CUevent_st* new_event() { return new CUevent_st; }
void delete_event(CUevent_st* event) { delete event; }

result<void> record(CUevent_st* event, CUstream_st* stream) {
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(event->mutex);
    generation = ++event->recorded;
  }
  return submit(stream, [event, generation]() -> result<void> {
    std::lock_guard lock(event->mutex);
    if (event->done < generation) event->done = generation;
    event->changed.notify_all();
    return ok();
  });
}

result<void> wait_for(CUstream_st* stream, CUevent_st* event) {
  std::uint64_t target = 0;
  {
    std::lock_guard lock(event->mutex);
    target = event->recorded;
  }
  return submit(stream, [event, target]() -> result<void> {
    wait_generation(event, target);
    return ok();
  });
}

bool query(CUevent_st* event) {
  std::lock_guard lock(event->mutex);
  return event->done >= event->recorded;
}

result<void> begin_capture(CUstream_st* stream) {
  if (stream == nullptr) return fail(errc::invalid_argument, "graph capture needs a stream of its own");
  std::lock_guard lock(stream->mutex);
  if (stream->capture) return fail(errc::invalid_argument, "the stream is already being captured");
  stream->capture = std::make_unique<CUgraphExec_st>();
  return ok();
}

result<CUgraphExec_st*> end_capture(CUstream_st* stream) {
  if (stream == nullptr) return fail(errc::invalid_argument, "graph capture needs a stream of its own");
  std::lock_guard lock(stream->mutex);
  if (!stream->capture) return fail(errc::invalid_argument, "end_capture on a stream that is not being captured");
  return stream->capture.release();
}

result<void> launch_graph(CUgraphExec_st* graph, CUstream_st* stream) {
  if (graph == nullptr) return fail(errc::invalid_argument, "launch of a null graph");
  // The items are copied per launch: a graph may be launched again while an earlier launch still runs.
  return submit(stream, [items = graph->items]() -> result<void> {
    for (const work& item : items) {
      if (result<void> r = item(); !r) return r;
    }
    return ok();
  });
}

void delete_graph(CUgraphExec_st* graph) { delete graph; }

namespace {
std::atomic<int> compute_capability{90};
std::atomic<std::int64_t> copy_delay_us{0};
}  // namespace

std::chrono::microseconds copy_delay() { return std::chrono::microseconds(copy_delay_us.load(std::memory_order_relaxed)); }
void set_copy_delay(std::chrono::microseconds delay) { copy_delay_us.store(delay.count(), std::memory_order_relaxed); }

int emulated_compute_capability() { return compute_capability.load(std::memory_order_relaxed); }
void set_emulated_compute_capability(int capability) {
  compute_capability.store(capability, std::memory_order_relaxed);
}

}  // namespace qcoder::cuda::emu
