// The remote completions client against our own HTTP server, scripted to answer as vLLM or `qcoder serve`
// would: streams of completion chunks, usage, busy replies, errors and streams that break. Waits are on the
// server's disconnected() and on futures; the backoffs are a few milliseconds.
#include "service/remote_completions.h"

#include <atomic>
#include <future>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/scripted_server.h"

namespace qcoder::service {
namespace {
using namespace std::chrono_literals;
using json = nlohmann::json;
using testing_support::scripted_server;
using testing_support::wait_disconnected;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// One completion chunk as `qcoder serve` writes it.
std::string text_event(std::string_view text, const char* finish_reason = nullptr) {
  json chunk = {{"id", "cmpl-1"}, {"object", "text_completion"}, {"created", 1}, {"model", "m"}};
  chunk["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_reason ? json(finish_reason) : json()}}});
  chunk["usage"] = nullptr;
  return "data: " + chunk.dump() + "\n\n";
}

std::string usage_event(int prompt, int completion, int cached) {
  json chunk = {{"id", "cmpl-1"}, {"object", "text_completion"}, {"created", 1}, {"model", "m"}, {"choices", json::array()}};
  chunk["usage"] = {{"prompt_tokens", prompt},
                    {"completion_tokens", completion},
                    {"total_tokens", prompt + completion},
                    {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  return "data: " + chunk.dump() + "\n\n";
}

constexpr std::string_view done_event = "data: [DONE]\n\n";

// Streams `events` as one SSE reply.
void stream_events(http::responder reply, const std::vector<std::string>& events, bool end = true) {
  reply.begin_stream(200, "text/event-stream");
  for (const std::string& e : events) reply.write(e);
  if (end) reply.end();
}

std::unique_ptr<remote_completions> client_of(const scripted_server& server, remote_options options = {}) {
  options.url = server.url("/v1");
  if (options.model.empty()) options.model = "m";
  const remote_options defaults;
  if (options.backoff == defaults.backoff) options.backoff = 5ms;  // tests wait milliseconds, not seconds
  if (options.max_backoff == defaults.max_backoff) options.max_backoff = 20ms;
  auto made = remote_completions::create(std::move(options));
  if (!made) ADD_FAILURE() << made.err().message;
  return made ? std::move(made).value() : nullptr;
}

struct collected {
  std::vector<std::string> pieces;
  std::string text() const {
    std::string all;
    for (const std::string& p : pieces) all += p;
    return all;
  }
  std::function<bool(std::string_view)> sink() {
    return [this](std::string_view t) {
      pieces.emplace_back(t);
      return true;
    };
  }
};

TEST(RemoteCompletions, CreateAddsV1ToAUrlWithoutAPath) {
  auto made = remote_completions::create({.url = "http://gpu-box:8000"});
  ASSERT_TRUE(made) << made.err().message;
  EXPECT_EQ((*made)->server().base_path, "/v1");
  EXPECT_EQ((*made)->server().text(), "http://gpu-box:8000/v1");
  made = remote_completions::create({.url = "http://gpu-box:8000/api/"});
  ASSERT_TRUE(made);
  EXPECT_EQ((*made)->server().base_path, "/api");
  made = remote_completions::create({.url = "https://gpu-box"});
  ASSERT_FALSE(made);
  EXPECT_EQ(made.err().code, errc::invalid_argument);
}

TEST(RemoteCompletions, StreamsTextAndReadsTheUsage) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("def "), text_event(""), text_event("f():"), text_event(" pass", "length"),
                          usage_event(12, 3, 8), std::string(done_event)});
  });
  auto client = client_of(server, {.api_key = "secret"});
  ASSERT_TRUE(client);
  collected got;
  remote_request request;
  request.prompt = "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>";
  request.max_tokens = 3;
  request.seed = 42;
  request.stop = {"\n\n", "<|endoftext|>"};
  auto done = client->stream(request, got.sink());
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(got.pieces, (std::vector<std::string>{"def ", "f():", " pass"})) << "no empty pieces";
  EXPECT_EQ(done->finish_reason, "length");
  EXPECT_EQ(done->prompt_tokens, 12u);
  EXPECT_EQ(done->completion_tokens, 3u);
  EXPECT_EQ(done->cached_tokens, 8);
  EXPECT_EQ(done->attempts, 1);
  EXPECT_GT(done->first_text_seconds, 0.0);
  EXPECT_GE(done->seconds, done->first_text_seconds);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/v1/completions");
  EXPECT_EQ(requests[0].header("authorization"), "Bearer secret");
  const json body = json::parse(requests[0].body);
  EXPECT_EQ(body["model"], "m");
  EXPECT_EQ(body["prompt"], request.prompt);
  EXPECT_EQ(body["max_tokens"], 3);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_TRUE(body["top_p"].is_number());
  EXPECT_EQ(body["seed"], 42);
  EXPECT_EQ(body["stop"], json::array({"\n\n", "<|endoftext|>"}));
  EXPECT_EQ(body["skip_special_tokens"], false);
}

