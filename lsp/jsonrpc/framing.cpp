// Content-Length framing, incremental and defensive.
#include "lsp/jsonrpc/framing.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace qcoder::jsonrpc {
namespace {

constexpr std::string_view header_end = "\r\n\r\n";
constexpr std::size_t max_header_bytes = 4096;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

void frame_reader::compact() {
  if (start_ > 0 && start_ * 2 >= buffer_.size()) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
}

std::optional<result<std::string>> frame_reader::next() {
  if (skip_body_ > 0) {
    const std::size_t drop = std::min(skip_body_, buffer_.size() - start_);
    start_ += drop;
    skip_body_ -= drop;
    compact();
    if (skip_body_ > 0) return std::nullopt;
  }
  if (resyncing_) {
    // After garbage: skip to the next "Content-Length" (any case), keeping a tail that may be its start.
    const std::string_view pending = std::string_view(buffer_).substr(start_);
    constexpr std::string_view name = "content-length";
    std::size_t at = std::string_view::npos;
    for (std::size_t i = 0; i + name.size() <= pending.size(); ++i) {
      if (iequals(pending.substr(i, name.size()), name)) {
        at = i;
        break;
      }
    }
    if (at == std::string_view::npos) {
      start_ = buffer_.size() - std::min(pending.size(), name.size() - 1);
      compact();
      return std::nullopt;
    }
    start_ += at;
    resyncing_ = false;
  }
  const std::string_view pending = std::string_view(buffer_).substr(start_);
  const std::size_t end = pending.find(header_end);
  if (end == std::string_view::npos) {
    if (pending.size() > max_header_bytes) {
      // No header end in sight: report it once and look for the next header.
      resyncing_ = true;
      return result<std::string>(fail(errc::parse_error, "message header longer than {} bytes", max_header_bytes));
    }
    return std::nullopt;
  }

  std::optional<std::size_t> length;
  std::string problem;
  std::string_view headers = pending.substr(0, end);
  while (!headers.empty()) {
    const std::size_t eol = headers.find("\r\n");
    const std::string_view line = headers.substr(0, eol);
    headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      problem = fmt::format("malformed header line '{}'", line.substr(0, 80));
      continue;
    }
    if (!iequals(trim(line.substr(0, colon)), "Content-Length")) continue;  // Content-Type and others
    const std::string_view value = trim(line.substr(colon + 1));
    std::size_t n = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size()) {
      problem = fmt::format("bad Content-Length '{}'", value.substr(0, 40));
    } else {
      length = n;
    }
  }
  const std::size_t body_start = start_ + end + header_end.size();
  if (!length || !problem.empty()) {
    start_ = body_start;  // the body length is unknown: resynchronise on the next header
    compact();
    return result<std::string>(fail(errc::parse_error, "{}", problem.empty() ? "missing Content-Length header" : problem));
  }
  if (*length > max_body_) {
    start_ = body_start;
    skip_body_ = *length;
    const std::size_t drop = std::min(skip_body_, buffer_.size() - start_);
    start_ += drop;
    skip_body_ -= drop;
    compact();
    return result<std::string>(fail(errc::invalid_argument, "message of {} bytes is over the limit of {}", *length, max_body_));
  }
  if (buffer_.size() - body_start < *length) return std::nullopt;
  std::string body = buffer_.substr(body_start, *length);
  start_ = body_start + *length;
  compact();
  return result<std::string>(std::move(body));
}

std::string frame(std::string_view body) { return fmt::format("Content-Length: {}\r\n\r\n{}", body.size(), body); }

}  // namespace qcoder::jsonrpc
