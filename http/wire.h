// The bytes of HTTP/1.1 replies: the status line and header, chunk framing, and the error replies the
// server sends on its own. Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/server.h"

namespace qcoder::http::detail {

// How the receiver finds the end of the body.
enum class framing {
  content_length,  // Content-Length: n
  chunked,         // Transfer-Encoding: chunked
  until_close,     // the body ends when the connection closes (streams to HTTP/1.0 clients)
  none,            // no body by definition (1xx, 204, 304)
};

// Statuses whose replies never carry a body (RFC 9110, section 6.4.1).
bool status_has_body(int status);

// The status line and header (with a Date), up to and including the blank line. `content_type` empty: none sent.
// Extra headers with invalid names or values, or that frame the message, are dropped with a warning.
// `request_version` is 10 or 11: an HTTP/1.0 client is told explicitly when the connection stays open.
std::string response_head(int status, std::string_view content_type, const header_list& extra, framing how,
                          std::size_t content_length, bool keep_alive, int request_version);

// One chunk of a chunked body: hex size, CRLF, data, CRLF. Empty data would end the body, so callers
// skip it.
std::string chunk(std::string_view data);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

// A complete reply with an error_json() body, which closes the connection.
std::string error_response(int status, std::string_view message, std::string_view type, std::string_view code);

}  // namespace qcoder::http::detail
