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

// `before` with `edits` applied (ascending, non-overlapping, as diff_texts returns them).
std::string apply_replacements(std::string_view before, const std::vector<text_replacement>& edits);

}  // namespace qcoder::service