TEST(RemoteCompletions, SendsSamplingWhenNotGreedyAndAtMostFourStopStrings) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("x", "stop"), std::string(done_event)});
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  remote_request request;
  request.prompt = "p";
  request.greedy = false;
  request.temperature = 0.8f;
  request.top_p = 0.9f;
  request.stop = {"a", "", "b", "c", "d", "e"};
  collected got;
  ASSERT_TRUE(client->stream(request, got.sink()));
  const json body = json::parse(server.requests().at(0).body);
  EXPECT_EQ(body["temperature"], 0.8);
  EXPECT_EQ(body["top_p"], 0.9);
  EXPECT_FALSE(body.contains("seed"));
  EXPECT_EQ(body["stop"], json::array({"a", "b", "c", "d"})) << "empty ones dropped, the OpenAI limit of four kept";

  request.stop.clear();
  ASSERT_TRUE(client->stream(request, got.sink()));
  EXPECT_FALSE(json::parse(server.requests().at(1).body).contains("stop"));
}

TEST(RemoteCompletions, CutsAStopStringSplitAcrossChunks) {
  // "<|file_sep|>" arrives in three chunks; the fifth stop string, which the server was not told, in two.
  scripted_server server([](const http::request& req, http::responder reply) {
    if (json::parse(req.body)["prompt"] == "first") {
      stream_events(reply, {text_event("return x<|fi"), text_event("le_se"), text_event("p|>more"), text_event("tail"),
                            std::string(done_event)});
    } else {
      stream_events(reply, {text_event("a <"), text_event("<"), text_event("STOP"), text_event(">> b"),
                            std::string(done_event)});
    }
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  remote_request request;
  request.prompt = "first";
  request.stop = {"<|file_sep|>", "\n\n"};
  collected first;
  auto done = client->stream(request, first.sink());
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(first.text(), "return x");
  for (const std::string& piece : first.pieces) EXPECT_FALSE(contains(piece, "<|")) << piece;
  EXPECT_EQ(done->finish_reason, "stop");

  request.prompt = "second";
  request.stop = {"1", "2", "3", "4", "<<STOP>>"};
  collected second;
  done = client->stream(request, second.sink());
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(second.text(), "a ");
  EXPECT_EQ(done->finish_reason, "stop");
}

TEST(RemoteCompletions, HandsOutHeldBackTextThatNeverBecameAStopString) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("x <|fi"), text_event("ne", "length"), std::string(done_event)});
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p", .stop = {"<|file_sep|>"}}, got.sink());
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(got.text(), "x <|fine");
  EXPECT_EQ(done->finish_reason, "length");
}

TEST(RemoteCompletions, RetriesABusyServer) {
  std::atomic<int> calls = 0;
  scripted_server server([&](const http::request&, http::responder reply) {
    const int call = ++calls;
    if (call == 1) return reply.send(503, "application/json", http::error_json("overloaded", "t", "c"));
    if (call == 2) {  // a Retry-After past max_backoff: capped
      return reply.send(429, "application/json", http::error_json("slow down", "t", "c"), {{"Retry-After", "5"}});
    }
    stream_events(reply, {text_event("ok", "stop"), std::string(done_event)});
  });
  auto client = client_of(server, {.backoff = 10ms, .max_backoff = 30ms});
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(done->attempts, 3);
  EXPECT_EQ(got.text(), "ok");
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_GE(done->seconds, 0.040) << "waits of 10 ms (backoff) and 30 ms (Retry-After, capped)";
  EXPECT_LT(done->seconds, 4.0) << "the Retry-After of 5 s was not capped";
}

