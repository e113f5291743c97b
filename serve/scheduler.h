// Many clients, one model: a bounded queue in front of continuous batching on the inference thread.
//
// submit() queues a generation (or refuses it when the queue is full: the caller answers 503). While there
// is work, one long job runs on the inference worker: it moves queued generations into an
// engine::generation_batch (each prompt prefilled through the shared prefix cache, so a prompt that
// repeats another's prefix computes only the rest, and a chunk of it per step, so that the running
// streams keep going), steps the batch, and hands each finished generation back; when the queue and the
// batch are both empty it ends, and the next submit() starts it again.
// A generation's stop token is its client's: a client that goes away ends its sequence at the next token.
//
// Thread-safety: submit() and stats() from any thread; the callbacks of a generation_job run on the
// inference thread and must not block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "engine/generate.h"
#include "service/inference_worker.h"

namespace qcoder::serve {

struct scheduler_options {
  std::size_t max_queue = 64;    // generations waiting for a place; more are refused
  std::size_t max_running = 8;   // generations decoded together
  // Prompt tokens computed per step, between decode passes, so that a long prompt does not stall the
  // streams already running (0: each prompt whole, when it is admitted).
  std::int64_t prefill_chunk = 128;
};

struct generation_job {
  engine::generation_request request;  // `cache` is set by the scheduler
  // Exactly once, on the inference thread (or on the submitting thread when the model is unavailable).
  std::function<void(result<engine::generation_result>)> on_done;
};

// Counters since start, and gauges now.
struct scheduler_stats {
  std::size_t queued = 0;
  std::size_t running = 0;
  std::uint64_t submitted = 0;
  std::uint64_t refused = 0;     // queue full
  std::uint64_t finished = 0;
  std::uint64_t cancelled = 0;   // the client went away (or the request was stopped)
  std::uint64_t failed = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t cached_prompt_tokens = 0;  // of them, restored from the prefix cache
  std::uint64_t generated_tokens = 0;
  double prefill_seconds = 0;  // inference thread time in prompts (admitting generations)
  double decode_seconds = 0;   // ... and in decode steps
  std::uint64_t steps = 0;     // decode steps (one forward pass over the batch each)
  // The expert cache, when the model has one (hits and misses of routed-expert lookups).
  std::uint64_t expert_hits = 0;
  std::uint64_t expert_misses = 0;
};

class scheduler {
 public:
  scheduler(service::inference_worker& worker, scheduler_options options);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Queues the generation. False when the queue is full (nothing is queued, on_done is not called).
  bool submit(generation_job job);
  scheduler_stats stats() const;
  const scheduler_options& options() const { return options_; }

 private:
  struct shared;
  // The long job on the inference thread.
  static void serve(const std::shared_ptr<shared>& s, engine::qwen3_next& model, engine::prefix_cache* cache);

  service::inference_worker& worker_;
  scheduler_options options_;
  std::shared_ptr<shared> shared_;  // outlives the scheduler while a job holds it
};

}  // namespace qcoder::serve
