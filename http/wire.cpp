// Reply serialization. The header is written by hand rather than with Beast's serializer: replies leave
// through one byte queue per connection, which is simplest when every piece is already a string.
#include "http/wire.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string_view>

#include <boost/beast/http/status.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace qcoder::http::detail {
namespace {

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool valid_name(std::string_view name) { return !name.empty() && std::all_of(name.begin(), name.end(), is_token_char); }

// A CR or LF in a value would let it start a header of its own (or end the header early).
bool valid_value(std::string_view value) { return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

bool set_by_the_server(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower == "content-length" || lower == "transfer-encoding" || lower == "connection" || lower == "date";
}

// IMF-fixdate (RFC 9110, section 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT". Names written out rather than
// taken from strftime, which would follow the process's locale.
std::string http_date() {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", days[utc.tm_wday], utc.tm_mday, months[utc.tm_mon],
                     utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

}  // namespace

bool status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

std::string response_head(int status, std::string_view content_type, const header_list& extra, framing how,
                          std::size_t content_length, bool keep_alive, int request_version) {
  std::string reason(boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status)));
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nDate: {}\r\n", status, reason, http_date());
  if (!content_type.empty() && valid_value(content_type)) head += fmt::format("Content-Type: {}\r\n", content_type);
  for (const auto& [name, value] : extra) {
    if (!valid_name(name) || !valid_value(value) || set_by_the_server(name)) {
      spdlog::warn("http: reply header {:?} dropped (invalid, or one the server sets itself)", name);
      continue;
    }
    head += fmt::format("{}: {}\r\n", name, value);
  }
  switch (how) {
    case framing::content_length: head += fmt::format("Content-Length: {}\r\n", content_length); break;
    case framing::chunked: head += "Transfer-Encoding: chunked\r\n"; break;
    case framing::until_close:
    case framing::none: break;
  }
  if (!keep_alive) {
    head += "Connection: close\r\n";
  } else if (request_version < 11) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  return head;
}

std::string chunk(std::string_view data) { return fmt::format("{:x}\r\n{}\r\n", data.size(), data); }

std::string error_response(int status, std::string_view message, std::string_view type, std::string_view code) {
  std::string body = error_json(message, type, code);
  std::string reply = response_head(status, "application/json", {}, framing::content_length, body.size(),
                                    /*keep_alive=*/false, 11);
  reply += body;
  return reply;
}

}  // namespace qcoder::http::detail
