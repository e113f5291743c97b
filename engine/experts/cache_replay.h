// Replays a routing trace through a per-layer expert cache and a replacement policy, counting hits,
// misses and prefetches: the expert store's behaviour without the model, the disk or the clock.
//
// Per token and layer, in order:
//   1. With prefetch on and a prediction in the trace: the policy hears on_predict for every predicted
//      expert, and each predicted expert that is not resident is loaded (evicting per the policy; the
//      predicted experts themselves are not evicted to make room for each other). The replay assumes these
//      loads finish before the layer runs: an upper bound on what prefetch gives, paid for in bytes read.
//   2. The layer's chosen experts are pinned. A resident one is a hit — a prefetch hit if step 1 loaded it
//      — and the policy hears on_use. Each other one is a miss: loaded on demand (evicting an unpinned
//      expert), then on_insert and on_use.
// Without prefetch the policy hears no predictions. Slots are per layer; a layer needs at least as many
// slots as the largest expert list it sees.
//
// Thread-safe: replay_trace shares nothing; a trace can be replayed from several threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/experts/routing_trace.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

struct replay_options {
  std::string policy = "lru";          // a name make_cache_policy accepts
  std::int32_t slots = 64;             // per layer
  std::vector<std::int32_t> layer_slots;  // when not empty: slots of each layer (overrides `slots`)
  bool prefetch = false;
  std::size_t warmup_tokens = 0;       // tokens replayed before counting starts (cold-start misses)
};

// Counts over the (token, layer, expert) accesses; loads = misses + prefetches.
struct replay_counts {
  std::uint64_t accesses = 0;
  std::uint64_t hits = 0;                // resident before the layer's prefetch
  std::uint64_t prefetch_hits = 0;       // loaded by the layer's prefetch and used
  std::uint64_t misses = 0;              // loaded on demand
  std::uint64_t prefetches = 0;          // loads issued by prefetch
  std::uint64_t useless_prefetches = 0;  // prefetched and not used by the token they were fetched for
  std::uint64_t predicted = 0;           // experts predicted (prefetch on; resident or not)
  std::uint64_t predicted_correct = 0;   // ... that the layer then chose

  // Fraction of accesses served without waiting for an on-demand load (hits + prefetch hits).
  double hit_rate() const { return ratio(hits + prefetch_hits, accesses); }
  double cache_hit_rate() const { return ratio(hits, accesses); }
  // Fraction of prefetch loads that were used; fraction of predictions that were right.
  double prefetch_accuracy() const { return ratio(prefetch_hits, prefetches); }
  double prediction_precision() const { return ratio(predicted_correct, predicted); }
  std::uint64_t loads() const { return misses + prefetches; }
  void add(const replay_counts& other);

 private:
  static double ratio(std::uint64_t a, std::uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }
};

struct replay_result {
  std::string policy;
  bool prefetch = false;
  std::uint64_t tokens = 0;          // counted tokens (after the warm-up)
  std::vector<replay_counts> layers;  // per layer
  replay_counts total;
};

result<replay_result> replay_trace(const routing_trace& trace, const replay_options& options);

}  // namespace qcoder::engine
