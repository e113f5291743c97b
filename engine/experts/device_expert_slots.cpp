// Slot bookkeeping of the device expert tier (device_expert_slots.h).
#include "engine/experts/device_expert_slots.h"

#include <utility>

namespace qcoder::engine {

device_slot_stats& device_slot_stats::operator+=(const device_slot_stats& o) {
  hits += o.hits;
  prefetch_hits += o.prefetch_hits;
  misses += o.misses;
  direct += o.direct;
  prefetches += o.prefetches;
  copies += o.copies;
  cpu += o.cpu;
  return *this;
}

device_slot_stats operator-(device_slot_stats a, const device_slot_stats& b) {
  a.hits -= b.hits;
  a.prefetch_hits -= b.prefetch_hits;
  a.misses -= b.misses;
  a.direct -= b.direct;
  a.prefetches -= b.prefetches;
  a.copies -= b.copies;
  a.cpu -= b.cpu;
  return a;
}

result<cpu_misses> parse_cpu_misses(std::string_view name) {
  if (name == "never") return cpu_misses::never;
  if (name == "auto") return cpu_misses::automatic;
  if (name == "always") return cpu_misses::always;
  return fail(errc::invalid_argument, "unknown CPU miss mode '{}' (never, auto or always)", name);
}

result<std::vector<std::int32_t>> plan_device_slots(const device_expert_options& options, const std::vector<bool>& sparse,
                                                    std::uint64_t slot_bytes, std::int64_t experts) {
  expert_store_options plan;
  plan.ram_budget = options.vram_budget;
  plan.layer_budgets = options.layer_budgets;
  return plan_expert_slots(plan, sparse, slot_bytes, experts);
}

result<device_expert_slots> device_expert_slots::create(std::vector<std::int32_t> slots, std::int32_t experts,
                                                        const std::string& policy) {
  if (experts < 1) return fail(errc::invalid_argument, "device expert slots: {} experts per layer", experts);
  device_expert_slots d;
  d.experts_ = experts;
  d.layers_.resize(slots.size());
  d.stats_.resize(slots.size());
  for (std::size_t l = 0; l < slots.size(); ++l) {
    if (slots[l] < 0 || slots[l] > experts) {
      return fail(errc::invalid_argument, "device expert slots: layer {} has {} slots for {} experts", l, slots[l],
                  experts);
    }
    if (slots[l] == 0) continue;
    layer_slots& layer = d.layers_[l];
    layer.slots.resize(static_cast<std::size_t>(slots[l]));
    layer.where.assign(static_cast<std::size_t>(experts), -1);
    QCODER_TRY(layer.policy, make_cache_policy(policy, experts));
  }
  return d;
}

std::int32_t device_expert_slots::slots(std::int64_t layer) const {
  return static_cast<std::int32_t>(layers_[static_cast<std::size_t>(layer)].slots.size());
}

std::int64_t device_expert_slots::total_slots() const {
  std::int64_t total = 0;
  for (const layer_slots& l : layers_) total += static_cast<std::int64_t>(l.slots.size());
  return total;
}

std::int32_t device_expert_slots::expert_in(std::int64_t layer, std::int32_t slot) const {
  return layers_[static_cast<std::size_t>(layer)].slots[static_cast<std::size_t>(slot)].expert;
}

std::int32_t device_expert_slots::slot_of(std::int64_t layer, std::int32_t expert) const {
  const layer_slots& l = layers_[static_cast<std::size_t>(layer)];
  return l.where.empty() ? -1 : l.where[static_cast<std::size_t>(expert)];
}

std::int32_t device_expert_slots::claim(layer_slots& layer, std::int32_t expert, const std::vector<bool>& taken) {
  candidates_.clear();
  std::int32_t free_slot = -1;
  for (std::size_t s = 0; s < layer.slots.size(); ++s) {
    if (taken[s]) continue;
    if (layer.slots[s].expert < 0) {
      free_slot = static_cast<std::int32_t>(s);
      break;
    }
    candidates_.push_back(layer.slots[s].expert);
  }
  std::int32_t slot = free_slot;
  if (slot < 0) {
    if (candidates_.empty()) return -1;
    const std::int32_t victim = layer.policy->victim(candidates_, tick_);
    slot = layer.where[static_cast<std::size_t>(victim)];
    layer.policy->on_evict(victim);
    layer.where[static_cast<std::size_t>(victim)] = -1;
    evicted_.push_back(victim);
  }
  slot_info& info = layer.slots[static_cast<std::size_t>(slot)];
  info.expert = expert;
  info.unwaited = true;
  layer.where[static_cast<std::size_t>(expert)] = slot;
  layer.policy->on_insert(expert, tick_);
  return slot;
}

std::vector<device_expert_slots::placement> device_expert_slots::place(std::int64_t layer_index,
                                                                       std::span<const std::int32_t> experts,
                                                                       bool waits) {
  evicted_.clear();
  std::vector<placement> out(experts.size());
  layer_slots& layer = layers_[static_cast<std::size_t>(layer_index)];
  device_slot_stats& stats = stats_[static_cast<std::size_t>(layer_index)];
  if (layer.slots.empty()) {  // a dense layer, or no slots planned: everything in place
    stats.direct += experts.size();
    return out;
  }
  std::vector<bool> taken(layer.slots.size(), false);
  // Residents first, so that claiming a slot for a missing expert never evicts one this call uses.
  for (std::size_t i = 0; i < experts.size(); ++i) {
    const std::int32_t s = layer.where[static_cast<std::size_t>(experts[i])];
    if (s < 0) continue;
    slot_info& info = layer.slots[static_cast<std::size_t>(s)];
    out[i] = placement{where::resident, s, info.unwaited};
    if (waits) info.unwaited = false;
    ++stats.hits;
    if (info.speculative) ++stats.prefetch_hits;
    info.speculative = false;
    taken[static_cast<std::size_t>(s)] = true;
    layer.policy->on_use(experts[i], tick_);
  }
  for (std::size_t i = 0; i < experts.size(); ++i) {
    if (out[i].kind == where::resident) continue;
    const std::int32_t s = claim(layer, experts[i], taken);
    if (s < 0) {
      ++stats.direct;
      continue;
    }
    taken[static_cast<std::size_t>(s)] = true;
    layer.slots[static_cast<std::size_t>(s)].unwaited = !waits;  // else the caller waits for this copy now
    layer.slots[static_cast<std::size_t>(s)].speculative = false;
    out[i] = placement{where::copy, s, true};
    ++stats.misses;
    ++stats.copies;
    layer.policy->on_use(experts[i], tick_);
  }
  return out;
}

std::vector<device_expert_slots::slot_copy> device_expert_slots::prefetch(std::int64_t layer_index,
                                                                          std::span<const std::int32_t> predicted) {
  evicted_.clear();
  std::vector<slot_copy> copies;
  layer_slots& layer = layers_[static_cast<std::size_t>(layer_index)];
  if (layer.slots.empty()) return copies;
  device_slot_stats& stats = stats_[static_cast<std::size_t>(layer_index)];
  std::vector<bool> taken(layer.slots.size(), false);
  for (const std::int32_t e : predicted) {
    layer.policy->on_predict(e, tick_);
    const std::int32_t s = layer.where[static_cast<std::size_t>(e)];
    if (s >= 0) taken[static_cast<std::size_t>(s)] = true;
  }
  for (const std::int32_t e : predicted) {
    if (layer.where[static_cast<std::size_t>(e)] >= 0) continue;
    const std::int32_t s = claim(layer, e, taken);
    if (s < 0) break;  // every slot holds a predicted expert
    taken[static_cast<std::size_t>(s)] = true;
    layer.slots[static_cast<std::size_t>(s)].speculative = true;
    copies.push_back(slot_copy{e, s});
    ++stats.prefetches;
    ++stats.copies;
  }
  return copies;
}

device_slot_stats device_expert_slots::totals() const {
  device_slot_stats t;
  for (const device_slot_stats& s : stats_) t += s;
  return t;
}

}  // namespace qcoder::engine
