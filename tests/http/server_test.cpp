// The HTTP server driven by a raw TCP client, so that tests can send what no HTTP library would: partial
// headers, garbage, oversized declarations, and clients that vanish mid-stream. Replies that come "later"
// come from a worker thread standing in for the inference thread. Waits are on futures and condition
// variables; the only fixed durations are the server's own (small) timeouts and the read deadlines that
// turn a server bug into a failure instead of a hang.
#include "http/server.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace qcoder::http {
namespace {
namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds read_deadline = 10s;  // longer means the server hangs a client

// A client on a raw socket. Every read has a deadline, so a server that never answers fails the test.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  void send(std::string_view bytes) { net::write(socket_, net::buffer(bytes)); }

  // Appends what arrives within `within` to the buffer. False at end of stream, reset, or timeout.
  bool fill(std::chrono::milliseconds within = read_deadline) {
    std::array<char, 64 * 1024> chunk;
    boost::system::error_code result;
    std::size_t got = 0;
    bool done = false;
    socket_.async_read_some(net::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
      result = ec;
      got = n;
      done = true;
    });
    io_.restart();
    io_.run_for(within);
    if (!done) {
      socket_.cancel();
      io_.restart();
      io_.run();  // the read completes: cancelled, or with what raced in just before
      if (result) {
        timed_out_ = true;
        return false;
      }
    }
    if (result) {
      closed_ = true;
      return false;
    }
    pending_.append(chunk.data(), got);
    return true;
  }

  // Reads until the server closes the connection; false on timeout. What arrives meanwhile is kept.
  bool wait_closed(std::chrono::milliseconds within = read_deadline) {
    const auto until = clock::now() + within;
    while (fill(std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()))) {
    }
    return closed_;
  }

  struct response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;                            // de-chunked
    std::vector<std::string> chunks;             // as framed by the server, for chunked bodies
  };

  // Reads one response. `head_request`: the reply to HEAD has no body whatever its header says.
  std::optional<response> read_response(bool head_request = false) {
    std::size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    response out;
    std::string head = pending_.substr(0, end + 2);
    pending_.erase(0, end + 4);
    const std::size_t first_eol = head.find("\r\n");
    const std::string status_line = head.substr(0, first_eol);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return std::nullopt;
    out.status = std::stoi(status_line.substr(9, 3));
    for (std::size_t at = first_eol + 2; at < head.size();) {
      const std::size_t eol = head.find("\r\n", at);
      const std::string line = head.substr(at, eol - at);
      const std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      at = eol + 2;
    }
    if (head_request || out.status < 200 || out.status == 204 || out.status == 304) return out;
    if (auto te = out.headers.find("transfer-encoding"); te != out.headers.end() && te->second == "chunked") {
      while (true) {
        std::size_t eol;
        while ((eol = pending_.find("\r\n")) == std::string::npos) {
          if (!fill()) return std::nullopt;
        }
        const std::size_t size = std::stoul(pending_.substr(0, eol), nullptr, 16);
        if (!read_exactly(eol + 2 + size + 2)) return std::nullopt;
        if (pending_.substr(eol + 2 + size, 2) != "\r\n") return std::nullopt;
        if (size == 0) {
          pending_.erase(0, eol + 4);
          return out;
        }
        out.chunks.push_back(pending_.substr(eol + 2, size));
        out.body += out.chunks.back();
        pending_.erase(0, eol + 2 + size + 2);
      }
    }
    if (out.headers.count("content-length")) {
      const std::size_t size = std::stoul(out.headers["content-length"]);
      if (!read_exactly(size)) return std::nullopt;
      out.body = pending_.substr(0, size);
      pending_.erase(0, size);
      return out;
    }
    wait_closed();  // the body runs to the end of the connection
    out.body = std::move(pending_);
    pending_.clear();
    return out;
  }

  // Closes with a reset (SO_LINGER 0) rather than a FIN: the rudest way to leave.
  void reset() {
    socket_.set_option(net::socket_base::linger(true, 0));
    socket_.close();
  }
  void close() { socket_.close(); }

  const std::string& pending() const { return pending_; }
  bool timed_out() const { return timed_out_; }

 private:
  bool read_exactly(std::size_t n) {
    while (pending_.size() < n) {
      if (!fill()) return false;
    }
    return true;
  }

  net::io_context io_;
  tcp::socket socket_;
  std::string pending_;
  bool closed_ = false;
  bool timed_out_ = false;
};

