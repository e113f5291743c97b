// Token ids of text chunks, remembered between requests so that the context builder does not re-tokenize
// text that has not changed (a file's unchanged blocks, the repository header, the prompt template).
//
// Keyed by the exact text and the allow_special mode; the stored text is compared on every hit, so a hash
// collision can only cost a re-encode, never wrong ids. Least recently used chunks are dropped when the
// total stored size (text bytes + 4 bytes per id) passes the budget.
// Encoding chunks separately equals encoding their concatenation only where each cut is a pre-token boundary
// that normalization does not cross: cut right after a '\n' when the next chunk does not begin with '\r',
// '\n' or a combining mark (Qwen's pattern keeps a run of newlines together). Callers cut at such lines.
// Thread-safety: not thread-safe; owned by the thread that builds prompts.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace qcoder::engine {

class chunk_cache {
 public:
  explicit chunk_cache(encoder& enc, std::size_t budget_bytes = 64u << 20);

  // The ids of `text`; valid until the next call on this cache.
  std::span<const token_id> encode(std::string_view text, bool allow_special = false);

  std::uint64_t hits() const { return hits_; }
  std::uint64_t misses() const { return misses_; }
  std::size_t chunk_count() const { return entries_.size(); }
  std::size_t stored_bytes() const { return stored_bytes_; }
  void clear();

 private:
  struct entry {
    std::uint64_t key;
    std::string text;
    bool allow_special;
    std::vector<token_id> ids;
    std::size_t cost() const { return text.size() + ids.size() * sizeof(token_id) + 64; }
  };
  using entry_list = std::list<entry>;
  void evict_to_budget(const entry* keep);

  encoder* enc_;
  std::size_t budget_bytes_;
  entry_list entries_;  // most recently used first
  std::unordered_map<std::uint64_t, entry_list::iterator> index_;
  std::size_t stored_bytes_ = 0;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace qcoder::engine
