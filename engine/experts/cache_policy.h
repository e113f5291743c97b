// Which routed experts stay in a bounded cache: the replacement policies of the expert store.
//
// The store keeps, per layer, a pool of slots (budgets may differ per layer). It tells the layer's policy
// what happens — an expert was used (hit or freshly loaded), predicted for the next token (speculative
// prefetch from the next layer's router), inserted or evicted — and asks it for a victim when the pool is
// full. Time is a logical tick (one per token), so replaying a trace needs no clock.
// One policy object per layer; called by the thread that owns the store (not thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::engine {

class cache_policy {
 public:
  virtual ~cache_policy() = default;
  virtual std::string_view name() const = 0;

  // `expert` was used by token `tick` (it is resident now: a hit, or just loaded).
  virtual void on_use(std::int32_t expert, std::uint64_t tick) = 0;
  // The router of this layer, applied early, predicts `expert` for token `tick`.
  virtual void on_predict(std::int32_t expert, std::uint64_t tick) = 0;
  virtual void on_insert(std::int32_t expert, std::uint64_t tick) = 0;
  virtual void on_evict(std::int32_t expert) = 0;
  // Picks the expert to evict among `candidates` (resident, not in use; never empty).
  virtual std::int32_t victim(std::span<const std::int32_t> candidates, std::uint64_t tick) = 0;
};

// "lru", "lfu-decay" (frequency with exponential decay, predicted experts protected), ...; error for an
// unknown name. `experts` is the number of experts in the layer.
result<std::unique_ptr<cache_policy>> make_cache_policy(std::string_view name, std::int32_t experts);

// The names make_cache_policy accepts, best first.
std::span<const std::string_view> cache_policy_names();

}  // namespace qcoder::engine