TEST(RemoteCompletions, GivesUpOnAServerThatStaysBusy) {
  scripted_server server([](const http::request&, http::responder reply) {
    reply.send(429, "application/json", http::error_json("rate limited", "rate_limit", "busy"));
  });
  auto client = client_of(server, {.max_attempts = 3});
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::unavailable);
  EXPECT_TRUE(contains(done.err().message, "is busy (HTTP 429) after 3 tries")) << done.err().message;
  EXPECT_TRUE(contains(done.err().message, "rate limited")) << done.err().message;
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(RemoteCompletions, AStopEndsTheWaitBeforeARetry) {
  testing_support::signal answered;
  scripted_server server([&](const http::request&, http::responder reply) {
    reply.send(503, "application/json", http::error_json("busy", "t", "c"), {{"Retry-After", "3600"}});
    answered.raise();
  });
  auto client = client_of(server, {.max_backoff = std::chrono::hours(1)});
  ASSERT_TRUE(client);
  std::stop_source stop;
  std::jthread stopper([&] {
    // The client has no hook for "now waiting"; reading a local 503 takes well under the 100 ms given. Were
    // the stop to come sooner, the call would still be cancelled, only in the HTTP exchange instead.
    if (answered.wait()) std::this_thread::sleep_for(100ms);
    stop.request_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink(), stop.get_token());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::cancelled) << done.err().message;
  EXPECT_TRUE(contains(done.err().message, "waiting to retry")) << done.err().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(RemoteCompletions, ExplainsAMissingOrRejectedApiKey) {
  scripted_server server([](const http::request& req, http::responder reply) {
    reply.send(req.header("authorization") ? 403 : 401, "application/json",
               http::error_json("Invalid API key", "authentication_error", "invalid_api_key"));
  });
  auto anonymous = client_of(server);
  ASSERT_TRUE(anonymous);
  collected got;
  auto done = anonymous->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::invalid_argument);
  EXPECT_TRUE(contains(done.err().message, "needs an API key: set --api-key-env")) << done.err().message;
  EXPECT_TRUE(contains(done.err().message, "HTTP 401")) << done.err().message;

  auto keyed = client_of(server, {.api_key = "wrong"});
  ASSERT_TRUE(keyed);
  done = keyed->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::invalid_argument);
  EXPECT_TRUE(contains(done.err().message, "rejected the API key")) << done.err().message;
  EXPECT_EQ(server.requests().size(), 2u) << "no retry";
}

TEST(RemoteCompletions, PassesOnTheServersMessageForOtherErrors) {
  scripted_server server([](const http::request& req, http::responder reply) {
    const json body = json::parse(req.body);
    if (body["prompt"] == "long") {
      return reply.send(400, "application/json",
                        http::error_json("This model's maximum context length is 4096 tokens", "invalid_request_error",
                                         "context_length_exceeded"));
    }
    reply.send(500, "text/plain", "Internal Server Error");
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "long"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::invalid_argument);
  EXPECT_TRUE(contains(done.err().message, "HTTP 400")) << done.err().message;
  EXPECT_TRUE(contains(done.err().message, "maximum context length is 4096")) << done.err().message;

  done = client->stream({.prompt = "crash"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::unavailable);
  EXPECT_TRUE(contains(done.err().message, "HTTP 500")) << done.err().message;
  EXPECT_TRUE(contains(done.err().message, "Internal Server Error")) << done.err().message;
}

TEST(RemoteCompletions, AnErrorInTheStreamIsAnError) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("partial"),
                          "data: " + http::error_json("the model crashed", "server_error", "internal") + "\n\n",
                          std::string(done_event)});
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::unavailable);
  EXPECT_TRUE(contains(done.err().message, "the model crashed")) << done.err().message;
  EXPECT_EQ(got.text(), "partial");
}

TEST(RemoteCompletions, AStreamWithoutItsEndIsCutOff) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("half")}, /*end=*/false);  // the responder goes: the stream is cut off
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::unavailable);
  EXPECT_EQ(got.text(), "half");
  EXPECT_EQ(server.requests().size(), 1u) << "no retry after text";

  // A body that ends properly but without "data: [DONE]" is cut off too.
  scripted_server ends_early([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("half")});
  });
  auto other = client_of(ends_early);
  ASSERT_TRUE(other);
  done = other->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::unavailable);
  EXPECT_TRUE(contains(done.err().message, "cut off")) << done.err().message;
}

