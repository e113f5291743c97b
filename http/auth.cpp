// Constant-time comparison and the Bearer scheme (RFC 6750, section 2.1).
#include "http/auth.h"

#include <algorithm>
#include <cstddef>

namespace qcoder::http {

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Walk the longer length in full and fold every difference into one accumulator. The accumulator is
  // volatile so that the compiler cannot turn the loop into an early exit on the first difference.
  const std::size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

}  // namespace

std::optional<std::string> bearer_token(const request& req) {
  const std::optional<std::string_view> value = req.header("authorization");
  if (!value) return std::nullopt;
  const std::string_view credentials = trim(*value);
  constexpr std::string_view scheme = "bearer";
  if (credentials.size() <= scheme.size() || !iequals(credentials.substr(0, scheme.size()), scheme) ||
      !is_space(credentials[scheme.size()])) {
    return std::nullopt;
  }
  const std::string_view token = trim(credentials.substr(scheme.size()));
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

}  // namespace qcoder::http
