// The radix tree of cached prefixes: matching, insertion with node splits, LRU eviction and exact byte
// accounting. Saving and loading live in prefix_cache_file.cpp.
#include "engine/memory/prefix_cache.h"

#include <algorithm>
#include <cstring>

#include "engine/memory/prefix_cache_node.h"

namespace qcoder::engine {

prefix_cache::prefix_cache(const model_config& config, prefix_cache_options options)
    : options_(options), vocab_(config.vocab_size), kv_stride_(config.num_key_value_heads * config.head_dim) {
  options_.page_tokens = std::max<std::int64_t>(1, options_.page_tokens);
  const std::int64_t conv_dim = 2 * config.linear_num_key_heads * config.linear_key_head_dim +
                                config.linear_num_value_heads * config.linear_value_head_dim;
  const std::int64_t conv_floats = conv_dim * (config.linear_conv_kernel_dim - 1);
  const std::int64_t ssm_floats =
      config.linear_num_value_heads * config.linear_key_head_dim * config.linear_value_head_dim;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    if (config.layer_types[static_cast<std::size_t>(l)] == layer_kind::full_attention) {
      attention_layers_.push_back(l);
    } else {
      deltanet_layers_.push_back(l);
      snapshot_floats_ += conv_floats + ssm_floats;
    }
  }
  root_ = std::make_unique<node>();
  bytes_ = node_bytes(*root_);
}

prefix_cache::~prefix_cache() = default;

std::uint64_t prefix_cache::kv_bytes_per_token() const {
  return static_cast<std::uint64_t>(attention_layers_.size()) * 2 * static_cast<std::uint64_t>(kv_stride_) *
         sizeof(float);
}

std::uint64_t prefix_cache::page_bytes(std::int64_t rows) const {
  return sizeof(std::vector<float>) + static_cast<std::uint64_t>(rows) * kv_bytes_per_token();
}

std::uint64_t prefix_cache::node_bytes(const node& n) const {
  std::uint64_t total = sizeof(node) + n.tokens.capacity() * sizeof(std::int32_t) +
                        n.children.capacity() * sizeof(std::unique_ptr<node>) +
                        (n.snapshot.capacity() + n.logits.capacity()) * sizeof(float) +
                        (n.pages.capacity() - n.pages.size()) * sizeof(std::vector<float>);
  for (const std::vector<float>& page : n.pages) total += sizeof(std::vector<float>) + page.capacity() * sizeof(float);
  return total;
}

std::uint64_t prefix_cache::audit_bytes() const {
  std::uint64_t total = 0;
  root_->visit([&](const node& n) { total += node_bytes(n); });
  return total;
}

std::int64_t prefix_cache::snapshot_count() const {
  std::int64_t count = 0;
  root_->visit([&](const node& n) { count += n.snapshot.empty() ? 0 : 1; });
  return count;
}

std::int64_t prefix_cache::node_count() const {
  std::int64_t count = 0;
  root_->visit([&](const node&) { ++count; });
  return count - 1;  // not the root
}

void prefix_cache::clear() {
  root_ = std::make_unique<node>();
  bytes_ = node_bytes(*root_);
}

void prefix_cache::touch(node* n) {
  const std::uint64_t now = ++clock_;
  for (; n != nullptr; n = n->parent) n->last_used = now;
}

// K/V rows of positions [n.start, n.end()) from the state into fresh pages of the node.
void prefix_cache::fill_pages(node& n, const sequence_state& state) const {
  const std::span<const std::int64_t> layers = attention_layers_;
  const std::int64_t page_tokens = options_.page_tokens;
  const std::int64_t stride = kv_stride_;
  const std::int64_t len = n.length();
  n.pages.clear();
  n.pages.reserve(static_cast<std::size_t>((len + page_tokens - 1) / page_tokens));
  for (std::int64_t first = 0; first < len; first += page_tokens) {
    const std::int64_t rows = std::min(page_tokens, len - first);
    std::vector<float>& page = n.pages.emplace_back(static_cast<std::size_t>(static_cast<std::int64_t>(layers.size()) * 2 * rows * stride));
    for (std::size_t a = 0; a < layers.size(); ++a) {
      const kv_view kv = state.kv(layers[a]);
      const std::size_t count = static_cast<std::size_t>(rows * stride);
      const std::int64_t position = n.start + first;
      std::memcpy(page.data() + (2 * a) * count, kv.keys + position * kv.stride, count * sizeof(float));
      std::memcpy(page.data() + (2 * a + 1) * count, kv.values + position * kv.stride, count * sizeof(float));
    }
  }
}

