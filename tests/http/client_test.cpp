// The HTTP client against our own server (scripted per test) and, for replies our server would never send
// (a body that runs until close, garbage, a cut-off body), against a raw socket. Waits are on signals and
// the server's disconnected(); the only fixed durations are the client's own small timeouts.
#include "http/client.h"

#include <atomic>
#include <future>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "tests/support/scripted_server.h"

namespace qcoder::http {
namespace {
namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;
using testing_support::scripted_server;
using testing_support::signal;
using testing_support::wait_disconnected;
using clock_type = std::chrono::steady_clock;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// ---- URLs ----------------------------------------------------------------------------------------------

TEST(ParseEndpoint, ReadsHostPortAndPath) {
  auto e = parse_endpoint("http://gpu-box:8000/v1");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->host, "gpu-box");
  EXPECT_EQ(e->port, "8000");
  EXPECT_EQ(e->base_path, "/v1");
  EXPECT_EQ(e->text(), "http://gpu-box:8000/v1");

  e = parse_endpoint("HTTP://example.com");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->host, "example.com");
  EXPECT_EQ(e->port, "80");
  EXPECT_EQ(e->base_path, "");

  e = parse_endpoint("http://127.0.0.1:8080/api/v1///");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->base_path, "/api/v1");

  e = parse_endpoint("http://localhost:1/");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->port, "1");
  EXPECT_EQ(e->base_path, "");

  e = parse_endpoint("http://[::1]:8000/v1");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, "8000");
  EXPECT_EQ(e->text(), "http://[::1]:8000/v1");

  e = parse_endpoint("http://[fe80::1]");
  ASSERT_TRUE(e) << e.err().message;
  EXPECT_EQ(e->host, "fe80::1");
  EXPECT_EQ(e->port, "80");
}

TEST(ParseEndpoint, SaysWhatIsWrongWithABadUrl) {
  const auto error_of = [](std::string_view url) {
    auto e = parse_endpoint(url);
    EXPECT_FALSE(e) << url;
    if (e) return std::string();
    EXPECT_EQ(e.err().code, errc::invalid_argument) << url;
    return e.err().message;
  };
  const std::string https = error_of("https://api.example.com/v1");
  EXPECT_TRUE(contains(https, "https")) << https;
  EXPECT_TRUE(contains(https, "proxy")) << https;
  EXPECT_TRUE(contains(https, "SSH tunnel")) << https;
  EXPECT_TRUE(contains(error_of("http://"), "no host"));
  EXPECT_TRUE(contains(error_of("http://:8000/v1"), "no host"));
  EXPECT_TRUE(contains(error_of("http://host:http/"), "port"));
  EXPECT_TRUE(contains(error_of("http://host:0"), "port"));
  EXPECT_TRUE(contains(error_of("http://host:65536"), "port"));
  EXPECT_TRUE(contains(error_of("http://host:"), "port"));
  EXPECT_TRUE(contains(error_of("http://::1:8000"), "brackets"));
  EXPECT_TRUE(contains(error_of("http://[::1:8000"), "]"));
  EXPECT_TRUE(contains(error_of("http://[not-v6]:8000"), "IPv6"));
  EXPECT_TRUE(contains(error_of("gpu-box:8000"), "expected http://"));
  EXPECT_TRUE(contains(error_of("ftp://host"), "expected http://"));
  EXPECT_TRUE(contains(error_of("http://user:pw@host"), "user info"));
  EXPECT_TRUE(contains(error_of("http://host/v1?x=1"), "query"));
  EXPECT_TRUE(contains(error_of("http://ho st/"), "host"));
  EXPECT_TRUE(contains(error_of("http://host/a b"), "path"));
}

// ---- whole replies -------------------------------------------------------------------------------------

TEST(HttpClient, SendsTheRequestAndReadsAContentLengthBody) {
  scripted_server server([](const request&, responder reply) {
    reply.send(201, "application/json", R"({"ok":true})");
  });
  ASSERT_TRUE(server.running());
  auto got = send(server.at("/v1"), "POST", "/completions", {{"Authorization", "Bearer k"}}, R"({"prompt":"x"})",
                  nullptr, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->body, R"({"ok":true})");
  EXPECT_EQ(got->content_type, "application/json");
  EXPECT_FALSE(got->retry_after);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const request& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/v1/completions");
  EXPECT_EQ(req.body, R"({"prompt":"x"})");
  EXPECT_EQ(req.header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.header("authorization"), "Bearer k");
  EXPECT_TRUE(req.header("user-agent").value_or("").starts_with("qcoder/"));
  EXPECT_TRUE(req.header("accept").has_value());
}

