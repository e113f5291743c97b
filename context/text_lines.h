// Small helpers over lines of source text held in a string_view: where a line starts and ends, white
// space at either end, indentation. Lines end at '\n' ("\r\n" leaves a '\r' that the trims remove).
// Header-only, pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace qcoder::context {

inline bool is_blank_char(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

inline std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_blank_char(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_blank_char(s.front())) s.remove_prefix(1);
  return s;
}

inline std::string_view trim(std::string_view s) { return trim_left(trim_right(s)); }

// The spaces and tabs a line starts with.
inline std::string_view leading_space(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return line.substr(0, n);
}

// `line` without up to indent.size() leading spaces/tabs (all of `indent` when the line starts with it).
inline std::string_view remove_indent(std::string_view line, std::string_view indent) {
  if (line.substr(0, indent.size()) == indent) return line.substr(indent.size());
  std::size_t n = 0;
  while (n < indent.size() && n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return line.substr(n);
}

// Offset of the first byte of the line holding `offset`.
inline std::size_t line_start_at(std::string_view text, std::size_t offset) {
  if (offset > text.size()) offset = text.size();
  const std::size_t nl = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  return nl == std::string_view::npos ? 0 : nl + 1;
}

// Offset of the '\n' ending the line holding `offset`, or text.size().
inline std::size_t line_end_at(std::string_view text, std::size_t offset) {
  const std::size_t nl = text.find('\n', offset);
  return nl == std::string_view::npos ? text.size() : nl;
}

inline bool is_blank(std::string_view s) { return trim(s).empty(); }

inline bool is_identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

}  // namespace qcoder::context
