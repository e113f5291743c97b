// LRU of encoded chunks: a list in recency order and a hash index into it.
#include "engine/tokenizer/chunk_cache.h"

namespace qcoder::engine {

chunk_cache::chunk_cache(encoder& enc, std::size_t budget_bytes) : enc_(&enc), budget_bytes_(budget_bytes) {}

std::span<const token_id> chunk_cache::encode(std::string_view text, bool allow_special) {
  const std::uint64_t key = std::hash<std::string_view>{}(text) ^ (allow_special ? 0x9E3779B97F4A7C15ull : 0);
  if (auto it = index_.find(key); it != index_.end()) {
    entry_list::iterator e = it->second;
    if (e->text == text && e->allow_special == allow_special) {
      ++hits_;
      entries_.splice(entries_.begin(), entries_, e);
      return e->ids;
    }
    stored_bytes_ -= e->cost();  // a hash collision: the newer text takes the slot
    entries_.erase(e);
    index_.erase(it);
  }
  ++misses_;
  entry fresh{key, std::string(text), allow_special, {}};
  enc_->encode(text, allow_special, fresh.ids);
  fresh.ids.shrink_to_fit();
  entries_.push_front(std::move(fresh));
  index_.emplace(key, entries_.begin());
  stored_bytes_ += entries_.front().cost();
  evict_to_budget(&entries_.front());
  return entries_.front().ids;
}

void chunk_cache::evict_to_budget(const entry* keep) {
  while (stored_bytes_ > budget_bytes_ && !entries_.empty() && &entries_.back() != keep) {
    stored_bytes_ -= entries_.back().cost();
    index_.erase(entries_.back().key);
    entries_.pop_back();
  }
}

void chunk_cache::clear() {
  entries_.clear();
  index_.clear();
  stored_bytes_ = 0;
}

}  // namespace qcoder::engine
