// The Unicode pieces the tokenizer needs: UTF-8 decoding that never rejects input, the character classes
// of Qwen's pre-tokenizer pattern (\p{L}, \p{N}, \s) and NFC normalization.
//
// Categories and normalization come from utf8proc (a maintained library), not from hand-made tables; only
// ASCII is answered from a small table for speed. Text that is not valid UTF-8 is never an error here:
// each byte of an invalid sequence is treated as one "other" character (neither letter, number nor space)
// and is left as it is by normalization, so the byte-level BPE can still encode it exactly.
// Thread-safety: the free functions are pure; an nfc_normalizer holds scratch space and is used by one
// thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::engine::unicode {

// Character classes of the pre-tokenizer pattern, as bits.
inline constexpr std::uint8_t class_letter = 1;   // \p{L}: Lu Ll Lt Lm Lo
inline constexpr std::uint8_t class_number = 2;   // \p{N}: Nd Nl No
inline constexpr std::uint8_t class_space = 4;    // \s: Unicode White_Space
inline constexpr std::uint8_t class_newline = 8;  // [\r\n] (also has class_space)

// One decoded character. `valid` is false for a byte that does not start a well-formed UTF-8 sequence;
// then `length` is 1 and `code_point` is the byte value.
struct decoded_char {
  char32_t code_point = 0;
  std::uint32_t length = 1;
  bool valid = true;
};

// Decodes the character at text[pos] (pos < text.size()). Overlong forms, surrogates (ED A0..BF xx) and
// values past U+10FFFF are invalid, as are truncated sequences.
decoded_char decode_utf8(std::string_view text, std::size_t pos);

// Length of the longest prefix of `text` that is well-formed UTF-8.
std::size_t valid_utf8_prefix(std::string_view text);
inline bool is_valid_utf8(std::string_view text) { return valid_utf8_prefix(text) == text.size(); }

// The class bits of a code point (0 for everything else: punctuation, symbols, marks, controls).
std::uint8_t classify(char32_t code_point);

// The class bits of the character at text[pos], and its length. Invalid bytes are class 0, length 1.
struct classified_char {
  std::uint8_t classes = 0;
  std::uint32_t length = 1;
  char32_t code_point = 0;  // the byte value for an invalid byte
};
classified_char classify_non_ascii_at(std::string_view text, std::size_t pos);

namespace detail {
constexpr std::array<std::uint8_t, 128> make_ascii_classes() {
  std::array<std::uint8_t, 128> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = class_letter;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = class_letter;
  for (int c = '0'; c <= '9'; ++c) t[c] = class_number;
  for (int c = 9; c <= 13; ++c) t[c] = class_space;  // \t \n \v \f \r
  t[' '] = class_space;
  t['\n'] = class_space | class_newline;
  t['\r'] = class_space | class_newline;
  return t;
}
inline constexpr std::array<std::uint8_t, 128> ascii_classes = make_ascii_classes();
}  // namespace detail

// Inline for the ASCII fast path: the pre-tokenizer calls this once per character.
inline classified_char classify_at(std::string_view text, std::size_t pos) {
  const auto b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return {detail::ascii_classes[b], 1, b};
  return classify_non_ascii_at(text, pos);
}

// Appends the UTF-8 encoding of a code point (must be a valid scalar value).
void append_utf8(char32_t code_point, std::string& out);

inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD

// Appends `bytes` to `out` as valid UTF-8: each maximal ill-formed subpart becomes one U+FFFD (the Unicode
// "best practice", as Python's errors="replace" and WHATWG do). With hold_incomplete, a sequence cut short
// by the end of `bytes` (a valid prefix of a character) is not appended. Returns how many bytes of `bytes`
// were consumed (all of them unless something was held back).
std::size_t append_replacing_invalid(std::string_view bytes, std::string& out, bool hold_incomplete = false);

// NFC normalization that keeps scratch space between calls (no allocation once warm).
class nfc_normalizer {
 public:
  // The NFC form of `text`: `text` itself when it is already known to be NFC (all of ASCII, for one),
  // else a view of internal storage valid until the next call. Invalid UTF-8 bytes pass through unchanged
  // and split the text into separately normalized runs.
  std::string_view normalize(std::string_view text);

 private:
  void normalize_run(std::string_view run);  // appends NFC(run) to out_; run is valid UTF-8

  std::string out_;
  std::vector<std::int32_t> code_points_;
};

}  // namespace qcoder::engine::unicode
