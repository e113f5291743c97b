// Completion modes and the streaming stop rules.
#include "context/completion_filter.h"

#include <algorithm>
#include <array>
#include <map>

#include "context/syntax.h"
#include "context/text_lines.h"

namespace qcoder::context {
namespace {

using sv = std::string_view;

bool is_closing_or_punctuation(char c) {
  return sv(")]}'\"`;,: \t\r").find(c) != sv::npos;
}

// Whether `s` ends with `tail`.
bool ends_with(sv s, sv tail) { return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail; }

}  // namespace

std::string_view to_string(completion_mode mode) {
  switch (mode) {
    case completion_mode::none: return "none";
    case completion_mode::single_line: return "single_line";
    case completion_mode::multi_line: return "multi_line";
  }
  return "?";
}

std::string_view to_string(stop_reason reason) {
  switch (reason) {
    case stop_reason::none: return "none";
    case stop_reason::end_of_stream: return "end_of_stream";
    case stop_reason::newline: return "newline";
    case stop_reason::suffix_continues: return "suffix_continues";
    case stop_reason::dedent: return "dedent";
    case stop_reason::unmatched_bracket: return "unmatched_bracket";
    case stop_reason::repetition: return "repetition";
    case stop_reason::max_lines: return "max_lines";
  }
  return "?";
}

indent_style detect_indent_style(std::string_view text, bool tabs_by_default) {
  std::size_t tab_lines = 0, space_lines = 0, previous = 0, scanned = 0;
  std::map<std::size_t, std::size_t> steps;
  for (std::size_t pos = 0; pos < text.size() && scanned < 2000; ++scanned) {
    const std::size_t eol = line_end_at(text, pos);
    const sv line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (is_blank(line)) continue;
    const sv indent = leading_space(line);
    if (!indent.empty() && indent[0] == '\t') {
      ++tab_lines;
      continue;
    }
    if (!indent.empty()) ++space_lines;
    if (indent.size() > previous) ++steps[indent.size() - previous];
    previous = indent.size();
  }
  indent_style style;
  style.tabs = tab_lines > space_lines || (tab_lines == 0 && space_lines == 0 && tabs_by_default);
  std::size_t best = 0;
  for (const std::size_t width : {2u, 4u, 8u, 3u}) {
    if (steps.count(width) && steps[width] > best) {
      best = steps[width];
      style.width = width;
    }
  }
  return style;
}

completion_plan plan_completion(const source_view& src, std::size_t cursor, std::size_t max_lines) {
  const sv text = src.text;
  cursor = std::min(cursor, text.size());
  completion_plan plan;
  plan.python = src.lang == language::python;
  const std::size_t line_start = line_start_at(text, cursor);
  const std::size_t line_end = line_end_at(text, cursor);
  plan.line_prefix = std::string(text.substr(line_start, cursor - line_start));
  plan.line_suffix = std::string(trim_right(text.substr(cursor, line_end - cursor)));
  for (std::size_t pos = line_end + 1; pos < text.size() && plan.next_lines.size() < 3;) {
    const std::size_t eol = line_end_at(text, pos);
    const sv line = trim_right(text.substr(pos, eol - pos));
    if (!is_blank(line)) plan.next_lines.emplace_back(line);
    pos = eol + 1;
  }
  for (std::size_t pos = line_start; pos > 0;) {
    const std::size_t start = line_start_at(text, pos - 1);
    const sv line = trim_right(text.substr(start, pos - 1 - start));
    if (!is_blank(line)) {
      plan.previous_line = std::string(line);
      break;
    }
    pos = start;
  }
  const std::size_t around = cursor > 100000 ? cursor - 100000 : 0;
  plan.style = detect_indent_style(text.substr(line_start_at(text, around)), src.lang == language::go);
  if (!plan.line_prefix.empty() && plan.line_prefix[0] == '\t') plan.style.tabs = true;

  const cursor_syntax syntax = analyze_cursor(src, cursor, 4096);
  const sv suffix = trim(plan.line_suffix);
  const sv before = trim_right(plan.line_prefix);
  if (syntax.in_string) {
    plan.mode = completion_mode::none;
    plan.reason = "inside a string";
  } else if (cursor < line_end && is_identifier_char(text[cursor])) {
    plan.mode = completion_mode::none;
    plan.reason = "in front of a word";
  } else if (!std::all_of(suffix.begin(), suffix.end(), is_closing_or_punctuation)) {
    plan.mode = completion_mode::none;
    plan.reason = "code follows the cursor on its line";
  } else if (syntax.in_comment) {
    plan.mode = completion_mode::single_line;
    plan.reason = "in a comment";
  } else if (before.empty()) {
    plan.mode = completion_mode::multi_line;
    plan.reason = "blank line";
    // Columns, not bytes: a tab counts as a level.
    std::size_t columns = 0;
    for (char c : plan.line_prefix) columns = c == '\t' ? (columns / plan.style.width + 1) * plan.style.width : columns + 1;
    plan.scope_indent = columns;
  } else if ((before.back() == '{' && !before.ends_with("${")) || (plan.python && before.back() == ':') ||
             ((before.back() == '(' || before.back() == '[') && suffix.empty())) {
    plan.mode = completion_mode::multi_line;
    plan.reason = "opens a block";
    std::size_t columns = 0;
    for (char c : leading_space(plan.line_prefix)) {
      columns = c == '\t' ? (columns / plan.style.width + 1) * plan.style.width : columns + 1;
    }
    plan.scope_indent = columns + 1;  // the block's lines are indented deeper than its opener
  } else {
    plan.mode = completion_mode::single_line;
    plan.reason = "rest of the line";
  }
  plan.max_lines = plan.mode == completion_mode::multi_line ? max_lines : 1;
  return plan;
}

completion_filter::completion_filter(completion_plan plan) : plan_(std::move(plan)) {}

std::size_t completion_filter::columns(std::string_view indent) const {
  std::size_t col = 0;
  for (char c : indent) col = c == '\t' ? (col / plan_.style.width + 1) * plan_.style.width : col + 1;
  return col;
}

std::string completion_filter::restyle(std::string_view line) const {
  const sv indent = leading_space(line);
  const std::size_t cols = columns(indent);
  std::string out = plan_.style.tabs ? std::string(cols / plan_.style.width, '\t') + std::string(cols % plan_.style.width, ' ')
                                     : std::string(cols, ' ');
  out.append(line.substr(indent.size()));
  return out;
}

std::size_t completion_filter::scan_brackets(std::string_view line, bool commit) {
  std::vector<char> depth = depth_;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote != 0) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      quote = c;
    } else if ((plan_.python && c == '#') || (!plan_.python && line.substr(i, 2) == "//")) {
      break;
    } else if (c == '(' || c == '[' || c == '{') {
      depth.push_back(c);
    } else if (c == ')' || c == ']' || c == '}') {
      if (depth.empty()) return i;
      depth.pop_back();
    }
  }
  if (commit) depth_ = std::move(depth);
  return std::string_view::npos;
}

