// JSON-RPC dispatch as a client sees it: messages in, checked messages out.
#include "lsp/jsonrpc/connection.h"

#include <thread>

#include <gtest/gtest.h>

namespace qcoder::jsonrpc {
namespace {

struct transcript {
  std::vector<json> sent;
  std::mutex mutex;
  connection rpc{[this](std::string body) {
    std::lock_guard lock(mutex);
    sent.push_back(json::parse(body));
  }};
  json last() {
    std::lock_guard lock(mutex);
    return sent.empty() ? json() : sent.back();
  }
};

TEST(Connection, ErrorsFollowTheSpec) {
  transcript t;
  t.rpc.on_request("echo", [](const json& params, reply r) { r.result(params); });
  t.rpc.receive("{not json");
  EXPECT_EQ(t.last()["error"]["code"], codes::parse_error);
  EXPECT_TRUE(t.last()["id"].is_null());
  t.rpc.receive(R"({"id":1,"method":"echo"})");  // no "jsonrpc"
  EXPECT_EQ(t.last()["error"]["code"], codes::invalid_request);
  EXPECT_EQ(t.last()["id"], 1);
  t.rpc.receive(R"({"jsonrpc":"2.0","id":2,"method":"nope"})");
  EXPECT_EQ(t.last()["error"]["code"], codes::method_not_found);
  t.rpc.receive(R"({"jsonrpc":"2.0","id":3,"method":"echo","params":5})");
  EXPECT_EQ(t.last()["error"]["code"], codes::invalid_params);
  t.rpc.receive(R"({"jsonrpc":"2.0","id":{"x":1},"method":"echo"})");
  EXPECT_EQ(t.last()["error"]["code"], codes::invalid_request);
  t.rpc.receive(R"([1,2])");
  EXPECT_EQ(t.last()["error"]["code"], codes::invalid_request);
  const std::size_t before = t.sent.size();
  t.rpc.receive(R"({"jsonrpc":"2.0","method":"unknown/notification","params":{}})");
  EXPECT_EQ(t.sent.size(), before);  // ignored, no reply
  t.rpc.receive(R"({"jsonrpc":"2.0","id":"s","method":"echo","params":{"a":[1]}})");
  EXPECT_EQ(t.last(), json::parse(R"({"jsonrpc":"2.0","id":"s","result":{"a":[1]}})"));
}

TEST(Connection, ReplyOnceAndNeverSilent) {
  transcript t;
  t.rpc.on_request("twice", [](const json&, reply r) {
    r.result(1);
    r.result(2);
  });
  t.rpc.on_request("drop", [](const json&, reply) {});
  t.rpc.receive(R"({"jsonrpc":"2.0","id":1,"method":"twice"})");
  ASSERT_EQ(t.sent.size(), 1u);
  EXPECT_EQ(t.sent[0]["result"], 1);
  t.rpc.receive(R"({"jsonrpc":"2.0","id":2,"method":"drop"})");
  ASSERT_EQ(t.sent.size(), 2u);
  EXPECT_EQ(t.sent[1]["error"]["code"], codes::internal_error);
  EXPECT_EQ(t.rpc.in_flight(), 0u);
}

TEST(Connection, CancelRequestStopsAHandlerOnAnotherThread) {
  transcript t;
  std::thread worker;
  t.rpc.on_request("slow", [&worker](const json&, reply r) {
    worker = std::thread([r = std::move(r)]() mutable {
      while (!r.stop().stop_requested()) std::this_thread::yield();
      r.error(codes::request_cancelled, "cancelled");
    });
  });
  t.rpc.receive(R"({"jsonrpc":"2.0","id":7,"method":"slow"})");
  EXPECT_EQ(t.rpc.in_flight(), 1u);
  t.rpc.receive(R"({"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":7}})");
  worker.join();
  EXPECT_EQ(t.last()["id"], 7);
  EXPECT_EQ(t.last()["error"]["code"], codes::request_cancelled);
}

TEST(Connection, DuplicateIdInFlightIsRefused) {
  transcript t;
  std::vector<reply> held;
  t.rpc.on_request("hold", [&held](const json&, reply r) { held.push_back(std::move(r)); });
  t.rpc.receive(R"({"jsonrpc":"2.0","id":1,"method":"hold"})");
  t.rpc.receive(R"({"jsonrpc":"2.0","id":1,"method":"hold"})");
  EXPECT_EQ(t.last()["error"]["code"], codes::invalid_request);
  held.clear();  // the held reply answers with an internal error when dropped
  EXPECT_EQ(t.last()["error"]["code"], codes::internal_error);
}

TEST(Connection, ResponsesToOurRequestsReachTheirCallback) {
  transcript t;
  json got;
  rpc_error err;
  t.rpc.request("workspace/configuration", json::object(), [&](const json* result, const rpc_error* e) {
    if (result != nullptr) got = *result;
    if (e != nullptr) err = *e;
  });
  const json id = t.last()["id"];
  t.rpc.receive(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", {1, 2}}}.dump());
  EXPECT_EQ(got, json({1, 2}));
  t.rpc.request("window/workDoneProgress/create", json::object(), [&](const json*, const rpc_error* e) {
    if (e != nullptr) err = *e;
  });
  t.rpc.receive(json{{"jsonrpc", "2.0"}, {"id", t.last()["id"]}, {"error", {{"code", -1}, {"message", "no"}}}}.dump());
  EXPECT_EQ(err.code, -1);
  EXPECT_EQ(err.message, "no");
}

}  // namespace
}  // namespace qcoder::jsonrpc
