// The HTTP/1.1 client (see client.h). Each call owns an io_context that only its calling thread runs: every
// step is an asynchronous operation with a deadline (Beast's tcp_stream), run to completion before the next
// starts, so that a stop request, posted onto that io_context, can close the socket under whichever step
// is waiting.
#include "http/client.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <limits>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#ifndef QCODER_VERSION
#define QCODER_VERSION "dev"
#endif

namespace qcoder::http {
namespace {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;
using tcp = net::ip::tcp;

constexpr std::uint32_t max_header_bytes = 64 * 1024;

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Boost 1.74's Beast has its own string_view.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// "5 s", "200 ms": timeouts as a person would write them.
std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{} s", d.count() / 1000);
  return fmt::format("{} ms", d.count());
}

// ---- URLs ----------------------------------------------------------------------------------------------

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

result<std::string> parse_port(std::string_view url, std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return fail(errc::invalid_argument, "{}: the port must be a number from 1 to 65535, not \"{}\"", url, text);
  }
  return std::to_string(value);
}

// host[:port] or [v6]:port, into `out`.
result<void> parse_authority(std::string_view url, std::string_view authority, endpoint& out) {
  std::string_view port_text;
  bool has_port = false;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail(errc::invalid_argument, "{}: an IPv6 address misses its ']'", url);
    out.host = std::string(authority.substr(1, close - 1));
    error_code ec;
    (void)net::ip::make_address_v6(out.host, ec);
    if (ec) {
      return fail(errc::invalid_argument, "{}: \"{}\" is not an IPv6 address", url, out.host);
    }
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return fail(errc::invalid_argument, "{}: unexpected \"{}\" after the address", url, rest);
    has_port = !rest.empty();
    if (has_port) port_text = rest.substr(1);
  } else {
    const std::size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      return fail(errc::invalid_argument, "{}: write an IPv6 address in brackets: http://[::1]:8000", url);
    }
    out.host = std::string(authority.substr(0, colon));
    has_port = colon != std::string_view::npos;
    if (has_port) port_text = authority.substr(colon + 1);
    if (!std::all_of(out.host.begin(), out.host.end(), is_name_char)) {
      return fail(errc::invalid_argument, "{}: \"{}\" is not a host name or address", url, out.host);
    }
  }
  if (out.host.empty()) return fail(errc::invalid_argument, "{}: no host; expected http://HOST[:PORT][/PATH]", url);
  if (!has_port) {
    out.port = "80";
    return ok();
  }
  QCODER_TRY(out.port, parse_port(url, port_text));
  return ok();
}

// ---- the reply body ------------------------------------------------------------------------------------

// Where the body of a reply goes: to on_data as it arrives, or into `text` up to `limit` bytes. Set once
// the header is read (the parser hands over no body bytes before that).
struct reply_sink {
  const std::function<bool(std::string_view)>* on_data = nullptr;  // null: collect
  std::size_t limit = 0;
  std::string text;
  bool refused = false;    // on_data returned false
  bool too_large = false;  // the collected body passed the limit
};

// A Beast body type whose reader writes into a reply_sink; it sees every framing (Content-Length, chunked,
// until close) already de-chunked.
struct sink_body {
  using value_type = reply_sink;

  class reader {
   public:
    template <bool is_request, class Fields>
    reader(bhttp::header<is_request, Fields>&, value_type& sink) : sink_(sink) {}

    void init(const boost::optional<std::uint64_t>&, error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      ec = {};
      std::size_t used = 0;
      for (const net::const_buffer b : beast::buffers_range_ref(buffers)) {
        used += b.size();
        if (!take({static_cast<const char*>(b.data()), b.size()})) {
          ec = net::error::operation_aborted;  // ends the read; the sink's flags say why
          break;
        }
      }
      return used;
    }

    void finish(error_code& ec) { ec = {}; }

   private:
    bool take(std::string_view piece) {
      if (piece.empty()) return true;
      if (sink_.on_data) {
        sink_.refused = !(*sink_.on_data)(piece);
        return !sink_.refused;
      }
      sink_.too_large = sink_.text.size() + piece.size() > sink_.limit;
      if (!sink_.too_large) sink_.text.append(piece);
      return !sink_.too_large;
    }
    value_type& sink_;
  };
};

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || seconds < 0) return std::nullopt;
  return std::chrono::seconds(std::min<std::int64_t>(seconds, 24 * 3600));  // an HTTP date: not supported
}

