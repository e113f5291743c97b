// A ring of recently edited and recently viewed code ranges, for the prompt: what the user just worked on
// is the best predictor of what they type next.
//
// A new snippet that is similar to one already held (Jaccard similarity of their word sets at or above
// `similarity`, the same file) replaces it, so scrolling over the same function or editing it keystroke by
// keystroke keeps one entry, not twenty. Entries are kept oldest first; when full the oldest goes. Order
// and text only change when a snippet is added, so prompts built between two additions carry the same
// snippet blocks byte for byte.
//
// Thread-safety: all members lock an internal mutex; add from the editor thread, read from the prompt
// worker.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::context {

enum class snippet_source : std::uint8_t { viewed, edited };

struct snippet {
  std::string path;
  std::uint32_t line = 0;  // 0-based first line
  std::string text;
  snippet_source source = snippet_source::viewed;
};

class recent_snippets {
 public:
  explicit recent_snippets(std::size_t capacity = 16, double similarity = 0.5);

  void add(snippet s);
  // Oldest first.
  std::vector<snippet> items() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::size_t capacity_;
  double similarity_;
  std::vector<snippet> items_;
};

// Jaccard similarity of the sets of identifier-like words of two texts (1 when both have none).
double word_similarity(std::string_view a, std::string_view b);

}  // namespace qcoder::context
