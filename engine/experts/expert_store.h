// The host tier of the expert store: routed experts live in a bounded pool of RAM slots per layer and are
// read on demand from the checkpoint's own safetensors files (no re-extracted copy), by loader threads.
//
// One expert of one layer (gate, up and down weights with their FP8 scales) is the unit; a slot holds one,
// byte for byte as stored, so results are bitwise identical to reading the mapped file. Reads bypass the OS
// page cache (O_DIRECT, whole 4 KiB blocks into a block-aligned room per part, the view pointing where the
// data starts); where the file system refuses, they pread through the cache and drop the pages after
// (posix_fadvise DONTNEED). Either way, with a budget set, the budget is the memory the experts really cost.
// Which expert leaves a full pool is the layer's cache_policy.
//
// Use, per layer: request() the experts a chunk needs (and, speculatively, the next layer's predicted
// ones), then acquire_ready() repeatedly, computing each time with the experts that have arrived, and
// release() each after. A read error (missing or truncated shard) is reported by acquire_ready; the slot is
// then free again, so a later request retries (reopening the file).
// Thread-safety: request/acquire_ready/release/stats are called by the inference thread; loader threads work
// in the background; everything shared is guarded by one mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/experts/cache_policy.h"
#include "engine/model/qwen3_next_weights.h"
#include "engine/model_config.h"
#include "kernels/common/weight_arena.h"

namespace qcoder::engine {

// A RAM budget for the experts of each layer in [first, last] (each of them gets `bytes`, not the range).
struct layer_budget {
  std::int64_t first = 0;
  std::int64_t last = 0;
  std::uint64_t bytes = 0;
};

struct expert_store_options {
  std::uint64_t ram_budget = 0;   // bytes for all layers' slots; at least one slot per layer is kept
  // Per-layer budgets, taken out of ram_budget; the MoE layers not named share what is left equally.
  std::vector<layer_budget> layer_budgets;
  std::string policy = "lru";
  int loader_threads = 2;
  bool prefetch = true;           // speculative loads from the next layer's router
  bool direct_io = true;          // O_DIRECT reads (no page-cache copy), buffered where the file system refuses
};

struct expert_layer_stats {
  std::uint64_t hits = 0;               // expert resident (or already loading) when requested for use
  std::uint64_t misses = 0;             // had to be read
  std::uint64_t prefetches = 0;         // speculative loads issued
  std::uint64_t prefetch_used = 0;      // speculative loads that a later use hit
  std::uint64_t reads = 0;              // experts read (demand and speculative)
  std::uint64_t bytes_read = 0;         // from the files (with direct reads, whole blocks)
  double wait_seconds = 0.0;            // time acquire_ready() blocked the compute

  // Field-wise sums and differences, for totals over layers and figures over an interval.
  expert_layer_stats& operator+=(const expert_layer_stats& o);
  friend expert_layer_stats operator-(expert_layer_stats a, const expert_layer_stats& b);
};

// Slots per layer (0 for a dense layer) for `options`: a named layer gets its budget, the other sparse layers
// split the rest of ram_budget equally; every sparse layer gets at least one slot and at most `experts`.
// Errors (invalid_argument) for a layer that does not exist or has no routed experts, a layer named twice,
// and named budgets that add up to more than ram_budget.
result<std::vector<std::int32_t>> plan_expert_slots(const expert_store_options& options, const std::vector<bool>& sparse,
                                                    std::uint64_t slot_bytes, std::int64_t experts);

// "0-11:85 12-47:164": runs of consecutive sparse layers with the same slot count (dense layers left out).
std::string describe_slots(std::span<const std::int32_t> slots);

class expert_store {
 public:
  // `weights` gives each expert's tensors (views into the checkpoint; used for their file locations only).
  static result<std::unique_ptr<expert_store>> create(const checkpoint& ckpt, const model_config& config,
                                                      const qwen3_next_weights& weights,
                                                      const expert_store_options& options);
  ~expert_store();
  expert_store(const expert_store&) = delete;
  expert_store& operator=(const expert_store&) = delete;

  std::int32_t slots(std::int64_t layer) const;  // 0 for a dense layer
  std::vector<std::int32_t> layer_slots() const;  // slots(l) for every layer
  std::uint64_t expert_bytes() const { return slot_bytes_; }  // one slot, with the alignment slack
  std::uint64_t allocated_bytes() const;