// Stands in for the inference thread: runs posted work in order on a thread of its own.
class worker {
 public:
  worker() : thread_([this](std::stop_token stop) { main(stop); }) {}
  ~worker() {
    thread_.request_stop();
    changed_.notify_all();
  }
  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(fn));
    }
    changed_.notify_all();
  }

 private:
  void main(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    while (true) {
      if (!changed_.wait(lock, stop, [&] { return !queue_.empty(); })) return;  // stopped
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<std::function<void()>> queue_;
  std::jthread thread_;  // last: it stops before the queue goes
};

server_options test_options() {
  server_options options;
  options.port = 0;
  return options;
}

std::unique_ptr<server> start_server(server_options options, handler on_request) {
  auto started = server::start(std::move(options), std::move(on_request));
  if (!started) {
    ADD_FAILURE() << started.err().message;
    return nullptr;
  }
  return std::move(started).value();
}

void echo(request req, responder reply) {
  const std::string header(req.header("x-test").value_or("-"));
  reply.send(200, "text/plain", req.method + " " + req.path + " " + req.query + " " + header + " " + req.body,
             {{"X-Peer", req.peer}});
}

// The error body the server writes on its own, as OpenAI clients read it.
void expect_error_body(const raw_client::response& response, std::string_view code) {
  EXPECT_EQ(response.headers.at("content-type"), "application/json");
  const auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(body.is_object()) << response.body;
  EXPECT_EQ(body["error"]["code"], code) << response.body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << response.body;
  EXPECT_TRUE(body["error"]["type"].is_string()) << response.body;
}

template <typename T>
T get_within(std::future<T>& future, std::chrono::milliseconds within = read_deadline) {
  if (future.wait_for(within) != std::future_status::ready) throw std::runtime_error("timed out waiting on a future");
  return future.get();
}

// --- requests and replies -------------------------------------------------------------------------------

TEST(HttpServer, EchoesGetAndPost) {
  auto srv = start_server(test_options(), echo);
  ASSERT_NE(srv, nullptr);
  ASSERT_NE(srv->port(), 0);
  raw_client client(srv->port());
  client.send("GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nX-TEST: shout\r\n\r\n");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "GET /hello x=1 shout ");
  EXPECT_EQ(got->headers["content-type"], "text/plain");
  EXPECT_EQ(got->headers["date"].size(), std::string_view("Sun, 06 Nov 1994 08:49:37 GMT").size());
  EXPECT_EQ(got->headers["x-peer"].rfind("127.0.0.1:", 0), 0u);

  client.send("POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
  got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "POST /v1/echo  - hello");
}