void prefix_cache::copy_rows_out(const node& n, sequence_state& state, std::int64_t first_position) const {
  const std::int64_t len = n.length();
  const std::int64_t p = options_.page_tokens;
  for (std::int64_t i = 0; i * p < len; ++i) {
    const std::int64_t rows = std::min(p, len - i * p);
    const std::vector<float>& page = n.pages[static_cast<std::size_t>(i)];
    const std::size_t count = static_cast<std::size_t>(rows * kv_stride_);
    for (std::size_t a = 0; a < attention_layers_.size(); ++a) {
      const kv_view kv = state.kv(attention_layers_[a]);
      const std::int64_t position = first_position + i * p;
      std::memcpy(kv.keys + position * kv.stride, page.data() + (2 * a) * count, count * sizeof(float));
      std::memcpy(kv.values + position * kv.stride, page.data() + (2 * a + 1) * count, count * sizeof(float));
    }
  }
}

prefix_restore prefix_cache::restore(std::span<const std::int32_t> tokens, sequence_state& state, float* logits) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  ++stats_.lookups;
  stats_.tokens_looked_up += static_cast<std::uint64_t>(n);
  state.reset();
  node* best = nullptr;
  bool best_logits = false;
  node* cur = root_.get();
  std::int64_t depth = 0;
  while (depth < n) {
    node* child = cur->child(tokens[static_cast<std::size_t>(depth)]);
    if (child == nullptr || child->end() > state.capacity()) break;
    if (child->common_prefix(tokens.subspan(static_cast<std::size_t>(depth))) < child->length()) break;
    cur = child;
    depth = cur->end();
    if (cur->snapshot.empty()) continue;
    if (depth < n) {
      best = cur;
      best_logits = false;
    } else if (!cur->logits.empty()) {
      best = cur;
      best_logits = true;
    }
  }
  if (best == nullptr) return {};

  std::vector<const node*> path;
  for (const node* p = best; p != root_.get(); p = p->parent) path.push_back(p);
  for (auto it = path.rbegin(); it != path.rend(); ++it) copy_rows_out(**it, state, (*it)->start);
  const float* snap = best->snapshot.data();
  for (const std::int64_t l : deltanet_layers_) {
    const recurrent_view mem = state.recurrent(l);
    std::memcpy(mem.conv, snap, static_cast<std::size_t>(mem.conv_size) * sizeof(float));
    std::memcpy(mem.ssm, snap + mem.conv_size, static_cast<std::size_t>(mem.ssm_size) * sizeof(float));
    snap += mem.conv_size + mem.ssm_size;
  }
  state.advance(best->end());
  if (best_logits && logits != nullptr) std::copy(best->logits.begin(), best->logits.end(), logits);
  touch(best);
  ++stats_.hits;
  stats_.tokens_restored += static_cast<std::uint64_t>(best->end());
  return {best->end(), best_logits && logits != nullptr};
}

std::int64_t prefix_cache::shared_prefix(std::span<const std::int32_t> tokens) const {
  const node* cur = root_.get();
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  while (cur->end() < n) {
    const node* child = cur->child(tokens[static_cast<std::size_t>(cur->end())]);
    if (child == nullptr) break;
    const std::int64_t common = child->common_prefix(tokens.subspan(static_cast<std::size_t>(cur->end())));
    if (common < child->length()) return cur->end() + common;
    cur = child;
  }
  return cur->end();
}

