// The Qwen split pattern as a scanner: one branch per alternative of the regex, tried in order.
#include "engine/tokenizer/pre_tokenizer.h"

#include "engine/tokenizer/unicode.h"

namespace qcoder::engine {
namespace {

using unicode::class_letter;
using unicode::class_newline;
using unicode::class_number;
using unicode::class_space;
using unicode::classified_char;
using unicode::classify_at;

constexpr std::uint8_t letter_number_space = class_letter | class_number | class_space;

// Simple case folding for the contraction letters: ASCII, plus LATIN SMALL LETTER LONG S which folds to 's'.
char32_t fold(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + ('a' - 'A');
  if (c == 0x17F) return 's';
  return c;
}

std::size_t letters_end(std::string_view text, std::size_t pos) {
  while (pos < text.size()) {
    const classified_char c = classify_at(text, pos);
    if (!(c.classes & class_letter)) break;
    pos += c.length;
  }
  return pos;
}

}  // namespace

std::size_t qwen_piece_end(std::string_view text, std::size_t begin) {
  const std::size_t n = text.size();
  const classified_char c0 = classify_at(text, begin);
  const std::size_t p1 = begin + c0.length;

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0.code_point == '\'' && p1 < n) {
    const classified_char c1 = classify_at(text, p1);
    const char32_t f1 = fold(c1.code_point);
    const std::size_t p2 = p1 + c1.length;
    if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd') return p2;
    if ((f1 == 'r' || f1 == 'v' || f1 == 'l') && p2 < n) {
      const classified_char c2 = classify_at(text, p2);
      const char32_t f2 = fold(c2.code_point);
      if (((f1 == 'r' || f1 == 'v') && f2 == 'e') || (f1 == 'l' && f2 == 'l')) return p2 + c2.length;
    }
  }

  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0.classes & class_letter) return letters_end(text, p1);
  if (!(c0.classes & (class_letter | class_number | class_newline)) && p1 < n) {
    const classified_char c1 = classify_at(text, p1);
    if (c1.classes & class_letter) return letters_end(text, p1 + c1.length);
  }

  // \p{N}
  if (c0.classes & class_number) return p1;

  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  std::size_t run = begin;
  if (c0.code_point == ' ' && p1 < n && !(classify_at(text, p1).classes & letter_number_space)) run = p1;
  if (run == p1 || !(c0.classes & letter_number_space)) {
    while (run < n) {
      const classified_char c = classify_at(text, run);
      if (c.classes & letter_number_space) break;
      run += c.length;
    }
    while (run < n && (text[run] == '\r' || text[run] == '\n')) ++run;
    return run;
  }

  // c0 is white space. Scan the whole run once and pick the alternative:
  //   \s*[\r\n]+  -> up to and including the last \r or \n of the run;
  //   \s+(?!\S)   -> the whole run at the end of the text, else all but its last character;
  //   \s+         -> a single space before a non-space.
  std::size_t end = begin;
  std::size_t last_start = begin;
  std::size_t after_newline = 0;
  while (end < n) {
    const classified_char c = classify_at(text, end);
    if (!(c.classes & class_space)) break;
    last_start = end;
    end += c.length;
    if (c.classes & class_newline) after_newline = end;
  }
  if (after_newline != 0) return after_newline;
  if (end == n) return end;
  if (last_start > begin) return last_start;
  return end;
}

std::vector<std::string_view> split_qwen(std::string_view text) {
  std::vector<std::string_view> pieces;
  for_each_qwen_piece(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace qcoder::engine