TEST(HttpServer, KeepsTheConnectionAliveAndAnswersPipelinedRequestsInOrder) {
  auto srv = start_server(test_options(), echo);
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
  auto first = client.read_response();
  client.send("GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
  auto second = client.read_response();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, "GET /one  - ");
  EXPECT_EQ(second->body, "GET /two  - ");
  EXPECT_EQ(first->headers["x-peer"], second->headers["x-peer"]);  // one connection

  // Two requests in one packet, the second with a chunked body; then one that asks to close.
  client.send(
      "GET /three HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /four HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
      "GET /five HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto third = client.read_response();
  auto fourth = client.read_response();
  auto fifth = client.read_response();
  ASSERT_TRUE(third && fourth && fifth);
  EXPECT_EQ(third->body, "GET /three  - ");
  EXPECT_EQ(fourth->body, "POST /four  - abcde");
  EXPECT_EQ(fifth->body, "GET /five  - ");
  EXPECT_EQ(fifth->headers["connection"], "close");
  EXPECT_TRUE(client.wait_closed());
}

TEST(HttpServer, TheHandlerCanReplyLaterFromAnotherThread) {
  worker inference;
  std::promise<responder> handed_over;
  auto srv = start_server(test_options(), [&](request, responder reply) { handed_over.set_value(reply); });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  auto future = handed_over.get_future();
  responder reply = get_within(future);
  EXPECT_FALSE(client.fill(50ms)) << "nothing may arrive before the reply";
  inference.post([reply]() mutable { reply.send(201, "application/json", R"({"ok":true})"); });
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->body, R"({"ok":true})");
}

TEST(HttpServer, StreamsServerSentEventsInChunks) {
  worker inference;
  auto srv = start_server(test_options(), [&](request, responder reply) {
    inference.post([reply]() mutable {
      ASSERT_TRUE(reply.begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}));
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(reply.write(fmt::format("data: {{\"n\":{}}}\n\n", i)));
      ASSERT_TRUE(reply.write("data: [DONE]\n\n"));
      reply.end();
      EXPECT_FALSE(reply.write("late")) << "the stream has ended";
    });
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  for (int round = 0; round < 2; ++round) {  // the connection serves another request after a stream
    client.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
    auto got = client.read_response();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->headers["content-type"], "text/event-stream");
    EXPECT_EQ(got->headers["cache-control"], "no-cache");
    ASSERT_EQ(got->chunks.size(), 6u);
    EXPECT_EQ(got->chunks[2], "data: {\"n\":2}\n\n");
    EXPECT_EQ(got->chunks[5], "data: [DONE]\n\n");
  }
}

