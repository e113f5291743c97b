// Segmenting a prompt at its snapshot positions and running the segments through the model.
#include "engine/prefill.h"

#include <algorithm>

namespace qcoder::engine {

result<prefill_report> prefill(qwen3_next& model, prefix_cache* cache, std::span<const std::int32_t> prompt,
                               sequence_state& state, float* logits, const prefill_plan& plan, std::stop_token stop) {
  const std::int64_t n = static_cast<std::int64_t>(prompt.size());
  if (n == 0) return fail(errc::invalid_argument, "the prompt is empty");
  if (cache == nullptr) {
    QCODER_CHECK(model.forward(prompt, state, logits, logits_mode::last, stop));
    return prefill_report{0, n};
  }
  if (n > state.capacity()) {
    return fail(errc::invalid_argument, "prompt of {} tokens exceeds the state's capacity of {}", n, state.capacity());
  }
  const std::int64_t branch = cache->shared_prefix(prompt);
  const prefix_restore restored = cache->restore(prompt, state, logits);
  if (restored.tokens == n && restored.has_logits) return prefill_report{n, 0};

  const std::int64_t from = restored.tokens;
  std::vector<std::int64_t> ends;
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

  std::int64_t done = from;
  for (const std::int64_t end : ends) {
    if (end <= done || end > n) continue;
    const bool last = end == n;
    QCODER_CHECK(model.forward(prompt.subspan(static_cast<std::size_t>(done), static_cast<std::size_t>(end - done)),
                               state, last ? logits : nullptr, last ? logits_mode::last : logits_mode::none, stop));
    cache->insert(prompt.first(static_cast<std::size_t>(end)), state, last ? logits : nullptr);
    done = end;
  }
  return prefill_report{from, n - from};
}

}  // namespace qcoder::engine
