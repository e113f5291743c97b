// One open source file: its bytes in a gap buffer, an index of line starts, and (for the languages we
// parse) a tree-sitter tree kept up to date incrementally.
//
// Text is kept byte for byte, invalid UTF-8 included. Lines end at "\n", "\r\n" or a lone "\r" (the three
// terminators LSP names), so positions agree with what editors send. A position is (line, column), both
// 0-based; the column counts UTF-8 bytes or UTF-16 code units (LSP's default). An astral character is two
// UTF-16 units; a byte that is not part of well-formed UTF-8 counts as one unit in both encodings (it
// decodes to U+FFFD, which is one unit). A position past the end of its line, past the last line, or
// inside a character is an error (errc::invalid_argument), never a crash.
//
// Edits cost O(distance the gap moves + number of lines): the line index is a sorted vector that an edit
// shifts. Each edit is passed to the tree at once (ts_tree_edit); the reparse happens on the next call of
// tree() or view(), with the edited old tree, so a burst of edits (one LSP didChange) costs one incremental
// parse. tree-sitter counts rows by "\n" only, so in a file with lone "\r" terminators the nodes' row/column
// points can be off; byte offsets (all we use) are always right.
//
// Thread-safety: none. A document belongs to one thread (the LSP server's per-document worker); to hand
// work to another thread, copy view().text and ts_tree_copy(view().tree).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "context/languages.h"
#include "kernels/common/result.h"

struct TSParser;
struct TSTree;

namespace qcoder::context {

enum class column_unit { utf8, utf16 };

struct text_position {
  std::size_t line = 0;    // 0-based
  std::size_t column = 0;  // 0-based, in the column_unit of the call
  friend bool operator==(const text_position&, const text_position&) = default;
};

// A contiguous look at a document, valid until its next edit.
struct source_view {
  std::string_view path;           // as given to the document (a label: may be relative)
  std::optional<language> lang;    // nullopt: plain text
  std::string_view text;
  const TSTree* tree = nullptr;    // null for plain text (or when parsing was abandoned)
};

class document {
 public:
  // Files larger than this are kept as plain text: no tree (parsing them would stall the worker).
  static constexpr std::size_t max_parse_bytes = 16u << 20;

  // `lang` nullopt (unknown language) keeps the file as plain text.
  document(std::string path, std::optional<language> lang, std::string text);
  ~document();
  document(document&&) noexcept;
  document& operator=(document&&) noexcept;
  document(const document&) = delete;
  document& operator=(const document&) = delete;

  // Language chosen from the path's extension.
  static document from_path(std::string path, std::string text);

  const std::string& path() const { return path_; }
  std::optional<language> lang() const { return lang_; }
  std::size_t size() const { return buffer_.size() - gap_size(); }
  std::size_t line_count() const { return line_starts_.size(); }

  // Byte offset of a position. Errors: line >= line_count(), column past the line's end (the terminator is
  // not part of the line), or a column inside a character.
  result<std::size_t> offset_at(text_position pos, column_unit unit) const;
  // Position of a byte offset (<= size()). An offset inside a character or inside "\r\n" is an error.
  result<text_position> position_at(std::size_t offset, column_unit unit) const;

  // Replaces the bytes [begin, end) with `text`. Error when the range is not within the document.
  result<void> replace(std::size_t begin, std::size_t end, std::string_view text);
  // The LSP form: the range given as positions.
  result<void> replace(text_position begin, text_position end, column_unit unit, std::string_view text);
  // Replaces everything (a full-sync didChange or a reload from disk); the next parse starts afresh.
  void set_text(std::string text);

  // Bytes [begin, end) as a string (end clamped to size()).
  std::string slice(std::size_t begin, std::size_t end) const;
  std::string text() const { return slice(0, size()); }
  // Line `line` without its terminator; empty past the last line.
  std::string line_text(std::size_t line) const;
  std::size_t line_start(std::size_t line) const { return line_starts_[line]; }
  // The line holding byte `offset` (offset <= size()).
  std::size_t line_of(std::size_t offset) const;

  // Brings the tree up to date (one incremental parse when edits are pending) and closes the gap so the
  // text is contiguous. The view is valid until the next edit.
  source_view view();
  // The current tree (reparsed if needed); null for plain text.
  const TSTree* tree();
  // How many parses ran (a test's way to see that a burst of edits costs one reparse).
  std::uint64_t parse_count() const { return parse_count_; }

 private:
  std::size_t gap_size() const { return gap_end_ - gap_begin_; }
  char byte_at(std::size_t offset) const {
    return offset < gap_begin_ ? buffer_[offset] : buffer_[offset + gap_size()];
  }
  void move_gap(std::size_t offset);
  void reserve_gap(std::size_t bytes);
  bool is_line_start(std::size_t offset) const;
  void rebuild_line_index();
  void reparse();
  // Contiguous bytes from `offset` up to the gap or the end (tree-sitter's read callback).
  std::string_view chunk_at(std::size_t offset) const;

  std::string path_;
  std::optional<language> lang_;
  std::vector<char> buffer_;  // [0, gap_begin_) text, [gap_begin_, gap_end_) gap, [gap_end_, size) text
  std::size_t gap_begin_ = 0;
  std::size_t gap_end_ = 0;
  std::vector<std::size_t> line_starts_{0};  // byte offset of each line's first byte; always starts with 0
  TSParser* parser_ = nullptr;
  TSTree* tree_ = nullptr;
  bool tree_stale_ = false;
  std::uint64_t parse_count_ = 0;
};

// UTF-8 decoding shared by the context code. Decodes one character at `text[i]`: its code point and byte
// length, or U+FFFD and length 1 for a byte that does not start a well-formed sequence (overlong forms,
// surrogates and values past U+10FFFF are not well formed).
struct decoded_char {
  char32_t code_point;
  std::size_t length;
  bool valid;
};
decoded_char decode_utf8(std::string_view text, std::size_t i);

}  // namespace qcoder::context
