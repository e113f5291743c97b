// The prefix cache: every useful prefix of past requests kept warm, for a hybrid model whose DeltaNet
// state cannot be rewound.
//
// A radix tree over token ids. Each node owns the attention K/V of its edge's tokens, in pages of
// `page_tokens` rows, and may hold a snapshot of every DeltaNet layer's conv + recurrent state as it was
// after the node's last token (and the logits there). Attention K/V of any prefix could be reused, but the
// recurrent state only where a snapshot was taken, so a request restores the deepest snapshot on its path,
// copies the K/V rows up to it, and prefills the rest. Every leaf holds a snapshot (a leaf without one is
// useless and is dropped).
//
// Memory: a byte budget covers everything the tree allocates (pages, snapshots, logits, token ids and the
// nodes themselves); bytes() is exact and audit_bytes() recomputes it from the allocations. Inserting
// evicts least-recently-used leaves and inner snapshots first, never the path being inserted, so the
// budget holds after and during every call; an entry that cannot fit at all is not stored.
//
// Thread-safety: none; the inference thread owns the cache, as it owns the model and its states.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "engine/memory/sequence_state.h"
#include "engine/model_config.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

struct prefix_cache_options {
  std::uint64_t budget_bytes = 0;  // 0 stores nothing
  std::int64_t page_tokens = 64;   // K/V rows per page
};

struct prefix_cache_stats {
  std::uint64_t lookups = 0;           // restore() calls
  std::uint64_t hits = 0;              // ... that restored at least one token
  std::uint64_t tokens_looked_up = 0;  // prompt tokens passed to restore()
  std::uint64_t tokens_restored = 0;   // ... served from the cache
  std::uint64_t snapshots_stored = 0;
  std::uint64_t nodes_evicted = 0;
  std::uint64_t snapshots_evicted = 0;  // from inner nodes, keeping their K/V for the nodes below
  std::uint64_t inserts_refused = 0;    // entries larger than the whole budget
};

// What restore() put into the state.
struct prefix_restore {
  std::int64_t tokens = 0;    // prompt positions now in the state (0: nothing cached)
  bool has_logits = false;    // the logits after the last restored token were copied out too
};

class prefix_cache {
 public:
  prefix_cache(const model_config& config, prefix_cache_options options);
  ~prefix_cache();
  prefix_cache(const prefix_cache&) = delete;
  prefix_cache& operator=(const prefix_cache&) = delete;

  // Resets `state` and fills it with the deepest cached snapshot on the path of `tokens`: at a depth below
  // tokens.size() (at least one token is left to compute logits from), or at tokens.size() itself when
  // that node stored its logits (then copied to `logits`, [vocab], when it is not null).
  prefix_restore restore(std::span<const std::int32_t> tokens, sequence_state& state, float* logits = nullptr);

  // Length of the longest common prefix of `tokens` and any cached path (snapshot or not): where a prompt
  // leaves the tree, a good place for a new snapshot.
  std::int64_t shared_prefix(std::span<const std::int32_t> tokens) const;

  // Records what `state` holds after `tokens` (tokens.size() must equal state.length()): the K/V rows the
  // tree lacks and a snapshot of the recurrent state at the end, with the logits after the last token when
  // `logits` ([vocab]) is not null. Evicts to stay within the budget; stores nothing when the entry alone
  // would not fit.
  void insert(std::span<const std::int32_t> tokens, const sequence_state& state, const float* logits = nullptr);

  // Drops everything.
  void clear();

  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t budget() const { return options_.budget_bytes; }
  // bytes() recomputed by walking the tree and summing its allocations (for tests).
  std::uint64_t audit_bytes() const;
  std::int64_t snapshot_count() const;
  std::int64_t node_count() const;
  const prefix_cache_stats& stats() const { return stats_; }
  // Bytes of one snapshot (all DeltaNet layers' conv and recurrent state).
  std::uint64_t snapshot_bytes() const { return static_cast<std::uint64_t>(snapshot_floats_) * sizeof(float); }
  // Bytes of the K/V of one token (all attention layers).
  std::uint64_t kv_bytes_per_token() const;

  // Writes the whole tree to `file` (through a temporary file and a rename, so an interrupted save never
  // leaves a half-written cache), tagged with `identity` (see model_identity()).
  result<void> save(const std::filesystem::path& file, std::string_view identity) const;
  // Replaces the contents with what `file` holds. Errors, leaving the cache empty: the file is missing,
  // truncated or corrupt, or was saved for another model (identity or shapes differ). What does not fit
  // the budget is dropped, least recently used first.
  result<void> load(const std::filesystem::path& file, std::string_view identity);

 private:
  struct node;
  struct loader;

  node* split(node* n, std::int64_t at);
  node* add_child(node* parent, std::span<const std::int32_t> tokens, std::int64_t first, const sequence_state& state);
  void fill_pages(node& n, const sequence_state& state) const;
  void copy_rows_out(const node& n, sequence_state& state, std::int64_t first_position) const;
  bool make_room(std::uint64_t needed);
  bool evict_one();
  void remove_leaf(node* n);
  void touch(node* n);
  std::uint64_t node_bytes(const node& n) const;
  std::uint64_t page_bytes(std::int64_t rows) const;
  void drop_snapshot(node* n);

  prefix_cache_options options_;
  std::int64_t vocab_ = 0;
  std::vector<std::int64_t> attention_layers_;  // layer indices, in order
  std::vector<std::int64_t> deltanet_layers_;
  std::int64_t kv_stride_ = 0;
  std::int64_t snapshot_floats_ = 0;
  std::unique_ptr<node> root_;
  std::uint64_t bytes_ = 0;
  std::uint64_t clock_ = 0;
  prefix_cache_stats stats_;
};

// A short hex string that changes whenever the weights do: a hash of config.json and, per safetensors
// file, its name, size, header and 16 blocks of 4 KiB sampled across its data. Used to tag saved caches.
result<std::string> model_identity(const std::filesystem::path& model_dir);

}  // namespace qcoder::engine
