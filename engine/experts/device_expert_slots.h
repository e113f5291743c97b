// The device tier of the expert store, as bookkeeping: which routed expert sits in which VRAM slot of each
// MoE layer, which slots were filled by a copy the compute has not waited for yet, and which expert leaves
// a full layer (the layer's cache_policy). Pure host logic with no CUDA in it, so it is tested on its own;
// the device forward pass (device_forward_impl.inc) turns its decisions into copies on the copy stream,
// events, and entries of the slot table the expert kernels read.
//
// When a layer runs, place() gets the distinct experts its tokens chose and says for each where the kernels
// will read it:
// - resident: it is in a slot (a hit). `wait` says its copy (issued by a prefetch, or by an earlier place
//   whose layer never waited for it) has not been waited for: the compute must wait on the slot's event.
// - copy: not resident; a slot was claimed for it (a free one, else the policy's victim among the slots not
//   placed by this call). The caller copies the expert there, records the slot's event after the copy, and
//   has the compute wait on that event before the kernels read the slot.
// - direct: not resident and every slot holds an expert this call placed: the kernels read it in place from
//   the host tier (mapped host memory: over PCIe on a GPU). So any budget, down to one slot per layer, runs.
// prefetch() does the same for the experts predicted for the next layer, speculatively: it claims slots
// (evicting per the policy, never an expert of the same call) for those not resident, and returns the copies
// to issue; a prefetch that finds no slot is dropped.
//
// Not thread-safe: the inference thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/experts/cache_policy.h"
#include "engine/experts/expert_store.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

// Where a miss (an expert of a layer that is in no VRAM slot) is computed, on the eager path: on the GPU,
// after its copy (or read in place), or on the CPU from host memory, with the rows sent back.
enum class cpu_misses {
  never,
  automatic,  // on the CPU when its measured cost for the expert's rows beats the measured copy time
  always,
};
result<cpu_misses> parse_cpu_misses(std::string_view name);  // "never", "auto", "always"

// The device tier's settings (model_options::device_experts).
struct device_expert_options {
  std::uint64_t vram_budget = 0;            // bytes of VRAM slots for routed experts; 0: every expert uploaded
  std::vector<layer_budget> layer_budgets;  // per-layer shares of vram_budget, as for the RAM tier
  std::string policy = "lru";
  bool prefetch = true;                     // copy the next layer's predicted experts ahead
  enum cpu_misses cpu_misses = cpu_misses::automatic;
};

// Slots per layer for `options` (plan_expert_slots over the VRAM budget): at least one per sparse layer.
result<std::vector<std::int32_t>> plan_device_slots(const device_expert_options& options, const std::vector<bool>& sparse,
                                                    std::uint64_t slot_bytes, std::int64_t experts);

struct device_slot_stats {
  std::uint64_t hits = 0;           // resident when placed (prefetched ones included)
  std::uint64_t prefetch_hits = 0;  // ... of which a prefetch had copied and nothing had used yet
  std::uint64_t misses = 0;         // copied on demand
  std::uint64_t direct = 0;         // read in place from the host tier (no slot could be claimed)
  std::uint64_t prefetches = 0;     // copies issued by prefetch
  std::uint64_t copies = 0;         // copies issued (misses + prefetches)
  std::uint64_t cpu = 0;            // misses computed on the CPU (their copy, if any, serves later tokens)

  device_slot_stats& operator+=(const device_slot_stats& o);
  friend device_slot_stats operator-(device_slot_stats a, const device_slot_stats& b);  // over an interval
};

class device_expert_slots {
 public:
  enum class where { resident, copy, direct };
  struct placement {
    where kind = where::direct;
    std::int32_t slot = -1;  // resident and copy
    bool wait = false;       // resident: a copy into the slot has not been waited for
  };
  struct slot_copy {
    std::int32_t expert;
    std::int32_t slot;
  };

  // `slots[l]` slots for layer l (0 for a dense layer), `experts` per layer, replacement policy by name.
  static result<device_expert_slots> create(std::vector<std::int32_t> slots, std::int32_t experts,
                                            const std::string& policy);

  std::int32_t slots(std::int64_t layer) const;
  std::int64_t total_slots() const;
  // The expert in a slot, -1 when empty.
  std::int32_t expert_in(std::int64_t layer, std::int32_t slot) const;
  // The slot holding `expert`, -1 when it is not resident.
  std::int32_t slot_of(std::int64_t layer, std::int32_t expert) const;

  // Placements of the layer's distinct `experts` (ids in range, no repeats), in their order. Slots it
  // evicts are reported by evicted(), until the next call. `waits`: the caller's compute waits now for
  // every copy it is told to wait for (the eager path); false (the graph path, which places a step's
  // experts after the step ran in place and copies them for the next ones) leaves those copies unwaited,
  // so that a later place() still says to wait.
  std::vector<placement> place(std::int64_t layer, std::span<const std::int32_t> experts, bool waits = true);
  // Copies to issue for the predicted experts of `layer` (speculative).
  std::vector<slot_copy> prefetch(std::int64_t layer, std::span<const std::int32_t> predicted);
  // The experts the last place() or prefetch() evicted (their slot-table entries must point back to the
  // host tier).
  std::span<const std::int32_t> evicted() const { return evicted_; }
  // The start of the next token (the policies' clock).
  void next_token() { ++tick_; }
  // Counts a miss of `layer` that the CPU computed.
  void count_cpu(std::int64_t layer) { ++stats_[static_cast<std::size_t>(layer)].cpu; }

  const std::vector<device_slot_stats>& stats() const { return stats_; }
  device_slot_stats totals() const;

 private:
  struct slot_info {
    std::int32_t expert = -1;
    bool unwaited = false;     // a copy into it has not been waited for by the compute
    bool speculative = false;  // filled by a prefetch, not used since
  };
  struct layer_slots {
    std::vector<slot_info> slots;
    std::vector<std::int32_t> where;  // expert → slot, -1
    std::unique_ptr<cache_policy> policy;
  };

  // A slot for `expert`: a free one, else the policy's victim among slots not in `taken`; -1 when none.
  std::int32_t claim(layer_slots& layer, std::int32_t expert, const std::vector<bool>& taken);

  std::vector<layer_slots> layers_;
  std::vector<device_slot_stats> stats_;
  std::vector<std::int32_t> evicted_;
  std::vector<std::int32_t> candidates_;  // scratch for claim()
  std::int32_t experts_ = 0;
  std::uint64_t tick_ = 0;
};

}  // namespace qcoder::engine