TEST(HttpServer, AStreamToAnHttp10ClientEndsWithTheConnection) {
  auto srv = start_server(test_options(), [&](request, responder reply) {
    reply.begin_stream(200, "text/plain");
    reply.write("one ");
    reply.write("two");
    reply.end();
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.0\r\n\r\n");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->headers.count("transfer-encoding"), 0u);
  EXPECT_EQ(got->body, "one two");
}

TEST(HttpServer, HeadKeepsTheHeadersAndDropsTheBody) {
  auto srv = start_server(test_options(), [](request req, responder reply) {
    reply.send(200, "text/plain", "hello " + req.method);
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = client.read_response(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->headers["content-length"], "10");
  // No body bytes may follow: the next reply must parse from its first byte.
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto get = client.read_response();
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "hello GET");
}

TEST(HttpServer, AnswersExpect100ContinueBeforeTheBody) {
  auto srv = start_server(test_options(), echo);
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  auto interim = client.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  client.send("data");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "POST /upload  - data");

  client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: something-else\r\n\r\n");
  got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 417);
}

TEST(HttpServer, ReplyHeadersThatWouldBreakTheHeaderAreDropped) {
  auto srv = start_server(test_options(), [](request, responder reply) {
    reply.send(200, "text/plain", "ok",
               {{"X-Fine", "yes"}, {"X-Evil", "a\r\nSet-Cookie: injected=1"}, {"Bad Name", "v"},
                {"Content-Length", "999"}, {"Connection", "close"}});
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->headers["x-fine"], "yes");
  EXPECT_EQ(got->headers.count("x-evil"), 0u);
  EXPECT_EQ(got->headers.count("set-cookie"), 0u);
  EXPECT_EQ(got->headers.count("connection"), 0u);
  EXPECT_EQ(got->headers["content-length"], "2");
  EXPECT_EQ(got->body, "ok");
}

// --- the reply-once contract ----------------------------------------------------------------------------

TEST(HttpServer, ADroppedOrThrowingHandlerGets500AndTheConnectionGoesOn) {
  auto srv = start_server(test_options(), [](request req, responder reply) {
    if (req.path == "/drop") return;
    if (req.path == "/throw") throw std::runtime_error("handler bug");
    reply.send(200, "text/plain", "first");
    reply.send(200, "text/plain", "second");  // dropped: one reply per request
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  for (const char* path : {"/drop", "/throw"}) {
    client.send(fmt::format("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", path));
    auto got = client.read_response();
    ASSERT_TRUE(got) << path;
    EXPECT_EQ(got->status, 500) << path;
    expect_error_body(*got, "internal_error");
  }
  client.send("GET /twice HTTP/1.1\r\nHost: t\r\n\r\n");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "first");
  client.send("GET /twice HTTP/1.1\r\nHost: t\r\n\r\n");
  got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "first");
  EXPECT_FALSE(client.fill(50ms)) << "the second reply must not reach the wire";
}

TEST(HttpServer, AStreamDroppedBeforeEndIsCutOff) {
  auto srv = start_server(test_options(), [](request, responder reply) {
    reply.begin_stream(200);
    reply.write("data: partial\n\n");
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(client.wait_closed());
  const std::string& raw = client.pending();
  EXPECT_NE(raw.find("data: partial"), std::string::npos);
  EXPECT_EQ(raw.find("0\r\n\r\n"), std::string::npos) << "an incomplete stream must not look complete";
}

// --- clients that leave ---------------------------------------------------------------------------------

TEST(HttpServer, AClientLeavingMidStreamFiresDisconnectedAndFailsWrites) {
  for (bool rude : {false, true}) {
    std::promise<responder> handed_over;
    auto srv = start_server(test_options(), [&](request, responder reply) {
      reply.begin_stream(200);
      reply.write("data: first\n\n");
      handed_over.set_value(reply);
    });
    ASSERT_NE(srv, nullptr);
    raw_client client(srv->port());
    client.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    auto future = handed_over.get_future();
    responder reply = get_within(future);
    while (client.pending().find("data: first") == std::string::npos) ASSERT_TRUE(client.fill());

    std::promise<void> fired;
    std::stop_callback on_leave(reply.disconnected(), [&] { fired.set_value(); });
    EXPECT_TRUE(reply.write("data: second\n\n"));
    if (rude) {
      client.reset();
    } else {
      client.close();
    }
    auto fired_future = fired.get_future();
    ASSERT_EQ(fired_future.wait_for(read_deadline), std::future_status::ready) << "rude=" << rude;
    EXPECT_FALSE(reply.write("data: third\n\n"));
    reply.end();  // harmless
  }
}

TEST(HttpServer, AClientLeavingBeforeTheReplyFiresDisconnected) {
  std::promise<responder> handed_over;
  auto srv = start_server(test_options(), [&](request, responder reply) { handed_over.set_value(reply); });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto future = handed_over.get_future();
  responder reply = get_within(future);
  EXPECT_FALSE(reply.disconnected().stop_requested());
  std::promise<void> fired;
  std::stop_callback on_leave(reply.disconnected(), [&] { fired.set_value(); });
  client.close();
  auto fired_future = fired.get_future();
  ASSERT_EQ(fired_future.wait_for(read_deadline), std::future_status::ready);
  EXPECT_FALSE(reply.begin_stream(200));
  reply.send(200, "text/plain", "nobody listens");  // a no-op, not a crash
}

TEST(HttpServer, AClientThatStopsReadingIsTreatedAsGone) {
  server_options options = test_options();
  options.max_queued_bytes = 64 * 1024;
  std::promise<responder> handed_over;
  auto srv = start_server(options, [&](request, responder reply) { handed_over.set_value(reply); });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());  // never reads
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto future = handed_over.get_future();
  responder reply = get_within(future);
  ASSERT_TRUE(reply.begin_stream(200));
  const std::string piece(16 * 1024, 'x');
  // Bytes wait in the queue once the kernel's socket buffers are full (or while the producer outpaces the
  // I/O thread); either way, past the limit the client counts as gone.
  int writes = 0;
  while (reply.write(piece) && writes < 100'000) ++writes;
  EXPECT_LT(writes, 100'000) << "write() never reported the slow client";
  EXPECT_TRUE(reply.disconnected().stop_requested());
}

// --- limits ---------------------------------------------------------------------------------------------

struct counting_handler {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  void operator()(request req, responder reply) const {
    ++*calls;
    echo(std::move(req), std::move(reply));
  }
};

TEST(HttpServer, ABodyOverTheLimitIs413WithoutReadingIt) {
  server_options options = test_options();
  options.max_body_bytes = 1000;
  counting_handler handler;
  auto srv = start_server(options, handler);
  ASSERT_NE(srv, nullptr);
  {  // 100 MB announced, nothing sent: the answer cannot wait for the body
    raw_client client(srv->port());
    client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
    auto got = client.read_response();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 413);
    EXPECT_EQ(got->headers["connection"], "close");
    expect_error_body(*got, "request_too_large");
    EXPECT_TRUE(client.wait_closed());
  }
  {  // the same with Expect: 100-continue gets no 100 first
    raw_client client(srv->port());
    client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n");
    auto got = client.read_response();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 413);
  }
  {  // a chunked body is counted as it arrives
    raw_client client(srv->port());
    const std::string chunk_600(600, 'a');
    client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk_600 + "\r\n258\r\n" +
                chunk_600 + "\r\n0\r\n\r\n");
    auto got = client.read_response();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 413);
  }
  {  // at the limit is fine
    raw_client client(srv->port());
    client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'b'));
    auto got = client.read_response();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, 200);
  }
  EXPECT_EQ(*handler.calls, 1);
}

