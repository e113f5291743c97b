// Scanning generated text as it streams in pieces, for strings that may be split across pieces: a piece's
// end that could still begin one of the strings is held back until the next piece decides.
//  - stop_scanner cuts the text at the first stop string (the OpenAI API's `stop`, our control tokens).
//  - text_dropper leaves given strings out and keeps going (control tokens a server spells out).
// Not thread-safe: one per stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qcoder::service {

// The length of the longest end of `text` that is a proper prefix of one of `patterns` (0: none).
std::size_t partial_match_at_end(std::string_view text, const std::vector<std::string>& patterns);

class stop_scanner {
 public:
  explicit stop_scanner(const std::vector<std::string>& stops);  // empty strings are ignored
  // The text that can be shown now; after a stop string, nothing more (stopped() says so).
  std::string feed(std::string_view text);
  // The rest at the end of the generation (nothing after a stop).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

class text_dropper {
 public:
  explicit text_dropper(const std::vector<std::string>& drop);  // empty strings are ignored
  // The text that can be shown now, without the dropped strings.
  std::string feed(std::string_view text);
  // What was held back, at the end (a tail that never became a dropped string is text after all).
  std::string finish();

 private:
  std::vector<std::string> drop_;
  std::string held_;
};

}  // namespace qcoder::service
