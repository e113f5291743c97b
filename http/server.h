// A small HTTP/1.1 server for `qcoder serve`: it parses requests under fixed limits, answers the ones that
// break them itself, and hands every other request to one handler, which may reply later from any thread,
// all at once or as a stream of chunks (server-sent events). It knows nothing about what it serves.
//
// Threading:
//  - The server runs `threads` I/O threads of its own. Each connection lives on one Asio strand, so its
//    reads, writes and timers never run concurrently; with threads > 1, different connections do.
//  - The handler is called on the request's I/O thread. It must not block: it reads the request, keeps
//    the responder (a cheap copyable handle) and posts the work elsewhere, e.g. to the inference thread.
//  - responder methods may be called from any thread. They take a small per-request mutex and post the
//    bytes to the connection's strand, where a single writer sends them in order; nothing interleaves.
//  - Callbacks registered on responder::disconnected() run on an I/O thread and must be short.
//  - start() and stop() are for the owning thread, never for a handler or an I/O thread.
// A responder may outlive its server: once the connection is closed, every call on it is a no-op.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::http {

// Every limit answers with an HTTP error whose body is error_json(): the handler never sees such a request.
struct server_options {
  std::string host = "127.0.0.1";  // an address, or a name the resolver knows ("localhost")
  std::uint16_t port = 8080;       // 0: the OS picks a free port; read it back with server::port()
  std::size_t max_header_bytes = 16 * 1024;      // request line and header fields; more: 431 and close
  std::size_t max_body_bytes = 8 * 1024 * 1024;  // declared Content-Length or de-chunked size; more: 413
  // Slowloris guard: from the first byte of a request to the end of its header. Late: 408 and close.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // From the end of the header to the end of the body. Late: 408 and close.
  std::chrono::milliseconds body_timeout = std::chrono::seconds(60);
  // Keep-alive: how long a connection may wait for the first byte of its next request (or of its first).
  // Late: the connection is closed without a reply, as clients expect of an idle connection.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // How long one write to the client may take. Late: the client is treated as gone.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);
  // Reply bytes waiting for a slow reader. A stream write() past this treats the client as gone, so a
  // client that stops reading cannot make the server buffer a whole generation.
  std::size_t max_queued_bytes = 8 * 1024 * 1024;
  // Open connections. One more is answered 503 and closed; past a quarter more (a flood), closed at once.
  std::size_t max_connections = 256;
  int threads = 1;                    // I/O threads
};

struct request {
  std::string method;  // as sent ("GET", "POST", "HEAD"...): methods are case-sensitive
  std::string target;  // as sent, path and query: "/v1/models?limit=2"
  std::string path;    // the target up to '?', not percent-decoded: "/v1/models"
  std::string query;   // after '?', without it; empty when there is none
  // Header names in lower case. A field sent several times has its values joined with ", ".
  std::map<std::string, std::string, std::less<>> headers;
  std::string body;  // the whole body, de-chunked
  std::string peer;  // the client's address: "127.0.0.1:53211", "[::1]:53211"
  int version = 11;  // 10 for HTTP/1.0, 11 for HTTP/1.1

  // The value of a header (name given in lower case), or nullopt when it was not sent.
  std::optional<std::string_view> header(std::string_view lower_case_name) const;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

namespace detail {
struct exchange;
}

// The reply side of one request: a handle on shared state, copyable, usable from any thread.
// Exactly one reply goes out: the first send() or begin_stream() wins and later ones are dropped (and
// logged). When the last copy is destroyed without a reply, the client gets 500; a stream left without
// end() is cut off (the connection closes without the last chunk, so the client sees it was incomplete).
// Headers that frame the message (Content-Length, Transfer-Encoding, Connection) and Date are the
// server's: the ones passed in extra headers are dropped, as are names or values that would break the header.
// HEAD requests: the server keeps the headers (Content-Length included) and drops the body.
class responder {
 public:
  responder() = default;  // a handle to nothing: every call is a no-op
  explicit responder(std::shared_ptr<detail::exchange> state);

  // The whole reply at once, with a Content-Length.
  void send(int status, std::string content_type, std::string body, header_list extra_headers = {});

  // Starts a reply whose body follows in write() calls (chunked transfer encoding; for an HTTP/1.0 client
  // the body runs until the connection closes). False when a reply was already started or the client
  // is gone.
  bool begin_stream(int status, std::string content_type = "text/event-stream", header_list extra_headers = {});
  // Queues one chunk of the body. False once the client is gone (or was too slow: max_queued_bytes), or
  // when no stream was begun: the caller should stop producing. Empty data is accepted and sends nothing.
  bool write(std::string data);
  // Finishes the stream; the connection then serves the next request (keep-alive).
  void end();

  // Fires when the client goes away while this request is handled or streamed (it closes or resets the
  // connection; a half-close counts too), when a write fails or times out, or when the server stops.
  // It does not fire after a reply went out in full.
  std::stop_token disconnected() const;

 private:
  std::shared_ptr<detail::exchange> state_;
};

// Called on an I/O thread, once per request that passed the limits. Must not block.
using handler = std::function<void(request, responder)>;

class server {
 public:
  // Listens on options.host:options.port and starts the I/O threads. Fails (io_error) when the address
  // cannot be resolved or bound, (invalid_argument) on nonsensical options.
  static result<std::unique_ptr<server>> start(server_options options, handler on_request);
  ~server();  // stop()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const;  // the port listened on (the one the OS picked when options.port was 0)

  // Stops accepting, closes every connection (firing disconnected() of the requests in flight), joins the
  // I/O threads and returns. Replies still being produced are dropped. Idempotent; not from an I/O thread.
  void stop();

 private:
  struct impl;
  explicit server(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

// The body of an error reply, in the shape OpenAI clients parse:
// {"error":{"message":"...","type":"...","code":"..."}}. The server uses it for its own errors.
std::string error_json(std::string_view message, std::string_view type, std::string_view code);

}  // namespace qcoder::http
