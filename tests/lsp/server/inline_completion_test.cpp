// textDocument/inlineCompletion as transcripts against the tiny model, through the whole server session:
// items for an open document, the errors a client can provoke, cancellation by a newer request and by an
// edit, the adaptive debounce, selectedCompletionInfo, and the settings that turn completions off.
#include "lsp/server/inline_completion.h"

#include <thread>

#include <gtest/gtest.h>

#include "tests/lsp/server/test_client.h"

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
using testing::test_client;
namespace codes = jsonrpc::codes;
using namespace std::chrono_literals;

const char* source = "def add(a, b):\n    \n\nprint(add(1, 2))\n";
const char* uri = "file:///w/calc.py";

json completion_params(int line, int character, int trigger = 2) {
  return {{"textDocument", {{"uri", uri}}},
          {"position", {{"line", line}, {"character", character}}},
          {"context", {{"triggerKind", trigger}}}};
}

session_options no_debounce() {
  session_options o;
  o.settings.debounce = 0ms;
  return o;
}

TEST(InlineCompletion, ItemsForAnOpenDocument) {
  test_client c(no_debounce());
  const json init = c.start();
  EXPECT_EQ(init["result"]["capabilities"]["inlineCompletionProvider"], true);
  c.open(uri, source);
  c.request(1, "textDocument/inlineCompletion", completion_params(1, 4, /*Invoked=*/1));
  const json r = c.reply(1);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  ASSERT_TRUE(r["result"]["items"].is_array());
  EXPECT_LE(r["result"]["items"].size(), 3u);
  for (const json& item : r["result"]["items"]) {
    EXPECT_TRUE(item["insertText"].is_string());
    EXPECT_EQ(item["range"]["start"], (json{{"line", 1}, {"character", 4}}));
  }
  // The status bar heard busy, then idle with the request's figures.
  const json idle = c.wait_for([](const json& m) {
    return m.value("method", "") == "qcoder/status" && m["params"].value("state", "") == "idle" && m["params"].contains("requests");
  });
  ASSERT_FALSE(idle.is_null());
  EXPECT_GT(idle["params"]["promptTokens"].get<int>(), 0);
  EXPECT_EQ(c.sent("qcoder/status").size() >= 3, true);  // loading, busy, idle
}

TEST(InlineCompletion, BadRequestsGetClearErrors) {
  test_client c(no_debounce());
  c.start();
  c.open(uri, source);
  json other = completion_params(0, 0);
  other["textDocument"]["uri"] = "file:///w/other.py";
  c.request(1, "textDocument/inlineCompletion", other);
  EXPECT_EQ(c.reply(1)["error"]["code"], codes::invalid_params);
  c.request(2, "textDocument/inlineCompletion", completion_params(99, 0));
  const json out_of_range = c.reply(2);
  EXPECT_EQ(out_of_range["error"]["code"], codes::invalid_params);
  EXPECT_NE(out_of_range["error"]["message"].get<std::string>().find("params.position"), std::string::npos);
  c.send(json::parse(R"({"jsonrpc":"2.0","id":3,"method":"textDocument/inlineCompletion","params":{"textDocument":{"uri":"file:///w/calc.py"},"position":{"line":-1,"character":0}}})"));
  EXPECT_NE(c.reply(3)["error"]["message"].get<std::string>().find("params.position.line"), std::string::npos);
  c.request(4, "textDocument/inlineCompletion", completion_params(1, 4, 7));
  EXPECT_NE(c.reply(4)["error"]["message"].get<std::string>().find("triggerKind"), std::string::npos);
}

TEST(InlineCompletion, ANewerRequestCancelsTheOlderOne) {
  std::promise<void> release;
  test_client c(no_debounce(), release.get_future().share());  // the model waits until both requests are in
  c.start();
  c.open(uri, source);
  c.request(1, "textDocument/inlineCompletion", completion_params(1, 4));
  c.request(2, "textDocument/inlineCompletion", completion_params(1, 4));
  release.set_value();
  EXPECT_EQ(c.reply(1)["error"]["code"], codes::request_cancelled);
  EXPECT_TRUE(c.reply(2).contains("result"));
}

TEST(InlineCompletion, AnEditCancelsTheCompletionInFlight) {
  std::promise<void> release;
  test_client c(no_debounce(), release.get_future().share());
  c.start();
  c.open(uri, source);
  c.request(1, "textDocument/inlineCompletion", completion_params(1, 4));
  c.notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                      {"contentChanges", {{{"range", {{"start", {{"line", 1}, {"character", 4}}}, {"end", {{"line", 1}, {"character", 4}}}}}, {"text", "r"}}}}});
  release.set_value();
  EXPECT_EQ(c.reply(1)["error"]["code"], codes::request_cancelled);
}