// Splits `n` after `at` tokens of its edge; returns the upper part (n itself, now ending at start + at).
// The lower part keeps the snapshot, the logits and the children.
prefix_cache::node* prefix_cache::split(node* n, std::int64_t at) {
  bytes_ -= node_bytes(*n);
  auto lower = std::make_unique<node>();
  lower->parent = n;
  lower->start = n->start + at;
  lower->last_used = n->last_used;
  lower->tokens.assign(n->tokens.begin() + at, n->tokens.end());
  lower->snapshot = std::move(n->snapshot);
  lower->logits = std::move(n->logits);
  lower->children = std::move(n->children);
  for (auto& c : lower->children) c->parent = lower.get();

  // Re-page: rows [at, len) go to the lower node, rows [0, at) stay; pages hold exactly their rows.
  const std::int64_t p = options_.page_tokens;
  const std::int64_t len = n->length();
  const std::size_t per_row = static_cast<std::size_t>(kv_stride_);
  const std::size_t layers2 = 2 * attention_layers_.size();
  auto row_of = [&](const node& owner, std::int64_t r, std::size_t slot) {
    const std::int64_t page = r / p;
    const std::int64_t rows = std::min(p, owner.length() - page * p);
    return owner.pages[static_cast<std::size_t>(page)].data() +
           (slot * static_cast<std::size_t>(rows) + static_cast<std::size_t>(r % p)) * per_row;
  };
  // The old node's edge length is still `len` while we read from it.
  std::vector<std::vector<float>> upper_pages, lower_pages;
  for (std::int64_t first = 0; first < at; first += p) {
    upper_pages.emplace_back(layers2 * static_cast<std::size_t>(std::min(p, at - first)) * per_row);
  }
  for (std::int64_t first = at; first < len; first += p) {
    lower_pages.emplace_back(layers2 * static_cast<std::size_t>(std::min(p, len - first)) * per_row);
  }
  for (std::int64_t r = 0; r < len; ++r) {
    const bool up = r < at;
    const std::int64_t local = up ? r : r - at;
    const std::int64_t local_len = up ? at : len - at;
    std::vector<float>& page = (up ? upper_pages : lower_pages)[static_cast<std::size_t>(local / p)];
    const std::size_t rows = static_cast<std::size_t>(std::min(p, local_len - (local / p) * p));
    for (std::size_t slot = 0; slot < layers2; ++slot) {
      std::memcpy(page.data() + (slot * rows + static_cast<std::size_t>(local % p)) * per_row, row_of(*n, r, slot),
                  per_row * sizeof(float));
    }
  }
  lower->pages = std::move(lower_pages);
  n->pages = std::move(upper_pages);
  n->tokens = std::vector<std::int32_t>(n->tokens.begin(), n->tokens.begin() + at);
  n->snapshot = {};
  n->logits = {};
  n->children.clear();
  n->children.reserve(1);
  n->children.push_back(std::move(lower));
  bytes_ += node_bytes(*n) + node_bytes(*n->children.front());
  return n;
}

prefix_cache::node* prefix_cache::add_child(node* parent, std::span<const std::int32_t> tokens, std::int64_t first,
                                            const sequence_state& state) {
  auto child = std::make_unique<node>();
  child->parent = parent;
  child->start = first;
  child->tokens.assign(tokens.begin() + first, tokens.end());
  fill_pages(*child, state);
  node* raw = child.get();
  bytes_ -= node_bytes(*parent);
  std::vector<std::unique_ptr<node>> grown;
  grown.reserve(parent->children.size() + 1);
  for (auto& c : parent->children) grown.push_back(std::move(c));
  grown.push_back(std::move(child));
  parent->children = std::move(grown);
  bytes_ += node_bytes(*parent) + node_bytes(*raw);
  return raw;
}