void completion_filter::settle(std::string line, bool last) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const bool first = lines_ == 0;
  const std::string trimmed(trim(line));

  if (!first && trimmed.empty()) {
    ++blank_run_;
    return;
  }
  if (!first && plan_.mode == completion_mode::multi_line && columns(leading_space(line)) < plan_.scope_indent) {
    stop(stop_reason::dedent);
    return;
  }
  const bool line_starts_fresh = !first || is_blank(plan_.line_prefix);
  // The suffix continues here: the same text at the same depth (a "}" closing an inner block is not the
  // "}" of the enclosing one that follows the cursor).
  const bool same_depth = first || columns(leading_space(line)) == (plan_.next_lines.empty() ? 0 : columns(leading_space(plan_.next_lines[0])));
  if (line_starts_fresh && same_depth && !trimmed.empty() && !plan_.next_lines.empty() &&
      trimmed == trim(plan_.next_lines[0])) {
    stop(stop_reason::suffix_continues);
    return;
  }
  const bool substantial = trimmed.size() >= 4;
  if (substantial) {
    const std::size_t n = history_.size();
    const bool repeats_previous = n >= 1 && trimmed == history_[n - 1];
    const bool repeats_pair = n >= 3 && trimmed == history_[n - 2] && history_[n - 1] == history_[n - 3];
    const bool repeats_file = first && is_blank(plan_.line_prefix) && trimmed == trim(plan_.previous_line);
    if (repeats_previous || repeats_pair || repeats_file) {
      if (repeats_pair && !repeats_previous) text_.resize(last_line_start_);  // the pair's first line repeated too
      stop(stop_reason::repetition);
      return;
    }
  }

  std::string kept = line;
  const std::size_t unmatched = scan_brackets(line, /*commit=*/true);
  if (unmatched != std::string_view::npos) kept = std::string(trim_right(sv(line).substr(0, unmatched)));
  const bool ends_here = last || unmatched != std::string_view::npos || plan_.mode == completion_mode::single_line;
  if (ends_here && unmatched == std::string_view::npos) {
    // The suffix of the cursor's line follows the last line: drop what it already holds.
    const sv tail = trim(plan_.line_suffix);
    sv body = trim_right(kept);
    for (std::size_t k = tail.size(); k > 0; --k) {
      if (ends_with(body, tail.substr(0, k))) {
        body.remove_suffix(k);
        break;
      }
    }
    kept = std::string(body);
  }

  if (first) {
    text_.append(kept);
  } else if (!(unmatched != std::string_view::npos && is_blank(kept))) {
    last_line_start_ = text_.size();
    text_.append(blank_run_ + 1, '\n');
    text_.append(restyle(kept));
  }
  blank_run_ = 0;
  if (!trimmed.empty()) history_.push_back(trimmed);
  ++lines_;
  if (unmatched != std::string_view::npos) {
    stop(stop_reason::unmatched_bracket);
  } else if (plan_.mode == completion_mode::single_line) {
    stop(last ? stop_reason::end_of_stream : stop_reason::newline);
  } else if (lines_ >= plan_.max_lines) {
    stop(stop_reason::max_lines);
  }
}

