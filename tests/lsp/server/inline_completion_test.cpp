// textDocument/inlineCompletion as transcripts against the tiny model, through the real server pieces:
// items for an open document, the errors a client can provoke, and a newer request cancelling an older one.
#include "lsp/server/inline_completion.h"

#include <filesystem>
#include <future>

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
namespace codes = jsonrpc::codes;
using namespace std::chrono_literals;

const std::filesystem::path model_dir = std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next" / "bf16";

result<service::loaded_engine> load_tiny() {
  engine::model_options options;
  options.threads = 1;
  QCODER_TRY(std::unique_ptr<engine::qwen3_next> model, engine::qwen3_next::load(model_dir, options));
  service::loaded_engine e;
  e.cache = std::make_unique<engine::prefix_cache>(model->config(), engine::prefix_cache_options{32u << 20});
  e.model = std::move(model);
  return e;
}

struct session {
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<json> sent;
  std::shared_future<void> gate;
  jsonrpc::connection rpc{[this](std::string body) {
    {
      std::lock_guard lock(mutex);
      sent.push_back(json::parse(body));
    }
    arrived.notify_all();
  }};
  language_server server{rpc};
  open_documents docs{rpc, server};
  model_host host{rpc, [this] {
                    if (gate.valid()) gate.wait();
                    return load_tiny();
                  }};
  inline_completion completions{rpc, server, docs, host};

  explicit session(std::shared_future<void> load_gate = {}) : gate(std::move(load_gate)) {
    server.set_on_initialized([this] { host.start(false); });
    rpc.receive(json{{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"}, {"params", json::object()}}.dump());
    rpc.receive(json{{"jsonrpc", "2.0"}, {"method", "initialized"}, {"params", json::object()}}.dump());
  }
  ~session() {
    completions.stop();
    host.stop();
  }
  void open(const std::string& uri, const std::string& text) {
    rpc.receive(json{{"jsonrpc", "2.0"},
                     {"method", "textDocument/didOpen"},
                     {"params", {{"textDocument", {{"uri", uri}, {"languageId", "python"}, {"version", 1}, {"text", text}}}}}}
                    .dump());
  }
  void complete(int id, const std::string& uri, int line, int character, int trigger = 2) {
    rpc.receive(json{{"jsonrpc", "2.0"},
                     {"id", id},
                     {"method", "textDocument/inlineCompletion"},
                     {"params",
                      {{"textDocument", {{"uri", uri}}},
                       {"position", {{"line", line}, {"character", character}}},
                       {"context", {{"triggerKind", trigger}}}}}}
                    .dump());
  }
  // The reply to request `id`, waiting for it.
  json reply(int id) {
    std::unique_lock lock(mutex);
    json found;
    arrived.wait_for(lock, 30s, [&] {
      for (const json& m : sent) {
        if (m.contains("id") && m["id"] == id && !m.contains("method")) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }
};

const char* source = "def add(a, b):\n    \n\nprint(add(1, 2))\n";

TEST(InlineCompletion, ItemsForAnOpenDocument) {
  session s;
  s.open("file:///w/calc.py", source);
  s.complete(1, "file:///w/calc.py", 1, 4, /*Invoked=*/1);
  const json r = s.reply(1);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  ASSERT_TRUE(r["result"]["items"].is_array());
  EXPECT_LE(r["result"]["items"].size(), 3u);
  for (const json& item : r["result"]["items"]) {
    EXPECT_TRUE(item["insertText"].is_string());
    EXPECT_EQ(item["range"]["start"], (json{{"line", 1}, {"character", 4}}));
  }
}

TEST(InlineCompletion, BadRequestsGetClearErrors) {
  session s;
  s.open("file:///w/calc.py", source);
  s.complete(1, "file:///w/other.py", 0, 0);
  EXPECT_EQ(s.reply(1)["error"]["code"], codes::invalid_params);
  s.complete(2, "file:///w/calc.py", 99, 0);
  const json out_of_range = s.reply(2);
  EXPECT_EQ(out_of_range["error"]["code"], codes::invalid_params);
  EXPECT_NE(out_of_range["error"]["message"].get<std::string>().find("params.position"), std::string::npos);
  s.rpc.receive(R"({"jsonrpc":"2.0","id":3,"method":"textDocument/inlineCompletion","params":{"textDocument":{"uri":"file:///w/calc.py"},"position":{"line":-1,"character":0}}})");
  EXPECT_NE(s.reply(3)["error"]["message"].get<std::string>().find("params.position.line"), std::string::npos);
}

TEST(InlineCompletion, ANewerRequestCancelsTheOlderOne) {
  std::promise<void> release;
  session s(release.get_future().share());  // the model waits until both requests are in
  s.open("file:///w/calc.py", source);
  s.complete(1, "file:///w/calc.py", 1, 4);
  s.complete(2, "file:///w/calc.py", 1, 4);
  release.set_value();
  EXPECT_EQ(s.reply(1)["error"]["code"], codes::request_cancelled);
  EXPECT_TRUE(s.reply(2).contains("result"));
}

}  // namespace
}  // namespace qcoder::lsp