void prefix_cache::insert(std::span<const std::int32_t> tokens, const sequence_state& state, const float* logits) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  if (n == 0 || n != state.length() || options_.budget_bytes == 0) return;

  // Walk without changing anything: the deepest node fully on the path, and how far into the next edge.
  node* cur = root_.get();
  node* partial = nullptr;
  std::int64_t common = 0;
  while (cur->end() < n) {
    node* child = cur->child(tokens[static_cast<std::size_t>(cur->end())]);
    if (child == nullptr) break;
    common = child->common_prefix(tokens.subspan(static_cast<std::size_t>(cur->end())));
    if (common < child->length()) {
      partial = child;
      break;
    }
    cur = child;
  }
  const std::int64_t matched = partial != nullptr ? cur->end() + common : cur->end();

  // What the change may add, as an upper bound: the split's new node and page bookkeeping, the new node
  // with its pages, the snapshot and the logits.
  const std::int64_t p = options_.page_tokens;
  std::uint64_t needed = 0;
  if (partial != nullptr) {
    needed += sizeof(node) + sizeof(std::unique_ptr<node>) +
              static_cast<std::uint64_t>(partial->length() / p + 2) * sizeof(std::vector<float>);
  }
  const bool target_exists = matched == n;
  const node* target = target_exists && partial == nullptr ? cur : nullptr;
  if (!target_exists) {
    const std::int64_t rows = n - matched;
    needed += sizeof(node) + sizeof(std::unique_ptr<node>) * (cur->children.size() + 2) +
              static_cast<std::uint64_t>(rows) * sizeof(std::int32_t) +
              static_cast<std::uint64_t>((rows + p - 1) / p) * sizeof(std::vector<float>) +
              static_cast<std::uint64_t>(rows) * kv_bytes_per_token();
  }
  const bool add_snapshot = target == nullptr || target->snapshot.empty();
  const bool add_logits = logits != nullptr && (target == nullptr || target->logits.empty());
  if (add_snapshot) needed += snapshot_bytes();
  if (add_logits) needed += static_cast<std::uint64_t>(vocab_) * sizeof(float);
  if (!add_snapshot && !add_logits) {
    touch(cur);
    return;
  }

  for (node* q = cur; q != nullptr; q = q->parent) q->pinned = true;
  if (partial != nullptr) partial->pinned = true;
  const bool room = make_room(needed);
  for (node* q = cur; q != nullptr; q = q->parent) q->pinned = false;
  if (partial != nullptr) partial->pinned = false;
  if (!room) {
    ++stats_.inserts_refused;
    return;
  }

  node* end = cur;
  if (partial != nullptr) end = split(partial, common);
  if (end->end() < n) end = add_child(end, tokens, end->end(), state);
  bytes_ -= node_bytes(*end);
  if (add_snapshot && end->snapshot.empty()) {
    end->snapshot.resize(static_cast<std::size_t>(snapshot_floats_));
    float* snap = end->snapshot.data();
    for (const std::int64_t l : deltanet_layers_) {
      const recurrent_view mem = state.recurrent(l);
      std::memcpy(snap, mem.conv, static_cast<std::size_t>(mem.conv_size) * sizeof(float));
      std::memcpy(snap + mem.conv_size, mem.ssm, static_cast<std::size_t>(mem.ssm_size) * sizeof(float));
      snap += mem.conv_size + mem.ssm_size;
    }
    ++stats_.snapshots_stored;
  }
  if (add_logits && end->logits.empty()) end->logits.assign(logits, logits + vocab_);
  bytes_ += node_bytes(*end);
  touch(end);
}

bool prefix_cache::make_room(std::uint64_t needed) {
  if (needed > options_.budget_bytes) return false;
  while (bytes_ + needed > options_.budget_bytes) {
    if (!evict_one()) return false;
  }
  return true;
}

// The least recently used of: unpinned leaves (removed with their K/V) and unpinned inner snapshots (only
// the snapshot goes; the K/V stays for the nodes below).
bool prefix_cache::evict_one() {
  node* victim = nullptr;
  root_->visit_mutable([&](node& n) {
    if (&n == root_.get() || n.pinned) return;
    const bool leaf = n.children.empty();
    if (!leaf && n.snapshot.empty()) return;
    if (victim == nullptr || n.last_used < victim->last_used) victim = &n;
  });
  if (victim == nullptr) return false;
  if (victim->children.empty()) {
    remove_leaf(victim);
  } else {
    drop_snapshot(victim);
  }
  return true;
}

void prefix_cache::drop_snapshot(node* n) {
  bytes_ -= node_bytes(*n);
  n->snapshot = {};
  n->logits = {};
  bytes_ += node_bytes(*n);
  ++stats_.snapshots_evicted;
}

// Removes a leaf, then any ancestor left as a leaf without a snapshot (its K/V can no longer be used).
void prefix_cache::remove_leaf(node* n) {
  while (n != root_.get() && n->children.empty() && !n->pinned) {
    node* parent = n->parent;
    bytes_ -= node_bytes(*n) + node_bytes(*parent);
    std::vector<std::unique_ptr<node>> kept;
    kept.reserve(parent->children.size() - 1);
    for (auto& c : parent->children) {
      if (c.get() != n) kept.push_back(std::move(c));
    }
    parent->children = std::move(kept);  // destroys n
    bytes_ += node_bytes(*parent);
    ++stats_.nodes_evicted;
    if (!parent->snapshot.empty()) break;
    n = parent;
  }
}

}  // namespace qcoder::engine