TEST(HttpClient, CollectsTheBodyOfAnErrorReplyInsteadOfStreamingIt) {
  scripted_server server([](const request&, responder reply) {
    reply.send(503, "application/json", R"({"error":{"message":"busy"}})", {{"Retry-After", "7"}});
  });
  int calls = 0;
  auto got = send(server.at(), "GET", "/v1/models", {}, "", [&](std::string_view) { return ++calls, true; }, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->body, R"({"error":{"message":"busy"}})");
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(got->retry_after);
  EXPECT_EQ(*got->retry_after, 7s);
  EXPECT_EQ(server.requests().at(0).header("content-type"), std::nullopt) << "no body, no Content-Type";
}

TEST(HttpClient, IgnoresARetryAfterDate) {
  scripted_server server([](const request&, responder reply) {
    reply.send(429, "text/plain", "slow down", {{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}});
  });
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(got->status, 429);
  EXPECT_FALSE(got->retry_after);
}

TEST(HttpClient, RefusesACollectedBodyPastTheLimit) {
  scripted_server server([](const request& req, responder reply) {
    if (req.path == "/whole") return reply.send(200, "text/plain", std::string(2000, 'x'));
    reply.begin_stream(req.path == "/error" ? 500 : 200, "text/plain");
    for (int i = 0; i < 20; ++i) reply.write(std::string(100, 'y'));
    reply.end();
  });
  client_options options;
  options.max_body_bytes = 1000;
  for (const char* path : {"/whole", "/chunked", "/error"}) {
    auto got = send(server.at(), "GET", path, {}, "", nullptr, {}, options);
    ASSERT_FALSE(got) << path;
    EXPECT_EQ(got.err().code, errc::parse_error) << path;
    EXPECT_TRUE(contains(got.err().message, "1000")) << got.err().message;
  }
  // A streamed body has no limit: it is not kept.
  std::size_t streamed = 0;
  auto got = send(server.at(), "GET", "/chunked", {}, "", [&](std::string_view d) { return streamed += d.size(), true; },
                  {}, options);
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(streamed, 2000u);
}

// ---- streams -------------------------------------------------------------------------------------------

TEST(HttpClient, HandsAChunkedBodyOverAsItArrives) {
  // The server writes the next piece only once the client has seen the previous one: several on_data calls.
  std::mutex mutex;
  std::condition_variable seen_changed;
  std::size_t seen = 0;
  const std::vector<std::string> pieces = {"data: one\n\n", "data: two\n\n", "data: three\n\n"};
  scripted_server server([&](const request&, responder reply) {
    ASSERT_TRUE(reply.begin_stream(200));
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      ASSERT_TRUE(reply.write(pieces[i]));
      std::unique_lock lock(mutex);
      ASSERT_TRUE(seen_changed.wait_for(lock, 5s, [&] { return seen > i; }));
    }
    reply.end();
  });
  std::vector<std::string> got_pieces;
  auto got = send(server.at(), "POST", "/stream", {}, "{}", [&](std::string_view data) {
    got_pieces.emplace_back(data);
    std::lock_guard lock(mutex);
    seen = got_pieces.size();
    seen_changed.notify_all();
    return true;
  }, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->content_type, "text/event-stream");
  EXPECT_TRUE(got->body.empty());
  EXPECT_EQ(got_pieces, pieces);
}

TEST(HttpClient, ClosesTheConnectionWhenOnDataSaysStop) {
  std::promise<bool> disconnected;
  scripted_server server([&](const request&, responder reply) {
    reply.begin_stream(200);
    reply.write("first");
    disconnected.set_value(wait_disconnected(reply));
  });
  std::string got_data;
  auto got = send(server.at(), "GET", "/", {}, "", [&](std::string_view data) {
    got_data += data;
    return false;
  }, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got_data, "first");
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get()) << "the server never saw the client leave";
}

TEST(HttpClient, AStopFromAnotherThreadEndsASlowStreamAtOnce) {
  std::promise<bool> disconnected;
  signal first_data;
  scripted_server server([&](const request&, responder reply) {
    reply.begin_stream(200);
    reply.write("data: 1\n\n");
    disconnected.set_value(wait_disconnected(reply));  // and nothing more: the stream hangs
  });
  std::stop_source stop;
  clock_type::time_point stopped_at;
  std::jthread stopper([&] {
    if (!first_data.wait()) return;
    stopped_at = clock_type::now();
    stop.request_stop();
  });
  auto got = send(server.at(), "GET", "/", {}, "", [&](std::string_view) { return first_data.raise(), true; },
                  stop.get_token());
  const auto returned_at = clock_type::now();
  stopper.join();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::cancelled) << got.err().message;
  EXPECT_LT(returned_at - stopped_at, 1s);
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

