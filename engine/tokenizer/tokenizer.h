// Qwen's tokenizer, loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json): NFC normalizer,
// the Split pre-tokenizer with Qwen's pattern, byte-level BPE, added tokens, and the byte-level decoder.
//
// Two ways in, and the difference is a security boundary:
//  - encode_text(text): document content (source files, user text). No added token is recognised, so a
//    literal "<|fim_prefix|>" in a file is encoded as the ordinary text it is and can never forge a control
//    token. This is the default of encode(text).
//  - encode_prompt(text): our own prompt templates, where the control tokens are meant. Every added token
//    of tokenizer.json is matched, as Hugging Face does before normalization: longest match at the leftmost
//    position, honouring lstrip / rstrip / single_word.
// Qwen's file marks only some added tokens "special" (<|endoftext|>, <|im_start|>...); <|fim_prefix|>,
// <|file_sep|>, <think>... are added but special:false, yet they steer the model just the same. So the rule
// is by *added* token, not by the special flag: none of them is matched in text, all are in prompts.
// is_special() reports the file's flag; is_added() covers all of them.
//
// Input need not be valid UTF-8: a byte that is not part of a well-formed sequence is encoded as its own
// byte-level token (it counts as punctuation for the pre-tokenizer), and decode_bytes() gives the exact
// input bytes back. decode() returns valid UTF-8, replacing such bytes with U+FFFD (Python's
// errors="replace", which tokenizer_config.json asks for).
//
// Special tokens are looked up by their text (find_token / require_token), never by a hard-coded id: the
// tiny test checkpoints carry the same tokens at other ids.
//
// Thread-safety: a loaded tokenizer is immutable; its const members may be called from any thread. An
// encoder (word cache and scratch space) belongs to one thread at a time; it refers to its tokenizer, which
// must outlive it and stay at the same address.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/unicode.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

struct added_token {
  std::string content;  // matched literally (raw UTF-8)
  token_id id = -1;
  bool special = false;  // tokenizer.json's flag, informational (see the file comment)
  bool lstrip = false;   // swallows white space before it
  bool rstrip = false;   // swallows white space after it
  bool single_word = false;  // only matches when not inside a word
};

class tokenizer {
 public:
  // Reads tokenizer.json and, when it exists beside it, tokenizer_config.json.
  static result<tokenizer> load(const std::filesystem::path& tokenizer_json);
  // `dir`/tokenizer.json (+ tokenizer_config.json): a Hugging Face model folder.
  static result<tokenizer> load_model_dir(const std::filesystem::path& dir);
  // From the file contents; `origin` names the source in error messages. `config_json` may be empty.
  static result<tokenizer> parse(std::string_view tokenizer_json, std::string_view config_json,
                                 std::string_view origin = "tokenizer.json");

  // Convenience one-shot encoding (builds a fresh encoder each call: keep an encoder for repeated work).
  std::vector<token_id> encode(std::string_view text, bool allow_special = false) const;
  std::vector<token_id> encode_text(std::string_view text) const { return encode(text, false); }
  std::vector<token_id> encode_prompt(std::string_view text) const { return encode(text, true); }

  // The text of `ids` as valid UTF-8 (invalid byte sequences become U+FFFD). Added tokens decode to their
  // content; with skip_added they are left out. Error: an id that is not in the vocabulary.
  result<std::string> decode(std::span<const token_id> ids, bool skip_added = false) const;
  // The raw bytes of `ids`, exactly as encoded (may be invalid UTF-8 when the input was).
  result<std::string> decode_bytes(std::span<const token_id> ids, bool skip_added = false) const;

  // The id of a token given by its text: an added token's content, or a vocabulary entry's raw text.
  std::optional<token_id> find_token(std::string_view text) const;
  // Same, as an error naming the token when it is missing (for prompt builders).
  result<token_id> require_token(std::string_view text) const;

  // The raw bytes of one token (an added token's content); empty for an unknown id.
  std::string_view token_bytes(token_id id) const;
  bool is_known(token_id id) const { return !token_bytes(id).empty(); }
  bool is_added(token_id id) const;    // any added token: a control token for our prompts
  bool is_special(token_id id) const;  // an added token with "special": true in the file
  const std::vector<added_token>& added_tokens() const { return added_; }

  // One past the largest id (the model's embedding table may be larger).
  std::size_t id_limit() const { return id_limit_; }
  std::size_t vocab_size() const { return bpe_.id_limit(); }  // BPE vocabulary only
  std::size_t merge_count() const { return bpe_.merge_count(); }

  // From tokenizer_config.json, when present and naming a known token.
  std::optional<token_id> eos_token() const { return eos_; }
  std::optional<token_id> pad_token() const { return pad_; }
  std::optional<token_id> bos_token() const { return bos_; }
  std::uint64_t model_max_length() const { return model_max_length_; }  // 0 when not given

  const bpe_model& bpe() const { return bpe_; }

 private:
  friend class encoder;
  friend class tokenizer_loader;

  // Position and length of the next added token in text[from..), with lstrip/rstrip white space included.
  struct added_match {
    std::size_t begin = 0;
    std::size_t end = 0;
    token_id id = -1;
  };
  std::optional<added_match> next_added(std::string_view text, std::size_t from) const;
  const added_token* added_of(token_id id) const;

  bpe_model bpe_;
  std::vector<added_token> added_;          // longest content first
  std::vector<std::int32_t> added_index_;  // by id - added_base_: index into added_, -1 when not added
  token_id added_base_ = 0;
  bool added_first_byte_[256] = {};
  std::size_t id_limit_ = 0;
  bool normalize_nfc_ = true;
  std::optional<token_id> eos_;
  std::optional<token_id> pad_;
  std::optional<token_id> bos_;
  std::uint64_t model_max_length_ = 0;
};

// Encodes with a word cache and scratch space that persist between calls, so the hot loop does not
// allocate once warm. One thread at a time.
class encoder {
 public:
  explicit encoder(const tokenizer& tok, std::size_t cache_slots = 1 << 15);

  // Appends the ids of `text` to `out` (see tokenizer: allow_special=false for documents).
  void encode(std::string_view text, bool allow_special, std::vector<token_id>& out);
  std::vector<token_id> encode(std::string_view text, bool allow_special = false);

  const tokenizer& owner() const { return *tok_; }
  std::uint64_t cache_hits() const { return hits_; }
  std::uint64_t cache_misses() const { return misses_; }

 private:
  void encode_segment(std::string_view text, std::vector<token_id>& out);  // no added tokens inside
  void encode_word(std::string_view word, std::vector<token_id>& out);

  const tokenizer* tok_;
  word_cache cache_;
  bpe_scratch scratch_;
  unicode::nfc_normalizer nfc_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace qcoder::engine
