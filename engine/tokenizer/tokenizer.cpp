// Encoding (added tokens -> NFC -> pre-tokenizer -> cached BPE), decoding and token lookup.
// Loading and validating tokenizer.json lives in tokenizer_loader.cpp.
#include "engine/tokenizer/tokenizer.h"

#include "engine/tokenizer/pre_tokenizer.h"

namespace qcoder::engine {
namespace {

bool is_space_at(std::string_view text, std::size_t pos, std::uint32_t* length) {
  const unicode::classified_char c = unicode::classify_at(text, pos);
  *length = c.length;
  return (c.classes & unicode::class_space) != 0;
}

// Start of the white space that ends at `end` (not before `floor`).
std::size_t space_before(std::string_view text, std::size_t floor, std::size_t end) {
  std::size_t begin = end;
  while (begin > floor) {
    std::size_t prev = begin - 1;  // step back over one UTF-8 character
    while (prev > floor && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
    std::uint32_t length = 0;
    if (!is_space_at(text, prev, &length) || prev + length != begin) break;
    begin = prev;
  }
  return begin;
}

std::size_t space_after(std::string_view text, std::size_t begin) {
  std::uint32_t length = 0;
  while (begin < text.size() && is_space_at(text, begin, &length)) begin += length;
  return begin;
}

bool is_word_char_at(std::string_view text, std::size_t pos) {
  const unicode::classified_char c = unicode::classify_at(text, pos);
  return c.code_point == '_' || (c.classes & (unicode::class_letter | unicode::class_number)) != 0;
}

bool is_word_char_before(std::string_view text, std::size_t pos) {
  if (pos == 0) return false;
  std::size_t prev = pos - 1;
  while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
  return is_word_char_at(text, prev);
}

}  // namespace

// --- lookup ------------------------------------------------------------------------------------

const added_token* tokenizer::added_of(token_id id) const {
  if (id < added_base_ || static_cast<std::size_t>(id - added_base_) >= added_index_.size()) return nullptr;
  const std::int32_t index = added_index_[static_cast<std::size_t>(id - added_base_)];
  return index < 0 ? nullptr : &added_[static_cast<std::size_t>(index)];
}

std::string_view tokenizer::token_bytes(token_id id) const {
  if (const added_token* added = added_of(id)) return added->content;
  return bpe_.bytes_of(id);
}

bool tokenizer::is_added(token_id id) const { return added_of(id) != nullptr; }

bool tokenizer::is_special(token_id id) const {
  const added_token* added = added_of(id);
  return added != nullptr && added->special;
}

std::optional<token_id> tokenizer::find_token(std::string_view text) const {
  for (const added_token& t : added_) {
    if (t.content == text) return t.id;
  }
  return bpe_.find(text);
}

result<token_id> tokenizer::require_token(std::string_view text) const {
  if (std::optional<token_id> id = find_token(text)) return *id;
  return fail(errc::not_found, "the tokenizer has no token '{}'", text);
}

std::optional<tokenizer::added_match> tokenizer::next_added(std::string_view text, std::size_t from) const {
  for (std::size_t pos = from; pos < text.size(); ++pos) {
    if (!added_first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    for (const added_token& t : added_) {  // longest first: the longest match at the leftmost position
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      const std::size_t end = pos + t.content.size();
      if (t.single_word && (is_word_char_before(text, pos) || (end < text.size() && is_word_char_at(text, end)))) {
        continue;
      }
      added_match m{pos, end, t.id};
      if (t.lstrip) m.begin = space_before(text, from, pos);
      if (t.rstrip) m.end = space_after(text, end);
      return m;
    }
  }
  return std::nullopt;
}

// --- encoding ----------------------------------------------------------------------------------

std::vector<token_id> tokenizer::encode(std::string_view text, bool allow_special) const {
  encoder enc(*this, 1 << 10);
  return enc.encode(text, allow_special);
}

encoder::encoder(const tokenizer& tok, std::size_t cache_slots) : tok_(&tok), cache_(cache_slots) {}

std::vector<token_id> encoder::encode(std::string_view text, bool allow_special) {
  std::vector<token_id> ids;
  ids.reserve(text.size() / 3 + 4);
  encode(text, allow_special, ids);
  return ids;
}

void encoder::encode(std::string_view text, bool allow_special, std::vector<token_id>& out) {
  if (!allow_special || tok_->added_.empty()) {
    encode_segment(text, out);
    return;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::optional<tokenizer::added_match> m = tok_->next_added(text, pos);
    if (!m) {
      encode_segment(text.substr(pos), out);
      break;
    }
    encode_segment(text.substr(pos, m->begin - pos), out);
    out.push_back(m->id);
    pos = m->end;
  }
}

void encoder::encode_segment(std::string_view text, std::vector<token_id>& out) {
  if (text.empty()) return;
  const std::string_view normalized = tok_->normalize_nfc_ ? nfc_.normalize(text) : text;
  for_each_qwen_piece(normalized, [&](std::string_view word) { encode_word(word, out); });
}

void encoder::encode_word(std::string_view word, std::vector<token_id>& out) {
  if (word.size() == 1) {  // digits, punctuation: a third of the pieces of source code
    const token_id id = tok_->bpe_.byte_token(static_cast<std::uint8_t>(word[0]));
    if (id >= 0) out.push_back(id);
    return;
  }
  if (word.size() > word_cache::max_word_bytes) {
    tok_->bpe_.encode_word(word, scratch_, out);
    return;
  }
  const std::uint64_t hash = word_cache::hash(word);
  if (cache_.find(word, hash, out)) {
    ++hits_;
    return;
  }
  ++misses_;
  const std::size_t before = out.size();
  tok_->bpe_.encode_word(word, scratch_, out);
  cache_.insert(word, hash, std::span<const token_id>(out).subspan(before));
}

// --- decoding ----------------------------------------------------------------------------------

result<std::string> tokenizer::decode_bytes(std::span<const token_id> ids, bool skip_added) const {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (const token_id id : ids) {
    const std::string_view piece = token_bytes(id);
    if (piece.empty()) {
      return fail(errc::invalid_argument, "token id {} is not in the vocabulary (known ids are below {})", id,
                  id_limit_);
    }
    if (skip_added && is_added(id)) continue;
    bytes.append(piece);
  }
  return bytes;
}

result<std::string> tokenizer::decode(std::span<const token_id> ids, bool skip_added) const {
  QCODER_TRY(std::string bytes, decode_bytes(ids, skip_added));
  if (unicode::is_valid_utf8(bytes)) return bytes;
  std::string text;
  text.reserve(bytes.size() + 8);
  unicode::append_replacing_invalid(bytes, text);
  return text;
}

}  // namespace qcoder::engine
