// Prompt processing through the prefix cache: restore the deepest cached snapshot on the prompt's path,
// compute only the rest, and leave snapshots behind at the positions where later requests will want them.
// Runs on the inference thread, which owns the model, the cache and the state.
#pragma once

#include <cstdint>
#include <span>
#include <stop_token>
#include <vector>

#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"

namespace qcoder::engine {

// Where to snapshot the recurrent state while a prompt is computed. Editor traffic wants them after the
// stable context block and at the start of the cursor's line and of the line above (the caller knows those
// positions); the end of the prompt, the point where it leaves the cached tree (a branch point later
// prompts are likely to share) and every `stride` tokens are added here.
struct prefill_plan {
  std::vector<std::int64_t> snapshot_at;  // prompt positions: snapshot after this many tokens
  std::int64_t stride = 512;              // 0: no regular snapshots
  // The branch point and stride positions are used only with at least this many tokens on both sides
  // (the caller's positions always are).
  std::int64_t min_segment = 16;
};

struct prefill_report {
  std::int64_t restored = 0;  // prompt tokens taken from the cache
  std::int64_t computed = 0;  // prompt tokens run through the model
};

// A prefill done a piece at a time, so that a batch keeps decoding between the pieces of a long prompt:
// begin() restores what the cache holds and plans the segment ends (as prefill() below); each advance()
// computes up to `budget` more tokens, inserting the cache snapshot at every segment end it reaches. The
// result is the same however the prompt is cut (the forward pass is batch invariant).
// `prompt`, `state` and `logits` must outlive the run.
class prefill_run {
 public:
  static result<prefill_run> begin(qwen3_next& model, prefix_cache* cache, std::span<const std::int32_t> prompt,
                                   sequence_state& state, float* logits, const prefill_plan& plan);
  // Computes up to `budget` (≥ 1) more prompt tokens. Errors as qwen3_next::forward (the state is then
  // empty and the run over).
  result<void> advance(std::int64_t budget, std::stop_token stop = {});
  bool done() const { return done_ == static_cast<std::int64_t>(prompt_.size()) && logits_ready_; }
  std::int64_t remaining() const { return static_cast<std::int64_t>(prompt_.size()) - done_; }
  prefill_report report() const { return {restored_, done_ - restored_}; }

 private:
  prefill_run() = default;
  qwen3_next* model_ = nullptr;
  prefix_cache* cache_ = nullptr;
  std::span<const std::int32_t> prompt_;
  sequence_state* state_ = nullptr;
  float* logits_ = nullptr;
  std::vector<std::int64_t> ends_;  // segment ends, ascending, the last one the prompt's end
  std::size_t next_end_ = 0;
  std::int64_t restored_ = 0;
  std::int64_t done_ = 0;
  bool logits_ready_ = false;
};

// Fills `state` with `prompt` and writes the logits after its last token to `logits` ([vocab]). Without a
// cache, the prompt is appended to what the state holds. With one, the state is replaced by the cache's
// best restore and the rest is computed in segments ending at the plan's positions, each end inserted into
// the cache. Errors as qwen3_next::forward (the state is then empty).
result<prefill_report> prefill(qwen3_next& model, prefix_cache* cache, std::span<const std::int32_t> prompt,
                               sequence_state& state, float* logits, const prefill_plan& plan,
                               std::stop_token stop = {});

}  // namespace qcoder::engine
