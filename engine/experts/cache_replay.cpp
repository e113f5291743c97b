// The replay loop of cache_replay.h: per layer a slot pool (resident list + per-expert flags) and a policy.
// Each access is O(1) apart from evictions, which cost one pass over the pool to gather the candidates and
// one pass in the policy. Nothing allocates inside the loop.
// Thread-safe: all state is local to one replay_trace call.
#include "engine/experts/cache_replay.h"

#include <algorithm>
#include <memory>

#include "engine/experts/cache_policy.h"

namespace qcoder::engine {
namespace {

// One layer's cache. `stamp` identifies the current (token, layer) step so that flags need no clearing.
struct layer_pool {
  std::unique_ptr<cache_policy> policy;
  std::int32_t slots = 0;
  std::vector<std::int32_t> resident;         // the experts in the slots, any order
  std::vector<std::int32_t> position;         // per expert: index in `resident`, or -1
  std::vector<std::uint64_t> pinned_at;       // per expert: stamp while it may not be evicted
  std::vector<std::uint64_t> prefetched_at;   // per expert: stamp of the prefetch that loaded it
  std::vector<std::uint64_t> chosen_at;       // per expert: stamp when the layer chose it
  std::vector<std::int32_t> candidates;       // scratch, capacity `slots`

  bool is_resident(std::int32_t e) const { return position[static_cast<std::size_t>(e)] >= 0; }

  // Loads `e` (not resident) into a free slot or in place of the policy's victim among unpinned experts.
  void load(std::int32_t e, std::uint64_t tick, std::uint64_t stamp) {
    if (static_cast<std::int32_t>(resident.size()) >= slots) {
      candidates.clear();
      for (std::int32_t r : resident) {
        if (pinned_at[static_cast<std::size_t>(r)] != stamp) candidates.push_back(r);
      }
      // replay_trace checks that a layer's experts fit, so an unpinned resident expert always exists.
      const std::int32_t out = policy->victim(candidates, tick);
      const auto slot = static_cast<std::size_t>(position[static_cast<std::size_t>(out)]);
      resident[slot] = resident.back();
      position[static_cast<std::size_t>(resident[slot])] = static_cast<std::int32_t>(slot);
      resident.pop_back();
      position[static_cast<std::size_t>(out)] = -1;
      policy->on_evict(out);
    }
    position[static_cast<std::size_t>(e)] = static_cast<std::int32_t>(resident.size());
    resident.push_back(e);
    policy->on_insert(e, tick);
  }
};

}  // namespace

void replay_counts::add(const replay_counts& o) {
  accesses += o.accesses;
  hits += o.hits;
  prefetch_hits += o.prefetch_hits;
  misses += o.misses;
  prefetches += o.prefetches;
  useless_prefetches += o.useless_prefetches;
  predicted += o.predicted;
  predicted_correct += o.predicted_correct;
}

result<replay_result> replay_trace(const routing_trace& trace, const replay_options& options) {
  const std::int32_t layers = trace.layers();
  const auto n = static_cast<std::size_t>(trace.experts());
  if (!options.layer_slots.empty() && options.layer_slots.size() != static_cast<std::size_t>(layers)) {
    return fail(errc::invalid_argument, "replay: {} per-layer slot counts for a trace of {} layers",
                options.layer_slots.size(), layers);
  }
  std::vector<layer_pool> pools(static_cast<std::size_t>(layers));
  for (std::int32_t l = 0; l < layers; ++l) {
    layer_pool& p = pools[static_cast<std::size_t>(l)];
    QCODER_TRY(p.policy, make_cache_policy(options.policy, trace.experts()));
    p.slots = options.layer_slots.empty() ? options.slots : options.layer_slots[static_cast<std::size_t>(l)];
    if (p.slots <= 0) return fail(errc::invalid_argument, "replay: layer {} has {} slots", l, p.slots);
    p.resident.reserve(static_cast<std::size_t>(p.slots));
    p.candidates.reserve(static_cast<std::size_t>(p.slots));
    p.position.assign(n, -1);
    p.pinned_at.assign(n, 0);
    p.prefetched_at.assign(n, 0);
    p.chosen_at.assign(n, 0);
  }
  // Every list must fit in its layer's pool (pinned experts cannot be evicted).
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    for (std::int32_t l = 0; l < layers; ++l) {
      const std::size_t need = std::max(trace.chosen(t, l).size(), options.prefetch ? trace.predicted(t, l).size() : 0);
      if (need > static_cast<std::size_t>(pools[static_cast<std::size_t>(l)].slots)) {
        return fail(errc::invalid_argument, "replay: token {} needs {} experts in layer {}, which has only {} slots",
                    trace.token_id(t), need, l, pools[static_cast<std::size_t>(l)].slots);
      }
    }
  }

  replay_result out;
  out.policy = std::string(pools.empty() ? std::string_view(options.policy) : pools[0].policy->name());
  out.prefetch = options.prefetch;
  out.layers.resize(static_cast<std::size_t>(layers));
  std::uint64_t stamp = 0;
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    const std::uint64_t tick = trace.token_id(t);
    const bool counted = t >= options.warmup_tokens;
    out.tokens += counted ? 1 : 0;
    for (std::int32_t l = 0; l < layers; ++l) {
      layer_pool& p = pools[static_cast<std::size_t>(l)];
      replay_counts scratch;
      replay_counts& c = counted ? out.layers[static_cast<std::size_t>(l)] : scratch;
      ++stamp;
      const std::span<const std::int32_t> chosen = trace.chosen(t, l);
      for (std::int32_t e : chosen) p.chosen_at[static_cast<std::size_t>(e)] = stamp;

      // 1. Prefetch the prediction (before the layer runs; the chosen experts are not known yet).
      if (options.prefetch) {
        const std::span<const std::int32_t> guess = trace.predicted(t, l);
        for (std::int32_t e : guess) {
          p.policy->on_predict(e, tick);
          p.pinned_at[static_cast<std::size_t>(e)] = stamp;
        }
        for (std::int32_t e : guess) {
          const bool right = p.chosen_at[static_cast<std::size_t>(e)] == stamp;
          ++c.predicted;
          c.predicted_correct += right ? 1 : 0;
          if (p.is_resident(e)) continue;
          p.load(e, tick, stamp);
          p.prefetched_at[static_cast<std::size_t>(e)] = stamp;
          ++c.prefetches;
          c.useless_prefetches += right ? 0 : 1;
        }
        ++stamp;  // unpin the prediction: wrong guesses may be evicted by the misses below
        for (std::int32_t e : chosen) p.chosen_at[static_cast<std::size_t>(e)] = stamp;
      }

      // 2. The layer runs: pin its experts, count hits, load the misses.
      for (std::int32_t e : chosen) p.pinned_at[static_cast<std::size_t>(e)] = stamp;
      c.accesses += chosen.size();
      for (std::int32_t e : chosen) {
        if (p.is_resident(e)) {
          if (options.prefetch && p.prefetched_at[static_cast<std::size_t>(e)] == stamp - 1) {
            ++c.prefetch_hits;
          } else {
            ++c.hits;
          }
        } else {
          ++c.misses;
          p.load(e, tick, stamp);
        }
        p.policy->on_use(e, tick);
      }
    }
  }
  for (const replay_counts& c : out.layers) out.total.add(c);
  return out;
}

}  // namespace qcoder::engine
