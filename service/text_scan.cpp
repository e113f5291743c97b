// Stop strings and dropped strings over split text.
#include "service/text_scan.h"

#include <algorithm>
#include <utility>

namespace qcoder::service {
namespace {

std::vector<std::string> non_empty(const std::vector<std::string>& strings) {
  std::vector<std::string> out;
  for (const std::string& s : strings) {
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

// Hands out all of `held` but its last `keep` bytes.
std::string take_all_but(std::string& held, std::size_t keep) {
  std::string out = held.substr(0, held.size() - keep);
  held.erase(0, held.size() - keep);
  return out;
}

}  // namespace

std::size_t partial_match_at_end(std::string_view text, const std::vector<std::string>& patterns) {
  std::size_t keep = 0;
  for (const std::string& p : patterns) {
    for (std::size_t len = std::min(p.size() - 1, text.size()); len > keep; --len) {
      if (text.compare(text.size() - len, len, p, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  return keep;
}

stop_scanner::stop_scanner(const std::vector<std::string>& stops) : stops_(non_empty(stops)) {}

std::string stop_scanner::feed(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  std::size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    held_.resize(first);
    return std::exchange(held_, {});
  }
  return take_all_but(held_, partial_match_at_end(held_, stops_));
}

std::string stop_scanner::finish() {
  std::string out = stopped_ ? std::string() : std::move(held_);
  held_.clear();
  return out;
}

text_dropper::text_dropper(const std::vector<std::string>& drop) : drop_(non_empty(drop)) {}

std::string text_dropper::feed(std::string_view text) {
  held_.append(text);
  for (const std::string& d : drop_) {
    for (std::size_t at; (at = held_.find(d)) != std::string::npos;) held_.erase(at, d.size());
  }
  return take_all_but(held_, partial_match_at_end(held_, drop_));
}

std::string text_dropper::finish() { return std::exchange(held_, {}); }

}  // namespace qcoder::service
