// Line LCS, then byte narrowing of each changed run.
#include "service/text_diff.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>

namespace qcoder::service {
namespace {

// Lines with their terminators, so that joining them gives the text back.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// One replacement for old[begin, end) -> new_text, narrowed to the bytes that differ (on character
// boundaries); nothing when they are equal.
void add_narrowed(std::string_view old_text, std::size_t begin, std::size_t end, std::string_view new_text,
                  std::vector<text_replacement>& out) {
  std::string_view a = old_text.substr(begin, end - begin);
  std::string_view b = new_text;
  std::size_t head = 0;
  while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
  while (head > 0 && head < a.size() && is_continuation(static_cast<unsigned char>(a[head]))) --head;
  std::size_t tail = 0;
  while (tail < a.size() - head && tail < b.size() - head && a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) ++tail;
  while (tail > 0 && is_continuation(static_cast<unsigned char>(a[a.size() - tail]))) --tail;
  if (head + tail == a.size() && head + tail == b.size()) return;
  out.push_back({begin + head, end - tail, std::string(b.substr(head, b.size() - head - tail))});
}

}  // namespace

std::vector<line_run> diff_line_runs(std::string_view before, std::string_view after, std::size_t max_cells) {
  std::vector<line_run> out;
  if (before == after) return out;
  const std::vector<std::string_view> a = split_lines(before);
  const std::vector<std::string_view> b = split_lines(after);
  // Common first and last lines cost nothing to keep and shrink the table.
  std::size_t lead = 0;
  while (lead < a.size() && lead < b.size() && a[lead] == b[lead]) ++lead;
  std::size_t trail = 0;
  while (trail < a.size() - lead && trail < b.size() - lead && a[a.size() - 1 - trail] == b[b.size() - 1 - trail]) ++trail;
  const std::size_t n = a.size() - lead - trail;
  const std::size_t m = b.size() - lead - trail;
  if (n == 0 || m == 0 || (n + 1) * (m + 1) > max_cells) {
    out.push_back({lead, lead + n, lead, lead + m});
    return out;
  }
  // lcs[i][j]: the longest common subsequence of a[lead+i..] and b[lead+j..] (suffix form, so the walk
  // below goes forward).
  std::vector<std::uint32_t> lcs((n + 1) * (m + 1), 0);
  const auto at = [&](std::size_t i, std::size_t j) -> std::uint32_t& { return lcs[i * (m + 1) + j]; };
  std::vector<std::size_t> ha(n), hb(m);
  for (std::size_t i = 0; i < n; ++i) ha[i] = std::hash<std::string_view>{}(a[lead + i]);
  for (std::size_t j = 0; j < m; ++j) hb[j] = std::hash<std::string_view>{}(b[lead + j]);
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m; j-- > 0;) {
      at(i, j) = ha[i] == hb[j] && a[lead + i] == b[lead + j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
    }
  }
  // Walk the table; each run of unmatched lines on either side becomes one run.
  std::size_t i = 0, j = 0, run_i = 0, run_j = 0;
  const auto flush = [&] {
    if (run_i == i && run_j == j) return;
    out.push_back({lead + run_i, lead + i, lead + run_j, lead + j});
  };
  while (i < n || j < m) {
    if (i < n && j < m && ha[i] == hb[j] && a[lead + i] == b[lead + j]) {
      flush();
      ++i;
      ++j;
      run_i = i;
      run_j = j;
    } else if (j < m && (i == n || at(i, j + 1) >= at(i + 1, j))) {
      ++j;
    } else {
      ++i;
    }
  }
  flush();
  return out;
}

std::vector<text_replacement> diff_texts(std::string_view before, std::string_view after, std::size_t max_cells) {
  std::vector<text_replacement> out;
  const std::vector<line_run> runs = diff_line_runs(before, after, max_cells);
  if (runs.empty()) return out;
  const std::vector<std::string_view> a = split_lines(before);
  const std::vector<std::string_view> b = split_lines(after);
  std::vector<std::size_t> a_offset(a.size() + 1, 0);
  for (std::size_t i = 0; i < a.size(); ++i) a_offset[i + 1] = a_offset[i] + a[i].size();
  std::vector<std::size_t> b_offset(b.size() + 1, 0);
  for (std::size_t j = 0; j < b.size(); ++j) b_offset[j + 1] = b_offset[j] + b[j].size();
  for (const line_run& r : runs) {
    add_narrowed(before, a_offset[r.old_begin], a_offset[r.old_end],
                 after.substr(b_offset[r.new_begin], b_offset[r.new_end] - b_offset[r.new_begin]), out);
  }
  return out;
}

std::string unified_diff(std::string_view old_path, std::string_view new_path, std::string_view before,
                         std::string_view after, std::size_t context_lines) {
  const std::vector<line_run> runs = diff_line_runs(before, after);
  if (runs.empty()) return {};
  const std::vector<std::string_view> a = split_lines(before);
  const std::vector<std::string_view> b = split_lines(after);
  std::string out;
  out += "--- ";
  out += old_path;
  out += "\n+++ ";
  out += new_path;
  out += "\n";
  std::string hunk;
  const auto line = [&hunk](char mark, std::string_view text) {
    hunk += mark;
    hunk += text;
    if (text.empty() || text.back() != '\n') hunk += "\n\\ No newline at end of file\n";
  };
  // Runs closer than twice the context share a hunk.
  for (std::size_t first = 0; first < runs.size();) {
    std::size_t last = first;
    while (last + 1 < runs.size() && runs[last + 1].old_begin - runs[last].old_end <= 2 * context_lines) ++last;
    const std::size_t lead = std::min(context_lines, runs[first].old_begin);
    const std::size_t old_start = runs[first].old_begin - lead;
    const std::size_t new_start = runs[first].new_begin - lead;
    const std::size_t old_stop = std::min(a.size(), runs[last].old_end + context_lines);
    std::size_t old_count = 0, new_count = 0;
    std::size_t i = old_start;
    hunk.clear();
    for (std::size_t r = first; r <= last; ++r) {
      for (; i < runs[r].old_begin; ++i, ++old_count, ++new_count) line(' ', a[i]);
      for (std::size_t k = runs[r].old_begin; k < runs[r].old_end; ++k, ++old_count) line('-', a[k]);
      for (std::size_t k = runs[r].new_begin; k < runs[r].new_end; ++k, ++new_count) line('+', b[k]);
      i = runs[r].old_end;
    }
    for (; i < old_stop; ++i, ++old_count, ++new_count) line(' ', a[i]);
    // "-l,s +l,s": 1-based starts; an empty side names the line before it.
    const auto range = [](std::size_t start, std::size_t count) {
      return std::to_string(count == 0 ? start : start + 1) + "," + std::to_string(count);
    };
    out += "@@ -" + range(old_start, old_count) + " +" + range(new_start, new_count) + " @@\n";
    out += hunk;
    first = last + 1;
  }
  return out;
}

std::string apply_replacements(std::string_view before, const std::vector<text_replacement>& edits) {
  std::string out;
  std::size_t at = 0;
  for (const text_replacement& e : edits) {
    out.append(before.substr(at, e.begin - at));
    out.append(e.text);
    at = e.end;
  }
  out.append(before.substr(at));
  return out;
}

}  // namespace qcoder::service
