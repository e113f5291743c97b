// Byte-level alphabet, merge table, merge loops and the word cache.
#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "engine/tokenizer/unicode.h"

namespace qcoder::engine {
namespace byte_level {
namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in
// byte order.
struct alphabet {
  std::array<char32_t, 256> char_of{};
  std::array<std::int16_t, 324> byte_of{};  // indexed by code point < 324; -1 when not in the alphabet
  alphabet() {
    byte_of.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      char_of[b] = printable ? static_cast<char32_t>(b) : next++;
      byte_of[char_of[b]] = static_cast<std::int16_t>(b);
    }
  }
};
const alphabet& the_alphabet() {
  static const alphabet a;
  return a;
}

}  // namespace

char32_t char_of_byte(std::uint8_t b) { return the_alphabet().char_of[b]; }

std::optional<std::string> to_bytes(std::string_view token) {
  const alphabet& a = the_alphabet();
  std::string bytes;
  bytes.reserve(token.size());
  for (std::size_t pos = 0; pos < token.size();) {
    const unicode::decoded_char c = unicode::decode_utf8(token, pos);
    if (!c.valid || c.code_point >= a.byte_of.size() || a.byte_of[c.code_point] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(a.byte_of[c.code_point]));
    pos += c.length;
  }
  return bytes;
}

std::string to_token(std::string_view bytes) {
  std::string token;
  token.reserve(bytes.size() * 2);
  for (char b : bytes) unicode::append_utf8(char_of_byte(static_cast<std::uint8_t>(b)), token);
  return token;
}

}  // namespace byte_level

// --- bpe_model ---------------------------------------------------------------------------------

bpe_model::bpe_model(std::vector<std::string> token_bytes, bool ignore_merges)
    : token_bytes_(std::move(token_bytes)), ignore_merges_(ignore_merges) {
  std::fill(std::begin(byte_token_), std::end(byte_token_), -1);
  vocab_.reserve(token_bytes_.size());
  for (std::size_t id = 0; id < token_bytes_.size(); ++id) {
    const std::string& bytes = token_bytes_[id];
    if (bytes.empty()) continue;
    vocab_.emplace(bytes, static_cast<token_id>(id));
    if (bytes.size() == 1) byte_token_[static_cast<std::uint8_t>(bytes[0])] = static_cast<token_id>(id);
  }
  slots_.resize(16);
}

bool bpe_model::has_all_bytes() const {
  return std::none_of(std::begin(byte_token_), std::end(byte_token_), [](token_id t) { return t < 0; });
}

std::optional<token_id> bpe_model::find(std::string_view bytes) const {
  auto it = vocab_.find(bytes);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string_view bpe_model::bytes_of(token_id id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= token_bytes_.size()) return {};
  return token_bytes_[static_cast<std::size_t>(id)];
}

void bpe_model::reserve_merges(std::size_t count) {
  std::size_t size = 16;
  while (size < count * 2) size *= 2;
  if (size > slots_.size()) {
    std::vector<slot> old = std::move(slots_);
    slots_.assign(size, slot{});
    merge_count_ = 0;
    for (const slot& s : old) {
      if (s.key == empty_key) continue;
      std::size_t i = (s.key * 0x9E3779B97F4A7C15ull) >> 32 & (slots_.size() - 1);
      while (slots_[i].key != empty_key) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
      ++merge_count_;
    }
  }
}

void bpe_model::grow() { reserve_merges(slots_.size()); }

bool bpe_model::add_merge(token_id left, token_id right, token_id merged) {
  if ((merge_count_ + 1) * 2 > slots_.size()) grow();
  const std::uint64_t key = pair_key(left, right);
  std::size_t i = (key * 0x9E3779B97F4A7C15ull) >> 32 & (slots_.size() - 1);
  while (slots_[i].key != empty_key) {
    if (slots_[i].key == key) return false;
    i = (i + 1) & (slots_.size() - 1);
  }
  slots_[i] = slot{key, static_cast<std::uint32_t>(merge_count_), merged};
  ++merge_count_;
  return true;
}

bpe_model::merge bpe_model::find_merge(token_id left, token_id right) const {
  const std::uint64_t key = pair_key(left, right);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = (key * 0x9E3779B97F4A7C15ull) >> 32 & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.key == key) return {s.rank, s.merged};
    if (s.key == empty_key) return {};
  }
}

void bpe_model::encode_word(std::string_view word, bpe_scratch& s, std::vector<token_id>& out) const {
  if (ignore_merges_) {
    if (std::optional<token_id> whole = find(word)) {
      out.push_back(*whole);
      return;
    }
  }
  s.ids.clear();
  for (char b : word) {
    const token_id t = byte_token_[static_cast<std::uint8_t>(b)];
    if (t >= 0) s.ids.push_back(t);
  }
  if (s.ids.size() > 1) {
    // A linear scan per merge is fastest for the short words that make up source code; a heap keeps long
    // words (a megabyte of letters, a base64 blob) at O(n log n).
    if (s.ids.size() <= 48) {
      merge_short(s);
    } else {
      merge_long(s);
    }
  }
  out.insert(out.end(), s.ids.begin(), s.ids.end());
}

