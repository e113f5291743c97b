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
// With `timed`, loads take time and the clock is simulated (replay_timing): layer l's router runs at R_l;
// its missing experts are queued for the loaders then, and so is the prefetch of layer l + 1's prediction
// (demand reads are served before speculative ones; a read in progress is not interrupted). The layer
// needs all its experts at R_l and computes for layer_compute_s once the last has arrived:
// R_{l+1} = max(R_l, last arrival) + layer_compute_s, and the compute waited max(0, last arrival - R_l). An
// expert still being read cannot be evicted (as in the store): a miss that finds only such slots waits for
// one to arrive; a prefetch that finds none is dropped. A prefetched expert that has not arrived by R_l is a
// late prefetch hit (the compute waits for the rest of its read). Reads share the disk: each of the reads in
// progress (at most loader_threads) gets min(disk bandwidth / reads, read bandwidth). Simplifications: the
// layer does not compute the experts that have arrived while it waits for the others, and a token costs
// nothing beyond its layers. Untimed (the default), every load is instant, which is the upper bound.
//
// Thread-safe: replay_trace shares nothing; a trace can be replayed from several threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/experts/routing_trace.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

// The clock of a timed replay. Bandwidths in bytes per second, times in seconds.
struct replay_timing {
  double layer_compute_s = 0.0;      // one MoE layer's compute once its experts are resident
  double disk_bytes_per_s = 0.0;     // all reads in progress together
  double read_bytes_per_s = 0.0;     // one read on its own (one loader's pread); 0: disk_bytes_per_s
  std::uint64_t expert_bytes = 0;    // bytes of one expert
  std::int32_t loader_threads = 2;   // reads in progress at most
};

struct replay_options {
  std::string policy = "lru";          // a name make_cache_policy accepts
  std::int32_t slots = 64;             // per layer
  std::vector<std::int32_t> layer_slots;  // when not empty: slots of each layer (overrides `slots`)
  bool prefetch = false;
  std::size_t warmup_tokens = 0;       // tokens replayed before counting starts (cold-start misses)
  bool timed = false;                  // simulate time with `timing` (else loads are instant)
  replay_timing timing;
};

// Counts over the (token, layer, expert) accesses; loads = misses + prefetches.
struct replay_counts {
  std::uint64_t accesses = 0;
  std::uint64_t hits = 0;                // resident before the layer's prefetch
  std::uint64_t prefetch_hits = 0;       // loaded by the layer's prefetch and used (timed: arrived in time)
  std::uint64_t late_prefetch_hits = 0;  // timed: prefetched, still being read when the layer needed it
  std::uint64_t misses = 0;              // loaded on demand
  std::uint64_t prefetches = 0;          // loads issued by prefetch
  std::uint64_t useless_prefetches = 0;  // prefetched and not used by the token they were fetched for
  std::uint64_t predicted = 0;           // experts predicted (prefetch on; resident or not)
  std::uint64_t predicted_correct = 0;   // ... that the layer then chose
  double wait_s = 0.0;                   // timed: how long the compute waited for this layer's experts

  // Fraction of accesses served without waiting for an on-demand load (hits + prefetch hits).
  double hit_rate() const { return ratio(hits + prefetch_hits, accesses); }
  // Timed: fraction of accesses whose expert was being prefetched but had not arrived (a partial hit).
  double late_rate() const { return ratio(late_prefetch_hits, accesses); }
  double cache_hit_rate() const { return ratio(hits, accesses); }
  // Fraction of prefetch loads that were used (in time or late); fraction of predictions that were right.
  double prefetch_accuracy() const { return ratio(prefetch_hits + late_prefetch_hits, prefetches); }
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
  double seconds = 0.0;              // timed: simulated time of the counted tokens

  double wait_per_token_s() const { return tokens ? total.wait_s / static_cast<double>(tokens) : 0.0; }
};

result<replay_result> replay_trace(const routing_trace& trace, const replay_options& options);

// Timed replays of one policy without and with prefetch: the fraction of the compute's wait for expert
// reads that prefetch removes (1: all of it; negative: prefetch made it worse; 0 when nothing waited).
double hidden_wait_fraction(const replay_result& without_prefetch, const replay_result& with_prefetch);

}  // namespace qcoder::engine