// ---- one call ------------------------------------------------------------------------------------------

class call {
 public:
  call(const endpoint& server, const client_options& options)
      : server_(server), options_(options), stream_(io_), resolver_(io_) {
    parser_.header_limit(max_header_bytes);
    // The sink enforces the limit, and only on collected bodies. Not boost::none: Beast 1.74 compares a
    // Content-Length with an empty optional as if the limit were below every length.
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  result<client_reply> run(std::string_view method, std::string_view path, const header_list& headers,
                           std::string_view body, const std::function<bool(std::string_view)>& on_data,
                           std::stop_token stop);

 private:
  // Starts one asynchronous operation (`start(handler)`) and runs the io_context until it completes.
  template <typename Start>
  error_code wait(Start start) {
    error_code result = net::error::would_block;
    start([&result](error_code ec, auto&&...) { result = ec; });
    io_.restart();
    io_.run();
    return result;
  }

  // Runs on the io_context (posted by the stop callback): every pending operation completes aborted.
  void close_now() {
    resolver_.cancel();
    stream_.close();
  }

  result<void> connect();
  result<void> write_request(std::string_view method, std::string_view path, const header_list& headers,
                             std::string_view body);
  result<void> read_header();
  result<void> read_body();
  error failure(error_code ec, std::string_view during) const;
  error cancelled() const { return fail(errc::cancelled, "the request to {} was cancelled", server_.text()); }

  const endpoint& server_;
  const client_options& options_;
  net::io_context io_;
  beast::tcp_stream stream_;
  tcp::resolver resolver_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<sink_body> parser_;
  std::atomic<bool> stopped_{false};
};

result<client_reply> call::run(std::string_view method, std::string_view path, const header_list& headers,
                               std::string_view body, const std::function<bool(std::string_view)>& on_data,
                               std::stop_token stop) {
  // Declared after io_ (a member): destroyed first, so no close is posted to a dead io_context.
  std::stop_callback on_stop(stop, [this] {
    stopped_ = true;
    net::post(io_, [this] { close_now(); });
  });
  if (stopped_) return cancelled();
  QCODER_CHECK(connect());
  QCODER_CHECK(write_request(method, path, headers, body));
  QCODER_CHECK(read_header());

  const auto& head = parser_.get();
  client_reply reply;
  reply.status = static_cast<int>(head.result_int());
  if (const auto it = head.find(bhttp::field::content_type); it != head.end()) reply.content_type = std::string(sv(it->value()));
  if (const auto it = head.find(bhttp::field::retry_after); it != head.end()) reply.retry_after = parse_retry_after(sv(it->value()));

  reply_sink& sink = parser_.get().body();
  const bool streamed = on_data && reply.status >= 200 && reply.status < 300;
  sink.on_data = streamed ? &on_data : nullptr;
  sink.limit = options_.max_body_bytes;
  if (!streamed && parser_.content_length() && *parser_.content_length() > options_.max_body_bytes) {
    return fail(errc::parse_error, "the reply from {} declares {} bytes, more than the limit of {}", server_.text(),
                *parser_.content_length(), options_.max_body_bytes);
  }
  QCODER_CHECK(read_body());
  reply.body = std::move(sink.text);
  return reply;
}

result<void> call::connect() {
  tcp::resolver::results_type addresses;
  error_code ec = wait([&](auto handler) {
    resolver_.async_resolve(server_.host, server_.port, [&, handler](error_code e, tcp::resolver::results_type r) mutable {
      addresses = std::move(r);
      handler(e);
    });
  });
  if (stopped_) return cancelled();
  if (ec) {
    return fail(errc::unavailable, "the server at {} is not reachable: cannot resolve {} ({})", server_.text(),
                server_.host, ec.message());
  }
  stream_.expires_after(options_.connect_timeout);
  ec = wait([&](auto handler) { stream_.async_connect(addresses, handler); });
  if (ec == beast::error::timeout && !stopped_) {
    return fail(errc::unavailable, "the server at {} is not reachable: no connection within {}", server_.text(),
                duration_text(options_.connect_timeout));
  }
  if (ec || stopped_) return failure(ec, "is not reachable");
  return ok();
}

result<void> call::write_request(std::string_view method, std::string_view path, const header_list& headers,
                                 std::string_view body) {
  std::string target = server_.base_path + std::string(path);
  if (target.empty()) target = "/";
  bhttp::request<bhttp::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(target);
  req.version(11);
  const bool v6 = server_.host.find(':') != std::string::npos;
  const std::string host = v6 ? "[" + server_.host + "]" : server_.host;
  req.set(bhttp::field::host, server_.port == "80" ? host : host + ":" + server_.port);
  req.set(bhttp::field::user_agent, "qcoder/" QCODER_VERSION);
  req.set(bhttp::field::accept, "application/json, text/event-stream");
  req.set(bhttp::field::connection, "close");
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::string(body);
  req.prepare_payload();
  if (method == "HEAD") parser_.skip(true);

  stream_.expires_after(options_.idle_timeout);
  const error_code ec = wait([&](auto handler) { bhttp::async_write(stream_, req, handler); });
  if (ec || stopped_) return failure(ec, "did not take the request");
  return ok();
}

result<void> call::read_header() {
  while (!parser_.is_header_done()) {
    stream_.expires_after(options_.idle_timeout);
    const error_code ec = wait([&](auto handler) { bhttp::async_read_some(stream_, buffer_, parser_, handler); });
    if (ec || stopped_) return failure(ec, "did not answer");
  }
  return ok();
}

result<void> call::read_body() {
  const reply_sink& sink = parser_.get().body();
  while (!parser_.is_done()) {
    stream_.expires_after(options_.idle_timeout);
    const error_code ec = wait([&](auto handler) { bhttp::async_read_some(stream_, buffer_, parser_, handler); });
    if (stopped_) return cancelled();
    if (sink.refused) return ok();  // the caller has what it wanted; the connection closes with the call
    if (sink.too_large) {
      return fail(errc::parse_error, "the reply from {} is larger than the limit of {} bytes", server_.text(),
                  options_.max_body_bytes);
    }
    if (ec) return failure(ec, "did not finish its reply");
  }
  return ok();
}

error call::failure(error_code ec, std::string_view during) const {
  if (stopped_) return cancelled();
  const std::string server = server_.text();
  if (ec == beast::error::timeout) {
    return fail(errc::unavailable, "the server at {} {} for {}", server, during, duration_text(options_.idle_timeout));
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
    return fail(errc::parse_error, "the reply from {} is not valid HTTP: {}", server, ec.message());
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == net::error::eof) {
    return fail(errc::unavailable, "the server at {} closed the connection before a complete reply", server);
  }
  return fail(errc::unavailable, "the server at {} {}: {}", server, during, to_lower(ec.message()));
}

}  // namespace

