// The serving loop: admit, step, hand back.
#include "serve/scheduler.h"

#include <chrono>
#include <map>

#include <spdlog/spdlog.h>

namespace qcoder::serve {

struct scheduler::shared {
  scheduler_options options;
  mutable std::mutex mutex;
  std::deque<generation_job> queue;
  bool active = false;  // the serving job is posted or running
  bool closing = false;
  scheduler_stats stats;
  std::unique_ptr<engine::generation_batch> batch;  // inference thread only
};

scheduler::scheduler(service::inference_worker& worker, scheduler_options options)
    : worker_(worker), options_(options), shared_(std::make_shared<shared>()) {
  options_.max_running = std::max<std::size_t>(1, options_.max_running);
  shared_->options = options_;
}

scheduler::~scheduler() {
  // Queued generations are refused; a running serving job ends once its batch is empty (the owner
  // cancels the clients' requests before destroying the scheduler).
  std::deque<generation_job> dropped;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->closing = true;
    dropped.swap(shared_->queue);
  }
  for (generation_job& job : dropped) job.on_done(fail(errc::cancelled, "the server is shutting down"));
}

bool scheduler::submit(generation_job job) {
  bool start = false;
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->closing || shared_->queue.size() >= options_.max_queue) {
      ++shared_->stats.refused;
      return false;
    }
    ++shared_->stats.submitted;
    shared_->queue.push_back(std::move(job));
    start = !shared_->active;
    shared_->active = true;
  }
  if (start) {
    std::shared_ptr<shared> s = shared_;
    worker_.post([s](service::loaded_engine& e) { serve(s, *e.model, e.cache.get()); },
                 [s](const error& why) {
                   // The model is gone (failed to load, or shutting down): refuse everything queued.
                   std::deque<generation_job> dropped;
                   {
                     std::lock_guard lock(s->mutex);
                     dropped.swap(s->queue);
                     s->active = false;
                     s->stats.failed += dropped.size();
                   }
                   for (generation_job& job : dropped) job.on_done(why);
                 });
  }
  return true;
}

scheduler_stats scheduler::stats() const {
  std::lock_guard lock(shared_->mutex);
  scheduler_stats out = shared_->stats;
  out.queued = shared_->queue.size();
  return out;
}

void scheduler::serve(const std::shared_ptr<shared>& s, engine::qwen3_next& model, engine::prefix_cache* cache) {
  using clock = std::chrono::steady_clock;
  if (!s->batch) s->batch = std::make_unique<engine::generation_batch>(model, s->options.prefill_chunk);
  engine::generation_batch& batch = *s->batch;
  struct admitted {
    std::function<void(result<engine::generation_result>)> on_done;
    std::size_t prompt_tokens = 0;
  };
  std::map<std::size_t, admitted> running;  // by ticket
  const auto account = [&](const engine::generation_result& r, std::size_t prompt_tokens) {
    std::lock_guard lock(s->mutex);
    ++(r.reason == engine::finish_reason::cancelled ? s->stats.cancelled : s->stats.finished);
    s->stats.prompt_tokens += prompt_tokens;
    s->stats.cached_prompt_tokens += static_cast<std::uint64_t>(r.prompt_tokens_restored);
    s->stats.generated_tokens += r.tokens.size();
  };
  for (;;) {
    // Admit what fits. Each prompt is prefilled here, alone, while the others wait one step.
    while (running.size() < s->options.max_running) {
      generation_job job;
      {
        std::lock_guard lock(s->mutex);
        if (s->queue.empty()) break;
        job = std::move(s->queue.front());
        s->queue.pop_front();
        s->stats.running = running.size() + 1;
      }
      job.request.cache = cache;
      const std::size_t prompt_tokens = job.request.prompt.size();
      const auto prefill_start = clock::now();
      result<std::size_t> ticket = batch.add(std::move(job.request));
      {
        std::lock_guard lock(s->mutex);
        s->stats.prefill_seconds += std::chrono::duration<double>(clock::now() - prefill_start).count();
      }
      if (!ticket) {
        {
          std::lock_guard lock(s->mutex);
          ++s->stats.failed;
          s->stats.running = running.size();
        }
        job.on_done(ticket.take_error());
        continue;
      }
      running.emplace(*ticket, admitted{std::move(job.on_done), prompt_tokens});
    }
    if (running.empty()) {
      std::lock_guard lock(s->mutex);
      s->stats.running = 0;
      if (const engine::expert_store* store = model.experts()) {
        s->stats.expert_hits = s->stats.expert_misses = 0;
        for (const engine::expert_layer_stats& l : store->stats()) {
          s->stats.expert_hits += l.hits;
          s->stats.expert_misses += l.misses;
        }
      }
      if (s->queue.empty() || s->closing) {
        s->active = false;
        return;
      }
      continue;
    }
    const auto step_start = clock::now();
    result<std::vector<engine::generation_batch::finished>> done = batch.step();
    {
      std::lock_guard lock(s->mutex);
      const double seconds = std::chrono::duration<double>(clock::now() - step_start).count();
      s->stats.prefill_seconds += batch.last_prefill_seconds();
      s->stats.decode_seconds += std::max(0.0, seconds - batch.last_prefill_seconds());
      ++s->stats.steps;
    }
    if (!done) {
      spdlog::error("serve: a decode step failed: {}", done.err().message);
      for (auto& [ticket, a] : running) a.on_done(done.err());
      std::lock_guard lock(s->mutex);
      s->stats.failed += running.size();
      running.clear();
      continue;
    }
    for (engine::generation_batch::finished& f : *done) {
      const auto it = running.find(f.ticket);
      if (it == running.end()) continue;
      account(f.result, it->second.prompt_tokens);
      auto on_done = std::move(it->second.on_done);
      running.erase(it);
      {
        std::lock_guard lock(s->mutex);
        s->stats.running = running.size();
      }
      on_done(std::move(f.result));
    }
  }
}

}  // namespace qcoder::serve
