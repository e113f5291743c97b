// Line LCS, then byte narrowing of each changed run.
#include "service/text_diff.h"

#include <algorithm>
#include <cstdint>
#include <functional>

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

std::vector<text_replacement> diff_texts(std::string_view before, std::string_view after, std::size_t max_cells) {
  std::vector<text_replacement> out;
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
  std::vector<std::size_t> a_offset(a.size() + 1, 0);
  for (std::size_t i = 0; i < a.size(); ++i) a_offset[i + 1] = a_offset[i] + a[i].size();
  std::vector<std::size_t> b_offset(b.size() + 1, 0);
  for (std::size_t j = 0; j < b.size(); ++j) b_offset[j + 1] = b_offset[j] + b[j].size();
  const auto old_span = [&](std::size_t i0, std::size_t i1) { return std::pair{a_offset[i0], a_offset[i1]}; };
  const auto new_text = [&](std::size_t j0, std::size_t j1) { return after.substr(b_offset[j0], b_offset[j1] - b_offset[j0]); };

  if (n == 0 || m == 0 || (n + 1) * (m + 1) > max_cells) {
    const auto [begin, end] = old_span(lead, lead + n);
    add_narrowed(before, begin, end, new_text(lead, lead + m), out);
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
  // Walk the table; each run of unmatched lines on either side becomes one replacement.
  std::size_t i = 0, j = 0, run_i = 0, run_j = 0;
  const auto flush = [&] {
    if (run_i == i && run_j == j) return;
    const auto [begin, end] = old_span(lead + run_i, lead + i);
    add_narrowed(before, begin, end, new_text(lead + run_j, lead + j), out);
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
