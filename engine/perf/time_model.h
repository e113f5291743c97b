// The time model: predicted decode tokens/s of a model on a card (a GPU from a small table, a custom one,
// or this machine's CPU), from one decode step's kernel costs (decode_cost.h) and a routing trace replayed
// through the expert cache that the card's memory leaves room for.
//
// Per decode step:
//   - each kernel takes max(bytes / (memory bandwidth × achieved fraction), FLOPs / peak) + its launch cost
//     (eager launches, or nodes of a CUDA graph);
//   - the routed experts live in per-layer slots (the budget left after the resident weights, activations
//     and sequence state, split evenly over the MoE layers). The trace is replayed on a simulated clock
//     (cache_replay.h): a layer computes for the mean of the MoE layers' kernel times; its misses are copied
//     over the link (PCIe for a GPU, the disk for the CPU) by the copy engines (loaders), demand copies first,
//     and with prefetch on, the next layer's predicted experts are copied while the current layer computes;
//     the layer waits for its last expert. The compute's wait is the copy stall. That is the eager path;
//     the graph path (decode graphs) copies nothing inside a step: its misses are read in place over the
//     link and copied after the step, twice the link bytes, charged as such (time_model.cpp).
//   - the bandwidth ceiling is every weight byte a token reads (resident and its top-k experts) at the card's
//     full memory bandwidth, nothing else.
// Under the VRAM slots, a bounded host tier (host_bytes) is replayed too, untimed, at its own slot count: the
// fraction of VRAM misses it misses as well (its miss rate over the VRAM miss rate: the RAM holds what the
// VRAM holds and more) pays a disk read before its copy, so each miss takes copy + that fraction × disk read
// on the timed replay's link, and the token cannot be shorter than the disk's time for its reads. With the
// CPU tier, a miss in RAM takes min(copy, expert bytes / host_gbps) instead of its copy. Simplifications:
// the CPU tier's runs are timed like copies (as many at once as copy engines); the copy that a miss the CPU
// computed still gets (the engine fills its claimed slot for later tokens) is not charged to the link, which
// is optimistic by at most the CPU tier's gain; and the disk's reads and the copies of one miss do not overlap.
// With batch B > 1 the kernels are costed at batch B; the experts' copies are charged B times those of a
// single stream (no sharing of misses between sequences: pessimistic).
//
// Thread-safety: plain functions over their arguments.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/experts/routing_trace.h"
#include "engine/perf/decode_cost.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

// A card as the model sees it. Bandwidths in GB/s (10^9 bytes), memory in bytes.
struct card {
  std::string name;
  std::string description;
  double memory_gbps = 0;        // peak memory bandwidth (spec sheet)
  double link_gbps = 0;          // host → device, one direction (PCIe spec); CPU: all disk readers together
  double link_one_gbps = 0;      // one copy / read on its own; 0: link_gbps
  std::uint64_t memory_bytes = 0;  // VRAM (CPU: no limit is taken from here; the budget is for experts)
  int copy_engines = 2;          // copies in flight at once (CPU: loader threads)
  double peak_tflops = 0;        // FP32 non-tensor peak (the gemv kernels run on CUDA cores); 0: no FLOP bound
  bool cpu = false;              // the budget is the expert cache alone (--expert-cache-ram), not all memory
  // Achieved fractions and costs (time_model.cpp says where each comes from).
  double bandwidth_efficiency = 0;  // achieved fraction of memory_gbps by streaming kernels
  double link_efficiency = 0;       // achieved fraction of link_gbps by pinned asynchronous copies
  double launch_eager_s = 0;        // per kernel launched from the host
  double launch_graph_s = 0;        // per kernel node of a replayed CUDA graph
  double graph_launch_s = 0;        // per graph launch
  // CPU only: measured weight rates of the matmul kernels by weight type (GB/s of weights), which bound
  // those launches instead of the memory bandwidth; 0: not used.
  double fp8_matmul_gbps = 0;
  double bf16_matmul_gbps = 0;
  std::string source;               // where the table's figures come from
};

// rtx3070ti-8g, rtx4070-12g, rtx4090-24g, h100, h200 (spec-sheet figures), in that order.
std::span<const card> known_cards();
// A card from the table, "cpu" (this machine, measured: see time_model.cpp), or
// "custom:bw=GBPS,pcie=GBPS,vram=SIZE[,name=...]" (vram: a size such as 16GiB or 16; bare numbers are GiB).
result<card> parse_card(std::string_view spec);

struct time_model_options {
  std::uint64_t budget_bytes = 0;   // VRAM for everything; 0: the card's memory. CPU card: RAM for routed
                                    // experts (as --expert-cache-ram); 0: all of them
  std::string policy = "lru";
  bool prefetch = true;
  bool graphs = true;               // decode step replayed as a CUDA graph (false: eager launches); a graph
                                    // step has no prefetch (the option is ignored)
  std::size_t warmup_tokens = 256;  // trace tokens replayed before counting (cold misses)
  // GPU cards, the host tier under the VRAM slots (--expert-cache-ram): host RAM for routed experts; 0: all
  // of them. A bounded one turns decode graphs off, as in the engine.
  std::uint64_t host_bytes = 0;
  double ssd_gbps = 0;              // the reads of its misses from disk, all loaders together; 0: the default
  // GPU cards, eager path: a miss whose expert is in RAM is computed by the CPU when that is faster than its
  // copy (--expert-cpu-misses auto), at host_gbps of weights; 0: the default.
  bool cpu_misses = false;
  double host_gbps = 0;
};

// Seconds per token, split by what the time goes to. They add up to seconds_per_token.
struct time_breakdown {
  double resident_s = 0;     // resident weight reads (matrices, vectors, embedding row, LM head)
  double expert_hit_s = 0;   // reading routed experts that were resident (or arrived in time)
  double expert_miss_s = 0;  // reading routed experts that had to be copied in (from VRAM once there)
  double copy_stall_s = 0;   // the compute waiting for copies
  double state_s = 0;        // KV cache and recurrent state
  double activation_s = 0;   // activations and FLOP-bound excess
  double launch_s = 0;       // launch overhead
};

struct prediction {
  bool fits = true;
  std::string why_not;              // when !fits
  double seconds_per_token = 0;
  double tokens_per_s = 0;          // aggregate over the batch
  double ceiling_tokens_per_s = 0;  // every weight byte of a token at full memory bandwidth
  time_breakdown parts;
  std::int64_t slots_per_layer = 0;  // routed-expert slots (experts: all resident)
  bool all_resident = false;
  double hit_rate = 1;               // accesses served without waiting for a demand copy
  double misses_per_token = 0;
  double copy_bytes_per_token = 0;   // demand and prefetch copies
  std::int64_t resident_bytes = 0;   // device memory for resident weights and activations
  std::int64_t state_bytes = 0;
  std::int64_t expert_cache_bytes = 0;
  // With a bounded host tier (host_bytes): its slots per layer, the fraction of VRAM misses that were not
  // in RAM either (read from disk first), and the disk's bytes per token (demand and speculative reads).
  std::int64_t host_slots_per_layer = 0;
  double disk_fraction = 0;
  double disk_bytes_per_token = 0;
  bool cpu_misses = false;  // VRAM misses in RAM computed by the CPU (cpu_misses and faster than a copy)
  bool graphs = false;      // the decode graph was costed (asked for, a GPU, and no bounded host tier)
};

// Predicts one card. The trace must have the model's MoE layers, experts and top-k.
result<prediction> predict(const decode_cost& cost, const card& target, const routing_trace& trace,
                           const time_model_options& options);

}  // namespace qcoder::engine