TEST(HttpServer, AHeaderOverTheLimitIs431) {
  counting_handler handler;
  auto srv = start_server(test_options(), handler);
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n");
  auto got = client.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 431);
  expect_error_body(*got, "header_too_large");
  EXPECT_TRUE(client.wait_closed());
  EXPECT_EQ(*handler.calls, 0);
}

TEST(HttpServer, AHeaderOrBodyThatNeverEndsIs408) {
  server_options options = test_options();
  options.header_timeout = 300ms;
  options.body_timeout = 300ms;
  counting_handler handler;
  auto srv = start_server(options, handler);
  ASSERT_NE(srv, nullptr);
  for (const char* partial : {"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 1",  // slowloris
                              "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"}) {
    raw_client client(srv->port());
    client.send(partial);
    const auto sent = clock::now();
    auto got = client.read_response();
    ASSERT_TRUE(got) << partial;
    EXPECT_EQ(got->status, 408);
    EXPECT_GE(clock::now() - sent, 250ms);
    expect_error_body(*got, "request_timeout");
    EXPECT_TRUE(client.wait_closed());
  }
  EXPECT_EQ(*handler.calls, 0);
}

TEST(HttpServer, AnIdleConnectionIsClosedWithoutAReply) {
  server_options options = test_options();
  options.idle_timeout = 200ms;
  auto srv = start_server(options, echo);
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(client.read_response());
  EXPECT_TRUE(client.wait_closed());
  EXPECT_EQ(client.pending(), "");
}

TEST(HttpServer, GarbageIs400) {
  counting_handler handler;
  auto srv = start_server(test_options(), handler);
  ASSERT_NE(srv, nullptr);
  for (const char* garbage : {"\x16\x03\x01\x02\x01\x01\xfc\x03\x03\r\n\r\n",  // like a TLS hello
                              "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                              "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "hello\r\n\r\n"}) {
    raw_client client(srv->port());
    client.send(garbage);
    auto got = client.read_response();
    ASSERT_TRUE(got) << garbage;
    EXPECT_EQ(got->status, 400) << garbage;
    expect_error_body(*got, "bad_request");
    EXPECT_TRUE(client.wait_closed());
  }
  EXPECT_EQ(*handler.calls, 0);
}

