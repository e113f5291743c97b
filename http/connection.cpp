// Reading requests under the limits, the single-writer reply queue, and the connection's timers.
#include "http/connection.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/wire.h"

namespace qcoder::http::detail {
namespace net = boost::asio;
namespace beast_http = boost::beast::http;
using boost::system::error_code;

namespace {

// How long a closing connection waits for the client to close its side once ours is shut down. Closing
// with unread input makes the kernel send a reset, which can destroy an error reply before the client
// has read it.
constexpr std::chrono::milliseconds linger_time = std::chrono::seconds(2);

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return a.size() == b.size() && to_lower(a) == to_lower(b); }

// Boost 1.74's Beast has its own string_view.
std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Splits an origin-form target ("/a?b") or an absolute-form one ("http://host/a?b", which RFC 9112
// requires servers to accept) into path and query.
void split_target(std::string_view target, std::string& path, std::string& query) {
  std::string_view rest = target;
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (rest.size() >= scheme.size() && iequals(rest.substr(0, scheme.size()), scheme)) {
      rest.remove_prefix(scheme.size());
      const std::size_t authority_end = rest.find_first_of("/?");
      rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
      break;
    }
  }
  const std::size_t question = rest.find('?');
  path = std::string(rest.substr(0, question));
  if (path.empty()) path = "/";
  query = question == std::string_view::npos ? std::string() : std::string(rest.substr(question + 1));
}

}  // namespace

connection::connection(net::ip::tcp::socket socket, connection_host& host, std::string peer)
    : host_(host),
      options_(host.options),
      peer_(std::move(peer)),
      socket_(std::move(socket)),
      deadline_(socket_.get_executor()),
      write_timer_(socket_.get_executor()) {}

connection::~connection() {
  // Notify under the mutex: once it is released, the server may destroy the host.
  std::lock_guard lock(host_.mutex);
  host_.live.erase(this);
  host_.live_changed.notify_all();
}

void connection::start(bool refuse_busy) {
  net::post(socket_.get_executor(), [self = shared_from_this(), refuse_busy] {
    if (self->host_.stopping) {
      self->close_now("the server is stopping");
    } else if (refuse_busy) {
      self->reject(503, fmt::format("the server has {} connections open, its limit", self->options_.max_connections),
                   "server_busy");
      self->read_more();
    } else {
      self->start_request();
    }
  });
}

void connection::post_output(std::uint64_t exchange_id, std::string bytes, then next) {
  net::post(socket_.get_executor(), [self = shared_from_this(), exchange_id, bytes = std::move(bytes), next]() mutable {
    if (self->phase_ != phase::handling || exchange_id != self->exchange_id_) {
      self->queued_bytes_ -= bytes.size();  // the connection closed, or went on without this reply
      return;
    }
    self->enqueue({std::move(bytes), next});
  });
}

void connection::post_close() {
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->close_now("closed by the server"); });
}

// --- reading ------------------------------------------------------------------------------------------

void connection::start_request() {
  if (phase_ == phase::closed) return;
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options_.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(static_cast<std::uint64_t>(options_.max_body_bytes));
  if (input_.size() > 0) {  // a pipelined request is already here
    phase_ = phase::header;
    arm_deadline(options_.header_timeout);
    parse_buffered();
  } else {
    phase_ = phase::idle;
    arm_deadline(options_.idle_timeout);
  }
  read_more();
}