// ids[0..n): repeatedly merge the pair of lowest rank (leftmost on ties). ranks[i] / merged[i] describe the
// pair (ids[i], ids[i+1]) and are updated only next to a merge.
void bpe_model::merge_short(bpe_scratch& s) const {
  std::size_t n = s.ids.size();
  s.ranks.resize(n);
  s.merged.resize(n);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const merge m = find_merge(s.ids[i], s.ids[i + 1]);
    s.ranks[i] = m.rank;
    s.merged[i] = m.merged;
  }
  s.ranks[n - 1] = no_rank;
  for (;;) {
    std::uint32_t best = no_rank;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (s.ranks[i] < best) {
        best = s.ranks[i];
        at = i;
      }
    }
    if (best == no_rank) break;
    s.ids[at] = s.merged[at];
    for (std::size_t i = at + 1; i + 1 < n; ++i) {
      s.ids[i] = s.ids[i + 1];
      s.ranks[i] = s.ranks[i + 1];
      s.merged[i] = s.merged[i + 1];
    }
    --n;
    s.ranks[n - 1] = no_rank;
    if (at + 1 < n) {
      const merge m = find_merge(s.ids[at], s.ids[at + 1]);
      s.ranks[at] = m.rank;
      s.merged[at] = m.merged;
    }
    if (at > 0) {
      const merge m = find_merge(s.ids[at - 1], s.ids[at]);
      s.ranks[at - 1] = m.rank;
      s.merged[at - 1] = m.merged;
    }
  }
  s.ids.resize(n);
}

// The same order with a doubly linked list of symbols and a min-heap of (rank, position) candidates; stale
// candidates are recognised when popped (their pair no longer has that rank).
void bpe_model::merge_long(bpe_scratch& s) const {
  const std::size_t n = s.ids.size();
  s.symbols.resize(n);
  s.heap.clear();
  const auto later = [](const bpe_scratch::candidate& a, const bpe_scratch::candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  for (std::size_t i = 0; i < n; ++i) {
    s.symbols[i] = {s.ids[i], static_cast<std::int32_t>(i) - 1, i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1};
  }
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const merge m = find_merge(s.ids[i], s.ids[i + 1]);
    if (m.rank != no_rank) s.heap.push_back({m.rank, static_cast<std::uint32_t>(i)});
  }
  std::make_heap(s.heap.begin(), s.heap.end(), later);
  const auto push = [&](std::int32_t left) {
    const bpe_scratch::symbol& a = s.symbols[static_cast<std::size_t>(left)];
    const merge m = find_merge(a.id, s.symbols[static_cast<std::size_t>(a.next)].id);
    if (m.rank == no_rank) return;
    s.heap.push_back({m.rank, static_cast<std::uint32_t>(left)});
    std::push_heap(s.heap.begin(), s.heap.end(), later);
  };
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    const bpe_scratch::candidate top = s.heap.back();
    s.heap.pop_back();
    bpe_scratch::symbol& left = s.symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    bpe_scratch::symbol& right = s.symbols[static_cast<std::size_t>(left.next)];
    const merge m = find_merge(left.id, right.id);
    if (m.rank != top.rank) continue;  // stale: a neighbour was merged since
    left.id = m.merged;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) s.symbols[static_cast<std::size_t>(left.next)].prev = static_cast<std::int32_t>(top.pos);
    if (left.prev >= 0) push(left.prev);
    if (left.next >= 0) push(static_cast<std::int32_t>(top.pos));
  }
  s.ids.clear();
  for (std::int32_t i = 0; i >= 0; i = s.symbols[static_cast<std::size_t>(i)].next) {
    s.ids.push_back(s.symbols[static_cast<std::size_t>(i)].id);
  }
}

// --- word_cache --------------------------------------------------------------------------------

word_cache::word_cache(std::size_t slot_count) : slot_count_(std::max<std::size_t>(16, std::bit_ceil(slot_count))) {}

std::uint64_t word_cache::hash(std::string_view word) {
  const char* p = word.data();
  std::size_t n = word.size();
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  std::uint64_t v = 0;
  std::memcpy(&v, p, n);
  h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 29);
}

bool word_cache::find(std::string_view word, std::uint64_t hash, std::vector<token_id>& out) const {
  if (slots_.empty()) return false;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.key_length == 0) return false;
    if (s.hash == hash && s.key_length == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.id_count);
      return true;
    }
  }
}

void word_cache::insert(std::string_view word, std::uint64_t hash, std::span<const token_id> ids) {
  if (word.empty() || word.size() > max_word_bytes || ids.size() > max_word_bytes) return;
  if (slots_.empty()) {
    slots_.assign(slot_count_, slot{});
    keys_.reserve(slot_count_ / 2 * 16);
    ids_.reserve(slot_count_ / 2 * 8);
  }
  if ((used_ + 1) * 2 > slots_.size() || keys_.size() + word.size() > keys_.capacity() ||
      ids_.size() + ids.size() > ids_.capacity()) {
    clear();  // full: start over rather than grow
  }
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = hash & mask;
  while (slots_[i].key_length != 0) i = (i + 1) & mask;
  slots_[i] = slot{hash, static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(ids_.size()),
                   static_cast<std::uint16_t>(word.size()), static_cast<std::uint16_t>(ids.size())};
  keys_.append(word);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  ++used_;
}

void word_cache::clear() {
  std::fill(slots_.begin(), slots_.end(), slot{});
  keys_.clear();
  ids_.clear();
  used_ = 0;
}

}  // namespace qcoder::engine
