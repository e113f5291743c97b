// One accepted TCP connection and the reply state of the request it is serving. Internal to http/.
//
// A connection reads requests with Beast's parser under the server's limits and answers the ones that
// break them itself; every other request becomes an `exchange` handed to the handler through a responder.
// It keeps a read pending while the request is handled, so that it sees the client leave. Replies arrive
// as byte strings posted to the connection's strand and leave through one queue with at most one write in
// flight, so nothing interleaves and replies go out in request order.
//
// Lifetimes: the responders own the exchange; the exchange owns its connection (strongly, so a handler
// that takes its time keeps the connection) until the reply is complete or the connection closes, when
// the connection detaches it. The connection refers to the exchange weakly. Responders post to the
// strand only under the exchange's mutex while attached, and detaching takes that mutex, so no post can
// follow the close that the server waits for before it stops its I/O threads.
//
// Thread-safety: everything runs on the connection's strand, except the members marked "any thread".
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include "http/growing_string_body.h"
#include "http/server.h"

namespace qcoder::http::detail {

class connection;

// What the server shares with its connections. Outlives them all: the server waits for `live` to empty.
struct connection_host {
  server_options options;
  handler on_request;
  std::atomic<bool> stopping = false;
  std::mutex mutex;  // guards `live`
  std::condition_variable live_changed;
  std::unordered_map<const connection*, std::weak_ptr<connection>> live;
};

// What to do once a queued piece of output is written.
enum class then { more, response_done, close_gracefully, abort };

// The reply state of one request, shared by its responders.
struct exchange {
  enum class stage { fresh, streaming, done };

  exchange(std::shared_ptr<connection> conn, std::uint64_t id, bool head, bool keep_alive, int version,
           std::size_t max_queued_bytes);
  ~exchange();  // the last responder is gone: 500 if no reply was started, cut a stream left open
  exchange(const exchange&) = delete;
  exchange& operator=(const exchange&) = delete;

  const std::uint64_t id;  // the connection's count of requests, to drop output meant for an earlier one
  const bool head;         // a HEAD request: the reply keeps its headers and loses its body
  const bool keep_alive;   // the client may send another request after this reply
  const int version;       // 10 or 11; a stream to an HTTP/1.0 client is not chunked and closes at the end
  const std::size_t max_queued_bytes;

  std::mutex mutex;                   // guards what follows
  std::shared_ptr<connection> conn;   // null once detached: the reply is out, or the connection closed
  stage stage_now = stage::fresh;
  bool drop_body = false;             // a stream whose chunks are not sent (HEAD, or a status without body)
  bool gone = false;                  // the client left, or the server is stopping
  std::stop_source disconnect;        // fires when `gone` becomes true (outside the mutex)
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(boost::asio::ip::tcp::socket socket, connection_host& host, std::string peer);
  ~connection();  // leaves the host's registry
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Any thread: starts serving on the strand; `refuse_busy` answers 503 instead (over max_connections).
  void start(bool refuse_busy);

  // Any thread: queues `bytes` of request `exchange_id`'s reply on the strand. Stale ids are dropped.
  void post_output(std::uint64_t exchange_id, std::string bytes, then next);
  // Any thread: closes the connection on the strand, as if the client had left.
  void post_close();
  // Any thread: reply bytes posted and not yet written, for the backpressure check of write().
  std::atomic<std::size_t>& queued_bytes() { return queued_bytes_; }

 private:
  enum class phase {
    idle,      // waiting for the first byte of a request (idle_timeout)
    header,    // reading the header (header_timeout since its first byte)
    body,      // reading the body (body_timeout since the end of the header)
    handling,  // the handler has the request; reads continue only to see the client leave
    closing,   // an error reply is going out; input is discarded
    lingering, // our side is shut down; input is discarded until the client closes or a short deadline
    closed,
  };
  struct output {
    std::string bytes;
    then next = then::more;
  };

  void start_request();
  void read_more();
  void on_read(boost::system::error_code ec, std::size_t n);
  void parse_buffered();
  bool on_header_done();
  void dispatch();
  void reject(int status, std::string_view message, std::string_view code);

  void enqueue(output out);
  void write_next();
  void on_write(boost::system::error_code ec, std::size_t n);
  void after_written(then next);
  void finish_exchange();

  void arm_deadline(std::chrono::milliseconds after);
  void cancel_deadline();
  void on_deadline(std::uint64_t generation);
  void close_gracefully();
  void close_now(std::string_view why);
  void detach_exchange(bool client_gone);

  connection_host& host_;
  const server_options& options_;
  const std::string peer_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer deadline_;      // idle / header / body / linger, by phase
  boost::asio::steady_timer write_timer_;   // the write in flight
  std::uint64_t deadline_generation_ = 0;   // a wait that completes after a re-arm is stale
  std::uint64_t write_generation_ = 0;

  phase phase_ = phase::idle;
  std::array<char, 16 * 1024> read_chunk_{};  // a pending read fills this, never `input_`, which we consume
  bool reading_ = false;
  boost::beast::flat_buffer input_;           // received, not yet parsed (pipelined requests wait here)
  std::optional<boost::beast::http::request_parser<growing_string_body>> parser_;

  std::weak_ptr<exchange> exchange_;
  std::uint64_t exchange_id_ = 0;
  bool keep_alive_ = false;

  std::deque<output> queue_;
  bool writing_ = false;
  std::atomic<std::size_t> queued_bytes_ = 0;
};

}  // namespace qcoder::http::detail