TEST(InlineCompletion, TheDebounceFollowsTheTypingRhythmUpToTheSetting) {
  session_options o;
  o.settings.debounce = 400ms;
  test_client c(o);
  c.start();
  c.open(uri, source);
  inline_completion& completions = c.session().completions();
  EXPECT_EQ(completions.debounce_for(uri), 200ms);  // no rhythm known yet: half the setting
  // Keystrokes at least 30 ms apart; each request cancels the one before while it still waits.
  for (int i = 1; i <= 6; ++i) {
    c.request(i, "textDocument/inlineCompletion", completion_params(1, 4));
    std::this_thread::sleep_for(30ms);
  }
  const auto learned = completions.debounce_for(uri);
  EXPECT_GE(learned, 37ms);  // a quarter longer than the median pause, which is at least 30 ms
  EXPECT_LE(learned, 400ms);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(c.reply(i)["error"]["code"], codes::request_cancelled) << i;
  EXPECT_TRUE(c.reply(6).contains("result"));
  // Invoked requests skip the debounce and leave the rhythm alone.
  c.request(7, "textDocument/inlineCompletion", completion_params(1, 4, 1));
  EXPECT_TRUE(c.reply(7).contains("result"));
  EXPECT_EQ(completions.debounce_for(uri), learned);
}

TEST(InlineCompletion, TheSelectedSuggestionIsContinued) {
  test_client c(no_debounce());
  c.start();
  c.open(uri, "import os\nos.pa\n");
  json params = completion_params(1, 5, 1);
  params["context"]["selectedCompletionInfo"] = {
      {"range", {{"start", {{"line", 1}, {"character", 3}}}, {"end", {{"line", 1}, {"character", 5}}}}}, {"text", "path"}};
  c.request(1, "textDocument/inlineCompletion", params);
  const json r = c.reply(1);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  for (const json& item : r["result"]["items"]) {
    EXPECT_TRUE(item["insertText"].get<std::string>().starts_with("path")) << item.dump();
    EXPECT_EQ(item["range"]["start"], (json{{"line", 1}, {"character", 3}}));
    EXPECT_EQ(item["range"]["end"], (json{{"line", 1}, {"character", 5}}));
  }
  // A selected range that does not end at the position is a client error.
  params["context"]["selectedCompletionInfo"]["range"]["end"]["character"] = 4;
  c.request(2, "textDocument/inlineCompletion", params);
  EXPECT_EQ(c.reply(2)["error"]["code"], codes::invalid_params);
}

TEST(InlineCompletion, SettingsFromTheClientApply) {
  test_client c(no_debounce());
  c.answers["workspace/configuration"] = [](const json&) { return json::array({{{"maxTokens", 7}, {"contextTokens", 1024}}}); };
  c.start({{"capabilities", {{"workspace", {{"configuration", true}}}}},
           {"initializationOptions", {{"model", "/models/qwen"}, {"enable", {{"python", false}}}, {"maxTokens", "many"}}}});
  // initializationOptions reach the loader; a bad field is reported and ignored.
  const json warning = c.wait_for([](const json& m) { return m.value("method", "") == "window/showMessage"; });
  EXPECT_NE(warning["params"]["message"].get<std::string>().find("qcoder.maxTokens"), std::string::npos);
  c.open(uri, source);
  c.request(1, "textDocument/inlineCompletion", completion_params(1, 4, 1));
  const json r = c.reply(1);
  EXPECT_EQ(r["result"]["items"], json::array());  // python is turned off
  ASSERT_FALSE(c.wait_for([](const json& m) {
                  return m.value("method", "") == "qcoder/status" && m["params"].value("state", "") == "idle";
                }).is_null());
  EXPECT_EQ(c.loaded_settings.model, "/models/qwen");  // written before the load finished
  // The pulled configuration lands (asked after initialized).
  for (int i = 0; i < 500 && c.session().settings().max_tokens != 7; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(c.session().settings().max_tokens, 7);
  EXPECT_EQ(c.session().settings().context_tokens, 1024u);
}

}  // namespace
}  // namespace qcoder::lsp
