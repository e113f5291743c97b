// Byte-level BPE: the GPT-2 byte alphabet, the merge table and the merge loop, and a bounded word cache.
//
// The vocabulary is kept as raw bytes (tokenizer.json writes tokens in the byte-level alphabet, where the
// byte 0x20 is 'Ġ'); a word is the raw UTF-8 bytes of one pre-token. Merges live in an open-addressing
// hash map keyed on the pair of ids; a word's merges are applied lowest rank first, leftmost first (the
// Hugging Face order), with a linear scan for short words and a heap for long ones so that a 1 MB run of
// letters stays O(n log n).
// Thread-safety: a bpe_model is immutable after loading and safe to share; bpe_scratch and word_cache
// belong to one thread (one encoder) at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qcoder::engine {

using token_id = std::int32_t;

namespace byte_level {
// The character that stands for byte `b` in tokenizer.json (printable bytes stand for themselves).
char32_t char_of_byte(std::uint8_t b);
// The raw bytes of a token written in the byte-level alphabet, or nullopt when it holds another character.
std::optional<std::string> to_bytes(std::string_view token);
// The byte-level spelling of raw bytes (the inverse of to_bytes).
std::string to_token(std::string_view bytes);
}  // namespace byte_level

// Work space for bpe_model::encode_word; reuse one per thread so the hot loop does not allocate.
struct bpe_scratch {
  struct symbol {
    token_id id;
    std::int32_t prev;
    std::int32_t next;
  };
  struct candidate {
    std::uint32_t rank;
    std::uint32_t pos;
  };
  std::vector<token_id> ids;
  std::vector<std::uint32_t> ranks;
  std::vector<token_id> merged;
  std::vector<symbol> symbols;
  std::vector<candidate> heap;
};

class bpe_model {
 public:
  static constexpr std::uint32_t no_rank = UINT32_MAX;

  bpe_model() = default;
  // token_bytes[id] holds the raw bytes of vocabulary entry `id`; ids missing from the vocabulary hold an
  // empty string. `ignore_merges`: a word that is a whole vocabulary entry is taken as is (tokenizer.json's
  // model.ignore_merges).
  bpe_model(std::vector<std::string> token_bytes, bool ignore_merges);

  // Adds the next merge (ranks are given in call order). False when the pair was already added.
  bool add_merge(token_id left, token_id right, token_id merged);
  void reserve_merges(std::size_t count);

  // Appends the ids of one word (raw bytes). Bytes without a single-byte token are dropped (the vocabulary
  // has no unknown token); the Qwen vocabularies hold all 256.
  void encode_word(std::string_view word, bpe_scratch& scratch, std::vector<token_id>& out) const;

  // The single-byte token of `b`, or -1 when the vocabulary lacks it.
  token_id byte_token(std::uint8_t b) const { return byte_token_[b]; }
  // The id of a vocabulary entry given by its raw bytes.
  std::optional<token_id> find(std::string_view bytes) const;
  // Raw bytes of a vocabulary id (empty when the id is not in the vocabulary).
  std::string_view bytes_of(token_id id) const;
  std::size_t id_limit() const { return token_bytes_.size(); }  // one past the largest vocabulary id
  std::size_t merge_count() const { return merge_count_; }
  bool has_all_bytes() const;

  // Rank and result of merging (left, right), or no_rank.
  struct merge {
    std::uint32_t rank = no_rank;
    token_id merged = -1;
  };
  merge find_merge(token_id left, token_id right) const;

 private:
  struct slot {
    std::uint64_t key = empty_key;
    std::uint32_t rank = no_rank;
    token_id merged = -1;
  };
  static constexpr std::uint64_t empty_key = UINT64_MAX;
  static std::uint64_t pair_key(token_id left, token_id right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  void grow();
  void merge_short(bpe_scratch& s) const;
  void merge_long(bpe_scratch& s) const;

  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> token_bytes_;
  std::unordered_map<std::string, token_id, string_hash, std::equal_to<>> vocab_;
  token_id byte_token_[256] = {};
  std::vector<slot> slots_;  // power-of-two size, at most half full
  std::size_t merge_count_ = 0;
  bool ignore_merges_ = false;
};

// A bounded cache word -> ids. Storage is reserved once; when it is full the cache starts over (cheaper
// and simpler than LRU bookkeeping, and source code re-fills it with its common words at once).
class word_cache {
 public:
  static constexpr std::size_t max_word_bytes = 64;  // longer words are not cached

  explicit word_cache(std::size_t slot_count = 1 << 15);

  static std::uint64_t hash(std::string_view word);
  // Appends the cached ids of `word` to `out`; false when it is not cached.
  bool find(std::string_view word, std::uint64_t hash, std::vector<token_id>& out) const;
  void insert(std::string_view word, std::uint64_t hash, std::span<const token_id> ids);
  void clear();
  std::size_t size() const { return used_; }

 private:
  struct slot {
    std::uint64_t hash = 0;
    std::uint32_t key_offset = 0;
    std::uint32_t ids_offset = 0;
    std::uint16_t key_length = 0;  // 0: empty slot (empty words are never cached)
    std::uint16_t id_count = 0;
  };
  std::vector<slot> slots_;
  std::string keys_;
  std::vector<token_id> ids_;
  std::size_t used_ = 0;
  std::size_t slot_count_;
};

}  // namespace qcoder::engine
