// Checks of a request's credentials, for an API key given on the command line.
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace qcoder::http {

// Compares two secrets in time that depends on their lengths only, never on where they first differ,
// so that the answer time does not let a client guess a key byte by byte.
bool constant_time_equals(std::string_view a, std::string_view b);

// The token of an "Authorization: Bearer <token>" header (scheme case-insensitive, surrounding spaces
// trimmed), or nullopt when there is no such header, another scheme, or an empty token.
std::optional<std::string> bearer_token(const request& req);

}  // namespace qcoder::http