TEST(RemoteCompletions, AWholeReplyInsteadOfAStreamIsAParseError) {
  scripted_server server([](const http::request&, http::responder reply) {
    reply.send(200, "application/json", R"({"choices":[{"index":0,"text":"x","finish_reason":"stop"}]})");
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::parse_error);
  EXPECT_TRUE(contains(done.err().message, "application/json instead of a stream")) << done.err().message;
}

TEST(RemoteCompletions, AnEventThatIsNotJsonIsAParseError) {
  scripted_server server([](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("ok"), "data: <html>oops</html>\n\n", std::string(done_event)});
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  collected got;
  auto done = client->stream({.prompt = "p"}, got.sink());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::parse_error);
  EXPECT_TRUE(contains(done.err().message, "<html>oops</html>")) << done.err().message;
}

TEST(RemoteCompletions, OnTextFalseClosesTheStream) {
  std::promise<bool> disconnected;
  scripted_server server([&](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("one"), text_event("two")}, /*end=*/false);
    disconnected.set_value(wait_disconnected(reply));
    reply.end();
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  std::vector<std::string> pieces;
  auto done = client->stream({.prompt = "p"}, [&](std::string_view t) {
    pieces.emplace_back(t);
    return false;
  });
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(done->finish_reason, "cancelled");
  EXPECT_EQ(pieces, std::vector<std::string>{"one"});
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get()) << "the server kept generating for nobody";
}

TEST(RemoteCompletions, AStopTokenEndsTheStreamAsCancelled) {
  std::promise<bool> disconnected;
  scripted_server server([&](const http::request&, http::responder reply) {
    stream_events(reply, {text_event("one")}, /*end=*/false);
    disconnected.set_value(wait_disconnected(reply));
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  std::stop_source stop;
  auto done = client->stream({.prompt = "p"}, [&](std::string_view) { return stop.request_stop(), true; },
                             stop.get_token());
  ASSERT_FALSE(done);
  EXPECT_EQ(done.err().code, errc::cancelled);
  auto future = disconnected.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

TEST(RemoteCompletions, AsksTheServerForItsModelOnce) {
  scripted_server server([](const http::request& req, http::responder reply) {
    if (req.path == "/v1/models") {
      return reply.send(200, "application/json",
                        R"({"object":"list","data":[{"id":"Qwen/Qwen3-Coder-Next","object":"model"},{"id":"other"}]})");
    }
    stream_events(reply, {text_event("x", "stop"), std::string(done_event)});
  });
  remote_options options;
  options.url = server.url("/v1");
  auto made = remote_completions::create(options);
  ASSERT_TRUE(made) << made.err().message;
  remote_completions& client = **made;
  auto model = client.model();
  ASSERT_TRUE(model) << model.err().message;
  EXPECT_EQ(*model, "Qwen/Qwen3-Coder-Next");
  collected got;
  ASSERT_TRUE(client.stream({.prompt = "p"}, got.sink()));
  ASSERT_TRUE(client.stream({.prompt = "p"}, got.sink()));
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].path, "/v1/models");
  EXPECT_EQ(json::parse(requests[1].body)["model"], "Qwen/Qwen3-Coder-Next");
  EXPECT_EQ(json::parse(requests[2].body)["model"], "Qwen/Qwen3-Coder-Next");
}

TEST(RemoteCompletions, SaysWhenTheModelListIsUnusable) {
  scripted_server server([](const http::request&, http::responder reply) {
    reply.send(200, "application/json", R"({"object":"list","data":[]})");
  });
  remote_options options;
  options.url = server.url();
  auto made = remote_completions::create(options);
  ASSERT_TRUE(made);
  auto model = (*made)->model();
  ASSERT_FALSE(model);
  EXPECT_EQ(model.err().code, errc::parse_error);
  EXPECT_TRUE(contains(model.err().message, "lists no model")) << model.err().message;
}

TEST(RemoteCompletions, SeveralStreamsAtOnce) {
  scripted_server server([](const http::request& req, http::responder reply) {
    const std::string prompt = json::parse(req.body)["prompt"];
    stream_events(reply, {text_event(prompt + "-a"), text_event(prompt + "-b", "stop"), std::string(done_event)});
  });
  auto client = client_of(server);
  ASSERT_TRUE(client);
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < 8; ++i) {
    results.push_back(std::async(std::launch::async, [&client, i] {
      collected got;
      auto done = client->stream({.prompt = std::to_string(i)}, got.sink());
      return done ? got.text() : done.err().message;
    }));
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(results[i].get(), fmt::format("{0}-a{0}-b", i));
}

}  // namespace
}  // namespace qcoder::service