bool completion_filter::check_partial() {
  if (pending_.empty()) return false;
  const sv indent = leading_space(pending_);
  if (plan_.mode == completion_mode::multi_line && lines_ > 0 && indent.size() < pending_.size() &&
      columns(indent) < plan_.scope_indent) {
    stop(stop_reason::dedent);
    return true;
  }
  if (scan_brackets(pending_, /*commit=*/false) != std::string_view::npos) {
    std::string line = std::move(pending_);
    pending_.clear();
    settle(std::move(line), true);
    return true;
  }
  return false;
}

bool completion_filter::feed(std::string_view chunk) {
  if (stopped() || finished_) return true;
  for (char c : chunk) {
    if (c != '\n') {
      pending_.push_back(c);
      continue;
    }
    std::string line = std::move(pending_);
    pending_.clear();
    settle(std::move(line), false);
    if (stopped()) return true;
  }
  return check_partial();
}

const std::string& completion_filter::finish() {
  if (finished_) return text_;
  finished_ = true;
  if (!stopped()) {
    if (!pending_.empty() || lines_ == 0) settle(std::move(pending_), true);
    pending_.clear();
    stop(stop_reason::end_of_stream);
  }
  // Trailing blank lines and spaces add nothing at the cursor.
  while (!text_.empty() && is_blank_char(text_.back())) text_.pop_back();
  return text_;
}

}  // namespace qcoder::context
