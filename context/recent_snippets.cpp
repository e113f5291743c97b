// The snippet ring and its similarity measure.
#include "context/recent_snippets.h"

#include <algorithm>
#include <unordered_set>

#include "context/text_lines.h"

namespace qcoder::context {
namespace {

std::unordered_set<std::string_view> words_of(std::string_view text) {
  std::unordered_set<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_identifier_char(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && is_identifier_char(text[j])) ++j;
    words.insert(text.substr(i, j - i));
    i = j;
  }
  return words;
}

}  // namespace

double word_similarity(std::string_view a, std::string_view b) {
  const std::unordered_set<std::string_view> wa = words_of(a);
  const std::unordered_set<std::string_view> wb = words_of(b);
  if (wa.empty() && wb.empty()) return 1.0;
  std::size_t common = 0;
  for (std::string_view w : wa) common += wb.count(w);
  return static_cast<double>(common) / static_cast<double>(wa.size() + wb.size() - common);
}

recent_snippets::recent_snippets(std::size_t capacity, double similarity)
    : capacity_(std::max<std::size_t>(capacity, 1)), similarity_(similarity) {}

void recent_snippets::add(snippet s) {
  if (is_blank(s.text)) return;
  std::lock_guard lock(mutex_);
  std::erase_if(items_, [&](const snippet& old) {
    return old.path == s.path && word_similarity(old.text, s.text) >= similarity_;
  });
  items_.push_back(std::move(s));
  if (items_.size() > capacity_) items_.erase(items_.begin());
}

std::vector<snippet> recent_snippets::items() const {
  std::lock_guard lock(mutex_);
  return items_;
}

void recent_snippets::clear() {
  std::lock_guard lock(mutex_);
  items_.clear();
}

}  // namespace qcoder::context
