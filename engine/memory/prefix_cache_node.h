// One node of the prefix cache's radix tree (internal to engine/memory/prefix_cache*.cpp).
// The edge holds `tokens`, positions [start, start + tokens.size()) of every prompt through it; `pages`
// hold their K/V, page i the rows [i·P, min(len, (i+1)·P)) laid out [attention layer][K, V][row][kv_stride],
// each page exactly as large as its rows. `snapshot`: every DeltaNet layer's conv state then recurrent
// state after the last token, empty when none; `logits`: [vocab] after the last token, only with a snapshot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/memory/prefix_cache.h"

namespace qcoder::engine {

struct prefix_cache::node {
  node* parent = nullptr;
  std::int64_t start = 0;
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<float>> pages;
  std::vector<float> snapshot;
  std::vector<float> logits;
  std::vector<std::unique_ptr<node>> children;  // each starts with a different token
  std::uint64_t last_used = 0;
  bool pinned = false;  // on the path an insert is working on: never evicted

  std::int64_t length() const { return static_cast<std::int64_t>(tokens.size()); }
  std::int64_t end() const { return start + length(); }

  node* child(std::int32_t first) const {
    for (const auto& c : children) {
      if (c->tokens.front() == first) return c.get();
    }
    return nullptr;
  }
  // Tokens of the edge that `rest` starts with.
  std::int64_t common_prefix(std::span<const std::int32_t> rest) const {
    const std::size_t limit = std::min(rest.size(), tokens.size());
    std::size_t i = 0;
    while (i < limit && rest[i] == tokens[i]) ++i;
    return static_cast<std::int64_t>(i);
  }
  // Pre-order walks (parents before children), iterative: a long editing session makes deep chains.
  template <class F>
  void visit(F&& f) const {
    std::vector<const node*> stack{this};
    while (!stack.empty()) {
      const node* n = stack.back();
      stack.pop_back();
      f(*n);
      for (auto it = n->children.rbegin(); it != n->children.rend(); ++it) stack.push_back(it->get());
    }
  }
  template <class F>
  void visit_mutable(F&& f) {
    std::vector<node*> stack{this};
    while (!stack.empty()) {
      node* n = stack.back();
      stack.pop_back();
      f(*n);
      for (auto it = n->children.rbegin(); it != n->children.rend(); ++it) stack.push_back(it->get());
    }
  }

  node() = default;
  node(const node&) = delete;
  node& operator=(const node&) = delete;
  // Frees the subtree without recursion.
  ~node() {
    std::vector<std::unique_ptr<node>> doomed = std::move(children);
    while (!doomed.empty()) {
      std::unique_ptr<node> n = std::move(doomed.back());
      doomed.pop_back();
      for (auto& c : n->children) doomed.push_back(std::move(c));
      n->children.clear();
    }
  }
};

}  // namespace qcoder::engine
