// The listening socket, the I/O threads, and the order of shutdown.
#include "http/server.h"

#include <cerrno>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "http/connection.h"

namespace qcoder::http {
namespace net = boost::asio;
using net::ip::tcp;
using boost::system::error_code;

namespace {

std::string endpoint_string(const tcp::endpoint& endpoint) {
  const std::string address = endpoint.address().to_string();
  return endpoint.address().is_v6() ? fmt::format("[{}]:{}", address, endpoint.port())
                                    : fmt::format("{}:{}", address, endpoint.port());
}

// Out of descriptors or memory: accepting again at once would spin on the same error.
bool is_resource_shortage(const error_code& ec) {
  const int value = ec.value();
  return ec.category() == boost::system::system_category() &&
         (value == EMFILE || value == ENFILE || value == ENOBUFS || value == ENOMEM);
}

}  // namespace

std::optional<std::string_view> request::header(std::string_view lower_case_name) const {
  auto it = headers.find(lower_case_name);
  if (it == headers.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::string error_json(std::string_view message, std::string_view type, std::string_view code) {
  const nlohmann::json body = {{"error", {{"message", message}, {"type", type}, {"code", code}}}};
  return body.dump();
}

struct server::impl {
  impl(server_options options, handler on_request) : acceptor(net::make_strand(io)), accept_retry(acceptor.get_executor()) {
    host.options = std::move(options);
    host.on_request = std::move(on_request);
  }

  result<void> listen();
  void accept_next();
  void on_accept(error_code ec, tcp::socket socket);
  void run();

  // Declared first, destroyed last: connections leave the host's registry as they are destroyed, and the
  // io_context destroys any that its pending handlers still hold.
  detail::connection_host host;
  net::io_context io;
  tcp::acceptor acceptor;            // on a strand of its own
  net::steady_timer accept_retry;    // on the acceptor's strand
  std::vector<std::thread> threads;
  std::mutex stop_mutex;             // a second stop() waits for the first
  bool stopped = false;
  std::uint16_t port = 0;
};

result<void> server::impl::listen() {
  const server_options& options = host.options;
  error_code ec;
  tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return fail(errc::io_error, "http: cannot resolve the address {:?}: {}", options.host,
                ec ? ec.message() : "no address");
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  if (acceptor.open(endpoint.protocol(), ec); ec) return fail(errc::io_error, "http: socket: {}", ec.message());
  // A restarted server can listen again at once, while the old connections sit in TIME_WAIT.
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec) {
    return fail(errc::io_error, "http: cannot listen on {}: {}", endpoint_string(endpoint), ec.message());
  }
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
    return fail(errc::io_error, "http: cannot listen on {}: {}", endpoint_string(endpoint), ec.message());
  }
  port = acceptor.local_endpoint(ec).port();
  spdlog::info("http: listening on {}", endpoint_string(acceptor.local_endpoint(ec)));
  accept_next();
  return ok();
}

void server::impl::accept_next() {
  acceptor.async_accept(net::make_strand(io),
                        [this](error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void server::impl::on_accept(error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    spdlog::warn("http: accepting a connection failed: {}", ec.message());
    if (!is_resource_shortage(ec)) {
      accept_next();
      return;
    }
    accept_retry.expires_after(std::chrono::milliseconds(100));
    accept_retry.async_wait([this](error_code wait_ec) {
      if (!wait_ec && acceptor.is_open()) accept_next();
    });
    return;
  }
  error_code ignored;
  // Streamed tokens are small writes: send each at once instead of waiting on the previous one's ACK.
  socket.set_option(tcp::no_delay(true), ignored);
  const std::string peer = endpoint_string(socket.remote_endpoint(ignored));
  std::shared_ptr<detail::connection> conn;
  bool refuse = false;
  {
    std::lock_guard lock(host.mutex);
    if (host.stopping) return;  // `socket` closes as it goes out of scope
    refuse = host.live.size() >= host.options.max_connections;
    // Refused connections still take a slot while their 503 goes out; past a margin, close at once so a
    // flood cannot hold more sockets than that.
    if (refuse && host.live.size() >= host.options.max_connections + host.options.max_connections / 4 + 16) {
      spdlog::warn("http: {} refused without a reply: too many connections", peer);
      accept_next();
      return;
    }
    conn = std::make_shared<detail::connection>(std::move(socket), host, peer);
    host.live.emplace(conn.get(), conn);
  }
  if (refuse) spdlog::warn("http: {} refused: {} connections open", peer, host.options.max_connections);
  conn->start(refuse);
  accept_next();
}

void server::impl::run() {
  try {
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("http: an I/O thread stopped on an exception: {}", e.what());
  }
}

result<std::unique_ptr<server>> server::start(server_options options, handler on_request) {
  if (!on_request) return fail(errc::invalid_argument, "http: no request handler");
  if (options.threads < 1) return fail(errc::invalid_argument, "http: threads must be at least 1, not {}", options.threads);
  if (options.max_connections == 0 || options.max_header_bytes == 0 || options.max_queued_bytes == 0) {
    return fail(errc::invalid_argument, "http: max_connections, max_header_bytes and max_queued_bytes must be positive");
  }
  const int threads = options.threads;
  auto state = std::make_unique<impl>(std::move(options), std::move(on_request));
  QCODER_CHECK(state->listen());
  for (int i = 0; i < threads; ++i) state->threads.emplace_back([s = state.get()] { s->run(); });
  return std::unique_ptr<server>(new server(std::move(state)));
}

server::server(std::unique_ptr<impl> state) : impl_(std::move(state)) {}

server::~server() { stop(); }

std::uint16_t server::port() const { return impl_->port; }

void server::stop() {
  impl& s = *impl_;
  std::lock_guard stop_lock(s.stop_mutex);
  if (s.stopped) return;
  s.stopped = true;
  std::vector<std::shared_ptr<detail::connection>> open;
  {
    std::lock_guard lock(s.host.mutex);
    s.host.stopping = true;  // from here on, accepted sockets are closed at once
    for (const auto& [key, weak] : s.host.live) {
      if (auto conn = weak.lock()) open.push_back(std::move(conn));
    }
  }
  // Closing detaches every exchange, which fires its disconnected() and ends the posts from responders.
  // The connections first: the pending accept keeps the I/O threads running until every close has run.
  // Closed the other way round, the threads could run out of work and return before a close posted here
  // (to a connection the client had already closed), whose handler would then hold the connection forever.
  for (const auto& conn : open) conn->post_close();
  open.clear();
  net::post(s.acceptor.get_executor(), [&s] {
    error_code ignored;
    s.acceptor.close(ignored);
    s.accept_retry.cancel();
  });
  for (std::thread& thread : s.threads) thread.join();
  s.threads.clear();
  // Nothing should be left to run; if something is, run it here rather than let it pin a connection.
  s.io.restart();
  s.io.poll();
  // A connection whose last reference was a responder's (dropped on another thread) may still be on its
  // way out; it must be gone before the io_context its socket belongs to.
  std::unique_lock lock(s.host.mutex);
  s.host.live_changed.wait(lock, [&] { return s.host.live.empty(); });
  spdlog::info("http: stopped");
}

}  // namespace qcoder::http
