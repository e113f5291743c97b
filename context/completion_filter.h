// Deciding what kind of completion the cursor wants, and cleaning the model's output as it streams.
//
// plan_completion reads the tree around the cursor:
//  - none:        inside a string literal, in the middle of a word, or with code (not just closing
//                 brackets, quotes or punctuation) after the cursor on its line;
//  - multi_line:  on a blank line, or at the end of a line that opens a block ("{", Python's ":") — an
//                 empty body, the line after a signature;
//  - single_line: anywhere else (the rest of the current line, a comment's line).
//
// completion_filter applies the stop rules to the stream, chunk by chunk, and says "stop" as soon as the
// rest cannot be used:
//  - single line: the first newline ends it;
//  - a line that equals the next non-blank line of the suffix: the suffix already continues from there;
//  - a line indented less than the cursor's scope (multi-line): the completion has left the block;
//  - a closing bracket with no opener in the completion: it closes something of the file's;
//  - a line that repeats the previous one, or a pair of lines that repeats (the repeat is dropped);
//  - max_lines lines.
// On the last line, text that the suffix of the cursor's line already holds is dropped ("foo(a)" before
// ")" becomes "foo(a"). Indentation of new lines is converted to the file's style (tabs or N spaces).
// Partial lines are held back until their newline, since a rule can still drop them.
//
// Thread-safety: a plan is plain data; a filter belongs to the one thread that feeds it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "context/document.h"

namespace qcoder::context {

enum class completion_mode { none, single_line, multi_line };
std::string_view to_string(completion_mode mode);

struct indent_style {
  bool tabs = false;
  std::size_t width = 4;  // columns per level (and per tab)
};
// The style most of the file's indented lines use; when nothing is indented, 4 spaces or (Go) tabs.
indent_style detect_indent_style(std::string_view text, bool tabs_by_default = false);

struct completion_plan {
  completion_mode mode = completion_mode::single_line;
  std::string reason;                   // why this mode, for logs and tests
  std::string line_prefix;              // the cursor's line up to the cursor
  std::string line_suffix;              // the rest of the cursor's line
  std::vector<std::string> next_lines;  // the next non-blank lines after the cursor's line (up to 3)
  std::string previous_line;            // the last non-blank line before the cursor's line
  std::size_t scope_indent = 0;         // columns; a new line indented less ends a multi-line completion
  indent_style style;
  bool python = false;                  // '#' comments and ':' blocks instead of "//" and braces
  std::size_t max_lines = 1;
};

completion_plan plan_completion(const source_view& src, std::size_t cursor, std::size_t max_lines = 48);

enum class stop_reason { none, end_of_stream, newline, suffix_continues, dedent, unmatched_bracket, repetition, max_lines };
std::string_view to_string(stop_reason reason);

class completion_filter {
 public:
  explicit completion_filter(completion_plan plan);

  // Takes the next chunk of model output; true when generation should stop now (later chunks are ignored).
  bool feed(std::string_view chunk);
  // The stream ended (or was stopped): settles the held-back line and returns the cleaned completion.
  const std::string& finish();

  // The cleaned text of the lines settled so far.
  const std::string& text() const { return text_; }
  bool stopped() const { return reason_ != stop_reason::none; }
  stop_reason reason() const { return reason_; }

 private:
  // Settles one complete line (without its newline); `last` when the stream ended after it.
  void settle(std::string line, bool last);
  // Rules that can stop on a partial line; true when they stopped.
  bool check_partial();
  void stop(stop_reason why) { if (reason_ == stop_reason::none) reason_ = why; }
  std::size_t columns(std::string_view indent) const;
  std::string restyle(std::string_view line) const;
  // Scans `line` for brackets; returns the offset of an unmatched closer, or npos (updates depth_ when not).
  std::size_t scan_brackets(std::string_view line, bool commit);

  completion_plan plan_;
  std::string text_;
  std::string pending_;          // the current, incomplete line
  std::size_t lines_ = 0;        // lines settled (the first continues the cursor's line)
  std::size_t blank_run_ = 0;    // blank lines held until a non-blank one settles
  std::vector<std::string> history_;  // settled non-blank lines, trimmed
  std::size_t last_line_start_ = 0;   // where the last settled line (with its newlines) starts in text_
  std::vector<char> depth_;      // open brackets of the completion
  stop_reason reason_ = stop_reason::none;
  bool finished_ = false;
};

}  // namespace qcoder::context
