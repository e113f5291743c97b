// The language server over the remote backend when the server goes away: a scripted OpenAI-compatible
// server streams the first piece of a completion and then dies. The editor gets the request's error and a
// message naming the server, the status turns offline; once a server listens on that port again (the
// real `qcoder serve`, on the tiny model), completions work again and the editor hears it is back.
#include <atomic>
#include <chrono>
#include <mutex>

#include <gtest/gtest.h>

#include "http/server.h"
#include "tests/lsp/server/test_client.h"

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
using testing::test_client;
using namespace std::chrono_literals;

const char* source = "def add(a, b):\n    \n\nprint(add(1, 2))\n";
const char* uri = "file:///w/calc.py";

json completion_params(int line, int character) {
  return {{"textDocument", {{"uri", uri}}}, {"position", {{"line", line}, {"character", character}}}, {"context", {{"triggerKind", 1}}}};
}

bool method_is(const json& m, std::string_view method) { return m.value("method", "") == method; }

TEST(RemoteBackend, AServerThatDiesMidRequestIsReportedAndTheServerRecoversWhenItIsBack) {
  // A server that streams one piece of an answer, then hangs until it is stopped.
  std::mutex mutex;
  std::vector<http::responder> hanging;  // kept open until the server stops
  std::atomic<int> completions{0};
  http::server_options options;
  options.port = 0;
  auto dying = http::server::start(options, [&](http::request request, http::responder reply) {
    if (request.path != "/v1/completions") return reply.send(404, "application/json", "{}");
    ++completions;
    reply.begin_stream(200);
    reply.write("data: {\"choices\":[{\"index\":0,\"text\":\"return a + b\\n\",\"finish_reason\":null}]}\n\n");
    std::lock_guard lock(mutex);
    hanging.push_back(std::move(reply));
  });
  ASSERT_TRUE(dying) << dying.err().message;
  const std::uint16_t port = (*dying)->port();
  const std::string url = fmt::format("http://127.0.0.1:{}/v1", port);

  session_options session;
  session.settings.debounce = 0ms;
  service::remote_options remote;
  remote.model = "tiny";  // the scripted server lists no models
  test_client c(session, {}, [&] { return testing_support::load_remote_engine(url, remote); });
  c.start();
  c.wait_for([](const json& m) { return method_is(m, "qcoder/status") && m["params"].value("state", "") == "idle"; });
  c.open(uri, source);

  c.request(1, "textDocument/inlineCompletion", completion_params(1, 4));
  // The first piece arrived (streamed to the editor); then the server dies.
  const json partial = c.wait_for([](const json& m) { return method_is(m, "qcoder/inlineCompletionPartial"); });
  ASSERT_FALSE(partial.is_null());
  EXPECT_EQ(partial["params"]["text"].get<std::string>().rfind("return", 0), 0u) << partial.dump();
  (*dying)->stop();
  const json failed = c.reply(1);
  ASSERT_TRUE(failed.contains("error")) << failed.dump();
  EXPECT_NE(failed["error"]["message"].get<std::string>().find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << failed.dump();
  const json shown = c.wait_for([](const json& m) { return method_is(m, "window/showMessage") && m["params"]["type"] == 1; });
  ASSERT_FALSE(shown.is_null());
  EXPECT_NE(shown["params"]["message"].get<std::string>().find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << shown.dump();
  EXPECT_FALSE(c.wait_for([](const json& m) { return method_is(m, "qcoder/status") && m["params"].value("state", "") == "offline"; }).is_null());

  // While nothing listens, a request fails at once with the same clear error (and no second message).
  c.request(2, "textDocument/inlineCompletion", completion_params(1, 4));
  const json refused = c.reply(2);
  ASSERT_TRUE(refused.contains("error")) << refused.dump();
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("not reachable"), std::string::npos) << refused.dump();

  // The real server comes up on that port: completions work again, and the editor is told.
  auto back = testing_support::tiny_server::start(port);
  ASSERT_TRUE(back) << back.err().message;
  c.request(3, "textDocument/inlineCompletion", completion_params(1, 4));
  const json served = c.reply(3);
  ASSERT_TRUE(served.contains("result")) << served.dump();
  EXPECT_TRUE(served["result"]["items"].is_array());
  EXPECT_FALSE(c.wait_for([](const json& m) { return method_is(m, "window/showMessage") && m["params"]["type"] == 3; }).is_null());
  std::size_t errors_shown = 0;
  for (const json& m : c.sent("window/showMessage")) errors_shown += m["params"]["type"] == 1 ? 1 : 0;
  EXPECT_EQ(errors_shown, 1u);  // once per outage
  EXPECT_EQ(completions.load(), 1);
}

}  // namespace
}  // namespace qcoder::lsp