  // Starts loading those of `experts` that are not resident, as far as free or evictable slots allow
  // (never evicting an expert of the same call or one in use). Speculative requests count as prefetches.
  void request(std::int64_t layer, std::span<const std::int32_t> experts, bool speculative);
  // Waits until at least one of `experts` is resident, then pins every one that is and appends
  // (position in `experts`, view) to `out`: the caller computes experts in the order their loads finish,
  // resident ones first. Starts loads for any that are not resident yet. Views stay valid until
  // release(). A read error (missing or truncated shard) is returned and pins nothing; the slot is free
  // again, so a later request retries (reopening the file).
  result<void> acquire_ready(std::int64_t layer, std::span<const std::int32_t> experts,
                             std::vector<std::pair<std::size_t, const mlp_weights*>>& out);
  void release(std::int64_t layer, std::int32_t expert);
  // Pins `expert` and returns its view when it is resident and loaded; null otherwise (nothing is started,
  // nothing counted). For copies out of the store that must not wait (the device tier's prefetch).
  const mlp_weights* acquire_if_ready(std::int64_t layer, std::int32_t expert);
  // The memory of every slot, one block (a device maps it once to copy from it and read it in place).
  std::span<const std::byte> arena() const { return {arena_.get(), arena_bytes_}; }
  // Marks the start of the next token (the policies' clock).
  void next_token() { ++tick_; }

  const std::vector<expert_layer_stats>& stats() const { return stats_; }
  expert_layer_stats totals() const;
  const expert_store_options& options() const { return options_; }

 private:
  enum class slot_state { empty, loading, ready, failed };
  struct slot {
    std::int32_t expert = -1;
    slot_state state = slot_state::empty;
    int pins = 0;
    bool speculative = false;  // loaded by a prefetch and not used yet
    std::byte* buffer = nullptr;
    mlp_weights view;          // into buffer
    std::string error;         // with state failed
  };
  struct layer_pool {
    std::vector<slot> slots;
    std::vector<std::int32_t> where;  // expert → slot index, -1 when not resident
    std::unique_ptr<cache_policy> policy;
  };
  struct source_tensor {
    const tensor_info* weight = nullptr;
    const tensor_info* scale = nullptr;  // FP8 only
  };
  struct load_job {
    std::int64_t layer;
    std::int32_t slot;
  };

  expert_store() = default;
  // Finds a slot for `expert` (free, else a victim); -1 when every slot is busy. Caller holds the mutex.
  std::int32_t claim_slot(layer_pool& pool, std::int64_t layer, std::span<const std::int32_t> keep);
  void start_load(std::int64_t layer, std::int32_t slot_index, std::int32_t expert, bool speculative);
  void loader_loop();
  struct part_read {
    std::byte* data;       // where the part's first byte landed
    std::uint64_t bytes;   // bytes read from the file (whole blocks with O_DIRECT)
  };
  // Reads an expert's parts into `buffer` and points `view` at them; returns the bytes read from disk.
  result<std::uint64_t> read_expert(std::int64_t layer, std::int32_t expert, std::byte* buffer, mlp_weights& view);
  // Reads `size` bytes at `offset` of `file` into `room` (the part's room in a slot: block-aligned, with the
  // alignment slack when reads are direct).
  result<part_read> read_part(const std::filesystem::path& file, std::uint64_t offset, std::size_t size, std::byte* room);
  mlp_weights view_of(std::int64_t layer, std::byte* buffer) const;

  expert_store_options options_;
  const qwen3_next_weights* weights_ = nullptr;
  std::int64_t experts_per_layer_ = 0;
  std::uint64_t slot_bytes_ = 0;
  // Offsets of the six parts inside a slot buffer: gate, up, down weights, then their scales.
  std::array<std::uint64_t, 6> part_offset_{};
  std::vector<std::vector<std::array<source_tensor, 3>>> sources_;  // [layer][expert][gate, up, down]
  std::vector<layer_pool> pools_;
  std::vector<expert_layer_stats> stats_;
  std::uint64_t tick_ = 0;
  weight_arena arena_;
  std::uint64_t arena_bytes_ = 0;

  std::mutex mutex_;
  std::condition_variable loaded_;   // a load finished or a pin was released (acquire_ready waits on it)
  std::condition_variable queued_;   // a job arrived or stop (loaders wait on it)
  std::deque<load_job> queue_;
  bool stop_ = false;
  std::vector<std::thread> loaders_;
  // Open file descriptors by path (buffered, and O_DIRECT or -1), reopened after a read error. A reader
  // holds the handle while it reads, so a loader that reopens the file (or gives up on O_DIRECT) never
  // closes a descriptor another loader is reading from: the old one closes with its last reader.
  struct file_handle {
    int fd = -1;
    int direct_fd = -1;
    std::atomic<bool> direct_refused{false};  // the file system refused a direct read: use fd
    file_handle(int buffered, int direct) : fd(buffered), direct_fd(direct) {}
    ~file_handle();
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
  };
  struct open_file {
    std::filesystem::path path;
    std::shared_ptr<file_handle> handle;
  };
  std::mutex files_mutex_;
  std::vector<open_file> files_;
};

}  // namespace qcoder::engine