TEST(HttpClient, AStopEndsTheWaitForTheHeader) {
  std::promise<bool> disconnected;
  signal asked;
  scripted_server server([&](const request&, responder reply) {
    asked.raise();
    disconnected.set_value(wait_disconnected(reply));  // never answers
  });
  std::stop_source stop;
  std::jthread stopper([&] {
    if (asked.wait()) stop.request_stop();
  });
  const auto started = clock_type::now();
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, stop.get_token());
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::cancelled) << got.err().message;
  EXPECT_LT(clock_type::now() - started, 2s);
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

TEST(HttpClient, AStopRequestedBeforeTheCallSendsNothing) {
  scripted_server server([](const request&, responder reply) { reply.send(200, "text/plain", "hi"); });
  std::stop_source stop;
  stop.request_stop();
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, stop.get_token());
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::cancelled);
  // A request that did arrive would be answered at once; a second, unstopped call proves the server works.
  ASSERT_TRUE(send(server.at(), "GET", "/", {}, "", nullptr, {}));
  EXPECT_EQ(server.requests().size(), 1u);
}

// ---- failures ------------------------------------------------------------------------------------------

// A port nobody listens on: bound by the OS, then released.
std::string unused_port() {
  net::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const std::uint16_t port = acceptor.local_endpoint().port();
  acceptor.close();
  return std::to_string(port);
}

TEST(HttpClient, NamesTheServerThatRefusedTheConnection) {
  const endpoint nobody{"127.0.0.1", unused_port(), "/v1"};
  auto got = send(nobody, "GET", "/models", {}, "", nullptr, {});
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::unavailable);
  EXPECT_TRUE(contains(got.err().message, "the server at " + nobody.text() + " is not reachable")) << got.err().message;
  EXPECT_TRUE(contains(got.err().message, "refused")) << got.err().message;
}

TEST(HttpClient, GivesUpOnAServerThatDoesNotAnswer) {
  std::promise<bool> disconnected;
  scripted_server server([&](const request&, responder reply) { disconnected.set_value(wait_disconnected(reply)); });
  client_options options;
  options.idle_timeout = 200ms;
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, {}, options);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::unavailable);
  EXPECT_TRUE(contains(got.err().message, "did not answer for 200 ms")) << got.err().message;
  EXPECT_TRUE(contains(got.err().message, server.url())) << got.err().message;
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

TEST(HttpClient, GivesUpOnAStreamThatStalls) {
  scripted_server server([&](const request&, responder reply) {
    reply.begin_stream(200);
    reply.write("data: 1\n\n");
    wait_disconnected(reply);
  });
  client_options options;
  options.idle_timeout = 200ms;
  std::string data;
  auto got = send(server.at(), "GET", "/", {}, "", [&](std::string_view d) { return data += d, true; }, {}, options);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::unavailable);
  EXPECT_TRUE(contains(got.err().message, "200 ms")) << got.err().message;
  EXPECT_EQ(data, "data: 1\n\n");
}

// One connection accepted on a raw socket: the request's head is read, `reply` written, the socket closed.
class raw_server {
 public:
  explicit raw_server(std::string reply)
      : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        thread_([this, reply = std::move(reply)] {
          tcp::socket socket(io_);
          boost::system::error_code ec;
          acceptor_.accept(socket, ec);
          if (ec) return;
          std::string head;
          net::read_until(socket, net::dynamic_buffer(head), "\r\n\r\n", ec);
          net::write(socket, net::buffer(reply), ec);
        }) {}
  ~raw_server() { thread_.join(); }
  endpoint at() const { return {"127.0.0.1", std::to_string(acceptor_.local_endpoint().port()), ""}; }

 private:
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

TEST(HttpClient, ReadsABodyThatRunsUntilTheConnectionCloses) {
  raw_server server("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: b\n\n");
  std::string data;
  auto got = send(server.at(), "GET", "/", {}, "", [&](std::string_view d) { return data += d, true; }, {});
  ASSERT_TRUE(got) << got.err().message;
  EXPECT_EQ(data, "data: a\n\ndata: b\n\n");
}

TEST(HttpClient, ABodyCutShortIsAnError) {
  raw_server server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, {});
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::unavailable);
  EXPECT_TRUE(contains(got.err().message, "before a complete reply")) << got.err().message;
}

TEST(HttpClient, AServerThatClosesWithoutAnswerIsUnavailable) {
  raw_server server("");
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, {});
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::unavailable);
  EXPECT_TRUE(contains(got.err().message, "closed the connection")) << got.err().message;
}

TEST(HttpClient, AReplyThatIsNotHttpIsAParseError) {
  raw_server server("SSH-2.0-OpenSSH_9.6\r\n\r\n");
  auto got = send(server.at(), "GET", "/", {}, "", nullptr, {});
  ASSERT_FALSE(got);
  EXPECT_EQ(got.err().code, errc::parse_error) << got.err().message;
}

}  // namespace
}  // namespace qcoder::http
