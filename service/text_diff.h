// The smallest set of replacements that turns one text into another, for edits sent to an editor: an
// editor applies a few small TextEdits without moving the user's cursor, folds or marks the way it would
// for a whole-range replacement, and an undo shows what really changed.
//
// Lines are compared first (a longest-common-subsequence over line hashes, bounded in cost), then each
// run of changed lines is narrowed to the bytes that differ, never splitting a UTF-8 character.
// Thread-safety: pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::service {

// Replace old[begin, end) with `text`. Offsets are bytes of the old text.
struct text_replacement {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::string text;
  bool operator==(const text_replacement&) const = default;
};

// Replacements in ascending, non-overlapping order; applying them (from last to first) to `before`
// gives `after`. Empty when the texts are equal. Inputs larger than `max_cells` line pairs fall back to
// one replacement of the differing middle (common first and last lines kept).
std::vector<text_replacement> diff_texts(std::string_view before, std::string_view after,
                                         std::size_t max_cells = 4u << 20);

// A run of lines that differ: old lines [old_begin, old_end) became new lines [new_begin, new_end).
struct line_run {
  std::size_t old_begin = 0;
  std::size_t old_end = 0;
  std::size_t new_begin = 0;
  std::size_t new_end = 0;
  bool operator==(const line_run&) const = default;
};

// The runs of differing lines, ascending (the line diff under diff_texts).
std::vector<line_run> diff_line_runs(std::string_view before, std::string_view after, std::size_t max_cells = 4u << 20);

// A unified diff (as `diff -u` / `git diff` print it, `context_lines` of context, hunks merged when their
// contexts touch), with "--- old_path" / "+++ new_path" headers; empty when the texts are equal.
std::string unified_diff(std::string_view old_path, std::string_view new_path, std::string_view before,
                         std::string_view after, std::size_t context_lines = 3);

// `before` with `edits` applied (ascending, non-overlapping, as diff_texts returns them).
std::string apply_replacements(std::string_view before, const std::vector<text_replacement>& edits);

}  // namespace qcoder::service
