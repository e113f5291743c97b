// A small HTTP/1.1 client for talking to a model server (ours, vLLM, SGLang, llama-server): one request per
// call, on a connection of its own, with the reply body handed over as it arrives so that a stream of
// server-sent events can be read while it is generated. Plain http only; TLS is left to a proxy or tunnel.
//
// Threading: send() blocks the calling thread, which runs the call's own I/O; any number of calls may run
// at once from different threads, they share nothing. The stop token may be fired from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "http/server.h"  // header_list
#include "kernels/common/result.h"

namespace qcoder::http {

// A server's base URL: http://HOST[:PORT][/PATH].
struct endpoint {
  std::string host;       // a name or an address; an IPv6 address without its brackets
  std::string port;       // "80" when the URL gives none
  std::string base_path;  // without a trailing slash; "" when none ("/v1" stays "/v1")
  std::string text() const;  // for messages: "http://host:port/base" (IPv6 in brackets)
};

// Parses a base URL. https is refused (a TLS-terminating proxy or an SSH tunnel on localhost serves it), as
// are user info, queries and fragments. Errors: invalid_argument saying what is wrong.
result<endpoint> parse_endpoint(std::string_view url);

struct client_options {
  std::chrono::milliseconds connect_timeout{5000};  // to connect (name resolution is bounded by the system's resolver)
  std::chrono::milliseconds idle_timeout{60000};    // the longest wait for the next byte of the reply, or to send
  std::size_t max_body_bytes = 64u << 20;           // a collected (not streamed) body larger is an error
};

struct client_reply {
  int status = 0;
  std::string body;  // the whole body, unless it went to on_data
  std::string content_type;
  std::optional<std::chrono::milliseconds> retry_after;  // Retry-After, when sent in its delta-seconds form
};

// Sends one request to `server` at base_path + `path` and reads the reply; the connection is closed after.
// Host, User-Agent, Accept, Content-Length and (with a body) Content-Type: application/json are set here;
// `headers` adds others (Authorization...).
//
// The body of a 2xx reply goes to `on_data` as it arrives, de-chunked, in pieces of any size; when on_data
// returns false the connection is closed and the call returns the reply so far (ok). Without on_data, or for
// any other status, the body is collected in client_reply::body, up to options.max_body_bytes.
// Firing `stop` closes the connection at once, whatever the call is waiting on (a stop requested before the
// call sends nothing).
//
// Errors: unavailable (cannot resolve, refused, connect timeout, reset or closed before a complete reply,
// idle timeout; the message names the server and the cause), cancelled (stop fired), parse_error (the reply
// is not HTTP, or a collected body is larger than max_body_bytes).
result<client_reply> send(const endpoint& server, std::string_view method, std::string_view path,
                          const header_list& headers, std::string_view body,
                          const std::function<bool(std::string_view)>& on_data, std::stop_token stop,
                          const client_options& options = {});

}  // namespace qcoder::http
