// Segmenting a prompt at its snapshot positions and running the segments through the model.
#include "engine/prefill.h"

#include <algorithm>

namespace qcoder::engine {

result<prefill_run> prefill_run::begin(qwen3_next& model, prefix_cache* cache, std::span<const std::int32_t> prompt,
                                       sequence_state& state, float* logits, const prefill_plan& plan) {
  const std::int64_t n = static_cast<std::int64_t>(prompt.size());
  if (n == 0) return fail(errc::invalid_argument, "the prompt is empty");
  prefill_run run;
  run.model_ = &model;
  run.cache_ = cache;
  run.prompt_ = prompt;
  run.state_ = &state;
  run.logits_ = logits;
  if (cache == nullptr) {
    // No cache: the prompt is appended to what the state holds, in one segment.
    run.ends_ = {n};
    return run;
  }
  if (n > state.capacity()) {
    return fail(errc::invalid_argument, "prompt of {} tokens exceeds the state's capacity of {}", n, state.capacity());
  }
  const std::int64_t branch = cache->shared_prefix(prompt);
  const prefix_restore restored = cache->restore(prompt, state, logits);
  run.restored_ = run.done_ = restored.tokens;
  if (restored.tokens == n && restored.has_logits) {
    run.logits_ready_ = true;
    return run;
  }
  const std::int64_t from = restored.tokens;
  std::vector<std::int64_t>& ends = run.ends_;
  for (const std::int64_t p : plan.snapshot_at) ends.push_back(p);
  // Our own choices are skipped when they would cut off a short segment: a forward pass of a few tokens
  // reads all the weights, as one of many tokens does, and the end's snapshot is nearly as good.
  auto worth_a_segment = [&](std::int64_t p) { return p - from >= plan.min_segment && n - p >= plan.min_segment; };
  if (worth_a_segment(branch)) ends.push_back(branch);
  if (plan.stride > 0) {
    for (std::int64_t p = (from / plan.stride + 1) * plan.stride; p < n; p += plan.stride) {
      if (worth_a_segment(p)) ends.push_back(p);
    }
  }
  ends.push_back(n);
  std::sort(ends.begin(), ends.end());
  ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
  std::erase_if(ends, [&](std::int64_t e) { return e <= from || e > n; });
  if (ends.empty()) ends.push_back(n);  // the cache held the whole prompt but not its logits: run the last token
  if (from == n) {
    // Whole prompt restored without logits: take the last token back and run it again.
    state.reset();
    run.restored_ = run.done_ = 0;
    run.ends_ = {n};
  }
  return run;
}

result<void> prefill_run::advance(std::int64_t budget, std::stop_token stop) {
  const std::int64_t n = static_cast<std::int64_t>(prompt_.size());
  if (done() || next_end_ >= ends_.size()) return ok();
  const std::int64_t end = ends_[next_end_];
  const std::int64_t until = std::min(end, done_ + std::max<std::int64_t>(1, budget));
  const bool last = until == n;
  QCODER_CHECK(model_->forward(prompt_.subspan(static_cast<std::size_t>(done_), static_cast<std::size_t>(until - done_)),
                               *state_, last ? logits_ : nullptr, last ? logits_mode::last : logits_mode::none, stop));
  done_ = until;
  if (until == end) {
    if (cache_ != nullptr) cache_->insert(prompt_.first(static_cast<std::size_t>(end)), *state_, last ? logits_ : nullptr);
    ++next_end_;
  }
  logits_ready_ = last;
  return ok();
}

result<prefill_report> prefill(qwen3_next& model, prefix_cache* cache, std::span<const std::int32_t> prompt,
                               sequence_state& state, float* logits, const prefill_plan& plan, std::stop_token stop) {
  QCODER_TRY(prefill_run run, prefill_run::begin(model, cache, prompt, state, logits, plan));
  while (!run.done()) QCODER_CHECK(run.advance(static_cast<std::int64_t>(prompt.size()), stop));
  return run.report();
}

}  // namespace qcoder::engine
