// Qwen's pre-tokenizer: the `Split` step of tokenizer.json with the pattern
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// with behavior "Isolated" and invert false, written as a hand-made scanner instead of a regex engine. Every
// character is matched by some alternative, so the pieces cover the text without gaps; at each position the
// first alternative that matches wins (leftmost-first, as Oniguruma / fancy-regex do), each one greedy with
// the backtracking the pattern implies (`\s+(?!\S)` leaves the last space of a run for the next word).
// Classes: \p{L} and \p{N} by general category, \s is Unicode White_Space (see unicode.h). Bytes that are
// not valid UTF-8 count as one "other" character each, like punctuation.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace qcoder::engine {

// The exact pattern string this scanner implements (as it appears in tokenizer.json, unescaped).
inline constexpr std::string_view qwen_split_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// End (byte offset) of the piece that starts at `begin` (< text.size()); always > begin.
std::size_t qwen_piece_end(std::string_view text, std::size_t begin);

// Calls on_piece(std::string_view) for each piece of `text`, in order.
template <typename F>
void for_each_qwen_piece(std::string_view text, F&& on_piece) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t end = qwen_piece_end(text, pos);
    on_piece(text.substr(pos, end - pos));
    pos = end;
  }
}

// All pieces of `text` (views into it); for tests and tools.
std::vector<std::string_view> split_qwen(std::string_view text);

}  // namespace qcoder::engine