std::string endpoint::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}{}", v6 ? "[" : "", host, v6 ? "]" : "", port, base_path);
}

result<endpoint> parse_endpoint(std::string_view url) {
  const std::string lower = to_lower(url.substr(0, 8));
  if (lower.starts_with("https://")) {
    return fail(errc::invalid_argument,
                "{}: https is not supported; reach the server through a TLS-terminating proxy or an SSH tunnel on "
                "localhost, and give its http:// URL",
                url);
  }
  if (!lower.starts_with("http://")) return fail(errc::invalid_argument, "{}: expected http://HOST[:PORT][/PATH]", url);
  const std::string_view rest = url.substr(7);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail(errc::invalid_argument, "{}: a base URL has no query or fragment", url);
  }
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) {
    return fail(errc::invalid_argument, "{}: user info in the URL is not supported; pass the API key separately", url);
  }
  endpoint out;
  QCODER_CHECK(parse_authority(url, authority, out));
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (std::any_of(path.begin(), path.end(), [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
    return fail(errc::invalid_argument, "{}: the path has spaces or control characters", url);
  }
  out.base_path = std::string(path);
  return out;
}

result<client_reply> send(const endpoint& server, std::string_view method, std::string_view path,
                          const header_list& headers, std::string_view body,
                          const std::function<bool(std::string_view)>& on_data, std::stop_token stop,
                          const client_options& options) {
  call one(server, options);
  return one.run(method, path, headers, body, on_data, std::move(stop));
}

}  // namespace qcoder::http