TEST(HttpServer, ConnectionsOverTheLimitAre503) {
  server_options options = test_options();
  options.max_connections = 1;
  auto srv = start_server(options, echo);
  ASSERT_NE(srv, nullptr);
  raw_client first(srv->port());
  first.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(first.read_response());  // answered, so counted
  raw_client second(srv->port());
  second.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto got = second.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 503);
  expect_error_body(*got, "server_busy");
  // The first connection is unaffected.
  first.send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
  got = first.read_response();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
}

// --- stopping -------------------------------------------------------------------------------------------

TEST(HttpServer, StopWithAStreamOpenReturnsPromptlyAndTheResponderOutlivesTheServer) {
  std::promise<responder> handed_over;
  auto srv = start_server(test_options(), [&](request, responder reply) {
    reply.begin_stream(200);
    reply.write("data: first\n\n");
    handed_over.set_value(reply);
  });
  ASSERT_NE(srv, nullptr);
  raw_client client(srv->port());
  client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto future = handed_over.get_future();
  responder reply = get_within(future);
  while (client.pending().find("data: first") == std::string::npos) ASSERT_TRUE(client.fill());

  const auto before = clock::now();
  srv->stop();
  EXPECT_LT(clock::now() - before, 2s);
  EXPECT_TRUE(reply.disconnected().stop_requested());
  EXPECT_TRUE(client.wait_closed());
  srv.reset();
  EXPECT_FALSE(reply.write("data: after\n\n"));
  reply.end();
}

TEST(HttpServer, StopsWithIdleAndHalfSentConnections) {
  auto srv = start_server(test_options(), echo);
  ASSERT_NE(srv, nullptr);
  raw_client idle(srv->port());
  raw_client half(srv->port());
  half.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(idle.read_response());
  const auto before = clock::now();
  srv.reset();
  EXPECT_LT(clock::now() - before, 2s);
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(half.wait_closed());
}

TEST(HttpServer, FailsToStartOnABusyPortOrBadOptions) {
  auto srv = start_server(test_options(), echo);
  ASSERT_NE(srv, nullptr);
  server_options same_port = test_options();
  same_port.port = srv->port();
  auto second = server::start(same_port, echo);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.err().code, errc::io_error);
  server_options no_threads = test_options();
  no_threads.threads = 0;
  EXPECT_FALSE(server::start(no_threads, echo));
  EXPECT_FALSE(server::start(test_options(), nullptr));
}

// --- several I/O threads --------------------------------------------------------------------------------

TEST(HttpServer, ManyClientsOnSeveralThreadsWithRepliesFromAWorker) {
  server_options options = test_options();
  options.threads = 3;
  worker inference;
  auto srv = start_server(options, [&](request req, responder reply) {
    inference.post([req = std::move(req), reply]() mutable {
      if (req.path == "/stream") {
        reply.begin_stream(200, "text/plain");
        for (char c : req.body) reply.write(std::string(1, c));
        reply.end();
      } else {
        reply.send(200, "text/plain", req.body);
      }
    });
  });
  ASSERT_NE(srv, nullptr);
  std::vector<std::thread> clients;
  std::atomic<int> good = 0;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      raw_client client(srv->port());
      for (int i = 0; i < 20; ++i) {
        const std::string body = fmt::format("client {} request {}", c, i);
        const char* path = i % 2 == 0 ? "/stream" : "/whole";
        client.send(fmt::format("POST {} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{}", path, body.size(), body));
        auto got = client.read_response();
        if (got && got->status == 200 && got->body == body) ++good;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(good, 8 * 20);
}

}  // namespace
}  // namespace qcoder::http