void connection::read_more() {
  if (reading_ || phase_ == phase::closed) return;
  // While a request is handled, pipelined input is kept up to one header's worth; past that, reading
  // pauses until the reply is out, and with it the early notice of the client leaving.
  if (phase_ == phase::handling && input_.size() >= options_.max_header_bytes) return;
  reading_ = true;
  socket_.async_read_some(net::buffer(read_chunk_),
                          [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void connection::on_read(error_code ec, std::size_t n) {
  reading_ = false;
  if (phase_ == phase::closed) return;
  if (ec) {
    // The error reply in the queue still goes out to a client that only closed its sending side.
    if (ec == net::error::eof && phase_ == phase::closing) return;
    // Otherwise end of stream or a reset: between requests that is how clients close; during one, the
    // client left. A client that half-closes after its request looks the same and is treated as gone.
    if (phase_ == phase::handling) spdlog::debug("http: {} left while its request was handled: {}", peer_, ec.message());
    close_now("the client closed the connection");
    return;
  }
  if (phase_ == phase::closing || phase_ == phase::lingering) {
    read_more();  // discarded: the connection is ending
    return;
  }
  if (phase_ == phase::idle) {
    phase_ = phase::header;
    arm_deadline(options_.header_timeout);
  }
  net::buffer_copy(input_.prepare(n), net::buffer(read_chunk_.data(), n));
  input_.commit(n);
  if (phase_ == phase::header || phase_ == phase::body) parse_buffered();
  read_more();
}

void connection::parse_buffered() {
  while ((phase_ == phase::header || phase_ == phase::body) && input_.size() > 0) {
    error_code ec;
    const std::size_t used = parser_->put(input_.data(), ec);
    input_.consume(used);
    if (ec == beast_http::error::need_more) return;
    if (ec == beast_http::error::header_limit) {
      reject(431, fmt::format("the request header is larger than {} bytes", options_.max_header_bytes),
             "header_too_large");
      return;
    }
    if (ec == beast_http::error::body_limit) {
      reject(413, fmt::format("the request body is larger than {} bytes", options_.max_body_bytes),
             "request_too_large");
      return;
    }
    if (ec) {
      reject(400, fmt::format("malformed HTTP request: {}", ec.message()), "bad_request");
      return;
    }
    if (phase_ == phase::header && parser_->is_header_done() && !on_header_done()) return;
    if (parser_->is_done()) {
      dispatch();
      return;
    }
    if (used == 0) return;  // the parser wants more than what is buffered
  }
}

bool connection::on_header_done() {
  phase_ = phase::body;
  const auto& header = parser_->get();
  if (header.version() != 10 && header.version() != 11) {
    reject(505, "only HTTP/1.0 and HTTP/1.1 are supported", "http_version_not_supported");
    return false;
  }
  if (auto expect = header.find(beast_http::field::expect); expect != header.end()) {
    if (!iequals(sv(expect->value()), "100-continue")) {
      reject(417, "the only expectation supported is 100-continue", "expectation_failed");
      return false;
    }
    // The client holds the body back until it sees this (or gives up waiting). A body over the limit
    // never gets here: the parser rejects its Content-Length with the header.
    if (header.version() == 11 && !parser_->is_done()) {
      std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
      queued_bytes_ += interim.size();
      enqueue({std::move(interim), then::more});
    }
  }
  if (!parser_->is_done()) arm_deadline(options_.body_timeout);
  return true;
}

void connection::dispatch() {
  cancel_deadline();
  beast_http::request<growing_string_body> message = parser_->release();
  parser_.reset();

  request req;
  req.method = std::string(sv(message.method_string()));
  req.target = std::string(sv(message.target()));
  split_target(req.target, req.path, req.query);
  for (const auto& field : message) {
    auto [it, inserted] = req.headers.try_emplace(to_lower(sv(field.name_string())), sv(field.value()));
    if (!inserted) {
      it->second += ", ";
      it->second += sv(field.value());
    }
  }
  req.body = std::move(message.body());
  req.peer = peer_;
  req.version = static_cast<int>(message.version());

  keep_alive_ = message.keep_alive() && !host_.stopping;
  ++exchange_id_;
  auto state = std::make_shared<exchange>(shared_from_this(), exchange_id_, message.method() == beast_http::verb::head,
                                          keep_alive_, req.version, options_.max_queued_bytes);
  exchange_ = state;
  phase_ = phase::handling;
  const std::string what = fmt::format("{} {}", req.method, req.path);
  spdlog::debug("http: {} from {}", what, peer_);
  // An exception leaves the responder behind, which answers 500 if nothing was sent.
  try {
    host_.on_request(std::move(req), responder(std::move(state)));
  } catch (const std::exception& e) {
    spdlog::error("http: the handler of {} threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("http: the handler of {} threw", what);
  }
}

void connection::reject(int status, std::string_view message, std::string_view code) {
  spdlog::debug("http: {} to {}: {}", status, peer_, message);
  cancel_deadline();
  parser_.reset();
  phase_ = phase::closing;
  std::string reply =
      error_response(status, message, status >= 500 ? "server_error" : "invalid_request_error", code);
  queued_bytes_ += reply.size();
  enqueue({std::move(reply), then::close_gracefully});
}

// --- writing ------------------------------------------------------------------------------------------

void connection::enqueue(output out) {
  queue_.push_back(std::move(out));
  write_next();
}

void connection::write_next() {
  while (!writing_ && !queue_.empty() && phase_ != phase::closed) {
    if (queue_.front().bytes.empty()) {  // only a mark: act on it now that everything before it is out
      const then next = queue_.front().next;
      queue_.pop_front();
      after_written(next);
      continue;
    }
    writing_ = true;
    const std::uint64_t generation = ++write_generation_;
    write_timer_.expires_after(options_.write_timeout);
    write_timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      if (ec || generation != self->write_generation_) return;
      spdlog::debug("http: a write to {} took longer than {} ms", self->peer_, self->options_.write_timeout.count());
      self->close_now("a write timed out");
    });
    // A deque keeps its elements in place on push_back, so the buffer stays valid while more is queued.
    net::async_write(socket_, net::buffer(queue_.front().bytes),
                     [self = shared_from_this()](error_code ec, std::size_t n) { self->on_write(ec, n); });
  }
}

void connection::on_write(error_code ec, std::size_t) {
  writing_ = false;
  ++write_generation_;
  write_timer_.cancel();
  if (phase_ == phase::closed) return;
  if (ec) {
    spdlog::debug("http: writing to {} failed: {}", peer_, ec.message());
    close_now("a write failed");
    return;
  }
  const then next = queue_.front().next;
  queued_bytes_ -= queue_.front().bytes.size();
  queue_.pop_front();
  after_written(next);
  write_next();
}

void connection::after_written(then next) {
  switch (next) {
    case then::more: break;
    case then::response_done: finish_exchange(); break;
    case then::close_gracefully: close_gracefully(); break;
    case then::abort: close_now("a stream was abandoned"); break;
  }
}

void connection::finish_exchange() {
  detach_exchange(/*client_gone=*/false);
  if (!keep_alive_ || host_.stopping) {
    close_gracefully();
  } else {
    start_request();
  }
}

// --- timers and closing -------------------------------------------------------------------------------

void connection::arm_deadline(std::chrono::milliseconds after) {
  const std::uint64_t generation = ++deadline_generation_;
  deadline_.expires_after(after);
  deadline_.async_wait([self = shared_from_this(), generation](error_code ec) {
    if (!ec) self->on_deadline(generation);
  });
}

void connection::cancel_deadline() {
  ++deadline_generation_;
  deadline_.cancel();
}

void connection::on_deadline(std::uint64_t generation) {
  if (generation != deadline_generation_) return;  // re-armed after this wait had completed
  switch (phase_) {
    case phase::idle: close_now("idle"); break;
    case phase::header:
      reject(408, fmt::format("the request header did not arrive within {} ms", options_.header_timeout.count()),
             "request_timeout");
      break;
    case phase::body:
      reject(408, fmt::format("the request body did not arrive within {} ms", options_.body_timeout.count()),
             "request_timeout");
      break;
    case phase::lingering: close_now("the client did not close"); break;
    case phase::handling:
    case phase::closing:
    case phase::closed: break;
  }
}

void connection::close_gracefully() {
  detach_exchange(/*client_gone=*/false);
  error_code ec;
  socket_.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  if (ec) {
    close_now("shutdown failed");
    return;
  }
  phase_ = phase::lingering;
  parser_.reset();
  input_.consume(input_.size());
  arm_deadline(linger_time);
  read_more();
}

void connection::close_now(std::string_view why) {
  if (phase_ == phase::closed) return;
  spdlog::trace("http: closing the connection of {}: {}", peer_, why);
  phase_ = phase::closed;
  error_code ignored;
  socket_.close(ignored);  // pending reads and writes complete with operation_aborted
  cancel_deadline();
  ++write_generation_;
  write_timer_.cancel();
  // The queue stays: a write in flight may still refer to its front until it completes.
  detach_exchange(/*client_gone=*/true);
}

void connection::detach_exchange(bool client_gone) {
  const std::shared_ptr<exchange> state = exchange_.lock();
  exchange_.reset();
  if (!state) return;
  std::shared_ptr<connection> self;  // released after the mutex, never under it
  bool fire = false;
  {
    std::lock_guard lock(state->mutex);
    self = std::move(state->conn);
    if (client_gone && !state->gone) {
      state->gone = true;
      fire = true;
    }
  }
  // Callbacks on the token run here; they may call the responder, which takes the mutex.
  if (fire) state->disconnect.request_stop();
}

}  // namespace qcoder::http::detail
