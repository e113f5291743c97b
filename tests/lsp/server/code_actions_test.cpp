// Code actions as transcripts against the tiny model: which actions are offered where, resolving one into
// minimal versioned TextEdits, stale and cancelled resolves, commands for clients without resolve support
// (applied through workspace/applyEdit), progress, and the errors a client can provoke.
#include "lsp/server/code_actions.h"

#include <gtest/gtest.h>

#include "context/document.h"
#include "tests/lsp/server/test_client.h"

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
using testing::test_client;
namespace codes = jsonrpc::codes;

const std::string source =
    "import math\n"
    "\n"
    "def area(r):\n"
    "    pass\n"
    "\n"
    "print(area(2))\n";
const char* uri = "file:///w/geo.py";

json position(int line, int character) { return {{"line", line}, {"character", character}}; }
json range(int l0, int c0, int l1, int c1) { return {{"start", position(l0, c0)}, {"end", position(l1, c1)}}; }

// A client that resolves edits, takes versioned edits, and accepts incomplete answers (the random model
// never closes its code block).
json resolving_client() {
  return {{"capabilities",
           {{"textDocument", {{"codeAction", {{"resolveSupport", {{"properties", {"edit"}}}}}}}},
            {"workspace", {{"workspaceEdit", {{"documentChanges", true}}}}},
            {"window", {{"workDoneProgress", true}}}}},
          {"initializationOptions", {{"acceptIncompleteEdits", true}, {"editMaxTokens", 8}}}};
}

session_options quick() {
  session_options o;
  o.settings.debounce = std::chrono::milliseconds(0);
  return o;
}

// `text` with LSP TextEdits applied (UTF-16 positions; ascending, non-overlapping).
std::string apply_edits(const std::string& text, const json& edits) {
  context::document doc("x", std::nullopt, text);
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (const json& e : edits) {
    const auto at = [&](const json& p) {
      return doc.offset_at({p["line"].get<std::size_t>(), p["character"].get<std::size_t>()}, context::column_unit::utf16);
    };
    auto b = at(e["range"]["start"]);
    auto en = at(e["range"]["end"]);
    EXPECT_TRUE(b && en);
    spans.emplace_back(*b, *en);
  }
  std::string out = text;
  for (std::size_t i = spans.size(); i-- > 0;) out.replace(spans[i].first, spans[i].second - spans[i].first, edits[i]["newText"].get<std::string>());
  return out;
}

std::vector<std::string> titles(const json& actions) {
  std::vector<std::string> out;
  for (const json& a : actions) out.push_back(a["title"]);
  return out;
}

TEST(CodeActions, OfferedByPlace) {
  test_client c(quick());
  const json init = c.start(resolving_client());
  EXPECT_EQ(init["result"]["capabilities"]["codeActionProvider"]["resolveProvider"], true);
  EXPECT_EQ(init["result"]["capabilities"]["executeCommandProvider"]["commands"], code_actions::commands());
  c.open(uri, source);
  // Inside the function, nothing selected: complete and document it.
  c.request(1, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(3, 4, 3, 4)}, {"context", {{"diagnostics", json::array()}}}});
  EXPECT_EQ(titles(c.reply(1)["result"]), (std::vector<std::string>{"qcoder: Complete function area", "qcoder: Document function area"}));
  // A selection outside functions, with a diagnostic: rewrite and fix.
  const json diagnostic = {{"range", range(5, 0, 5, 5)}, {"message", "name 'print' is shadowed\nmore detail"}, {"severity", 2}};
  c.request(2, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(5, 0, 5, 13)}, {"context", {{"diagnostics", {diagnostic}}}}});
  const json actions = c.reply(2)["result"];
  EXPECT_EQ(titles(actions), (std::vector<std::string>{"qcoder: Rewrite selection", "qcoder: Fix: name 'print' is shadowed"}));
  EXPECT_EQ(actions[1]["kind"], "quickfix");
  EXPECT_EQ(actions[1]["diagnostics"][0], diagnostic);
  EXPECT_EQ(actions[0]["data"]["version"], 1);
  EXPECT_FALSE(actions[0].contains("edit"));    // computed at resolve time
  EXPECT_FALSE(actions[0].contains("command"));  // the client resolves
  // `only` filters by kind prefix.
  c.request(3, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(5, 0, 5, 13)},
                                           {"context", {{"diagnostics", {diagnostic}}, {"only", {"quickfix"}}}}});
  EXPECT_EQ(titles(c.reply(3)["result"]), (std::vector<std::string>{"qcoder: Fix: name 'print' is shadowed"}));
}

TEST(CodeActions, ResolveGivesAVersionedMinimalEditOfTheTargetOnly) {
  test_client c(quick());
  c.start(resolving_client());
  c.open(uri, source, "python", 4);
  c.request(1, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(3, 4, 3, 4)}, {"context", json::object()}});
  const json action = c.reply(1)["result"][0];
  c.request(2, "codeAction/resolve", action);
  const json r = c.reply(2);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["title"], action["title"]);
  const json& change = r["result"]["edit"]["documentChanges"][0];
  EXPECT_EQ(change["textDocument"], (json{{"uri", uri}, {"version", 4}}));
  const std::string after = apply_edits(source, change["edits"]);
  // Only the function's lines may change.
  EXPECT_TRUE(after.starts_with("import math\n\n")) << after;
  EXPECT_TRUE(after.ends_with("\nprint(area(2))\n")) << after;
  for (const json& e : change["edits"]) {
    EXPECT_GE(e["range"]["start"]["line"].get<int>(), 2);
    EXPECT_LE(e["range"]["end"]["line"].get<int>(), 4);
  }
  // Work-done progress: created, begun and ended.
  EXPECT_FALSE(c.sent("window/workDoneProgress/create").empty());
  const auto progress = c.sent("$/progress");
  ASSERT_GE(progress.size(), 2u);
  EXPECT_EQ(progress.back()["params"]["value"]["kind"], "end");
}

TEST(CodeActions, StaleUnknownAndBadResolvesFailClearly) {
  test_client c(quick());
  c.start(resolving_client());
  c.open(uri, source);
  c.request(1, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(3, 4, 3, 4)}, {"context", json::object()}});
  json action = c.reply(1)["result"][0];
  c.notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}}, {"contentChanges", {{{"text", source + "\n"}}}}});
  c.request(2, "codeAction/resolve", action);
  EXPECT_EQ(c.reply(2)["error"]["code"], codes::content_modified);
  c.request(3, "codeAction/resolve", {{"title", "someone else's"}});
  EXPECT_NE(c.reply(3)["error"]["message"].get<std::string>().find("params.data"), std::string::npos);
  action["data"]["version"] = 2;
  action["data"]["kind"] = "explode";
  c.request(4, "codeAction/resolve", action);
  const json bad = c.reply(4);
  EXPECT_EQ(bad["error"]["code"], codes::invalid_params);
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("params.data.kind"), std::string::npos);
  action["data"]["kind"] = "complete";
  action["data"]["range"] = range(0, 0, 0, 0);  // line 1 is not in a function
  c.request(5, "codeAction/resolve", action);
  EXPECT_EQ(c.reply(5)["error"]["code"], codes::request_failed);
  c.request(6, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(40, 0, 40, 0)}});
  EXPECT_NE(c.reply(6)["error"]["message"].get<std::string>().find("params.range.start"), std::string::npos);
}

TEST(CodeActions, WhileLoadingAResolveWaitsBoundedAndACancelledOneAnswersCancelled) {
  std::promise<void> release;
  session_options o = quick();
  o.load_wait = std::chrono::milliseconds(100);
  test_client c(o, release.get_future().share());
  c.start(resolving_client());
  c.open(uri, source);
  const json data = {{"uri", uri}, {"version", 1}, {"kind", "complete"}, {"range", range(3, 4, 3, 4)}};
  // The model is still loading: after the bounded wait, a clear failure rather than a hang.
  c.request(1, "codeAction/resolve", {{"title", "x"}, {"data", data}});
  const json loading = c.reply(1);
  EXPECT_EQ(loading["error"]["code"], codes::request_failed);
  EXPECT_NE(loading["error"]["message"].get<std::string>().find("loading"), std::string::npos) << loading.dump();
  release.set_value();
  ASSERT_FALSE(c.wait_for([](const json& m) {
                  return m.value("method", "") == "qcoder/status" && m["params"].value("state", "") == "idle";
                }).is_null());
  c.request(2, "codeAction/resolve", {{"title", "x"}, {"data", data}});
  c.notify("$/cancelRequest", {{"id", 2}});
  // Cancelled before or during generation; never a half-made edit.
  EXPECT_EQ(c.reply(2)["error"]["code"], codes::request_cancelled);
}

TEST(CodeActions, CommandsForClientsWithoutResolveApplyThroughTheEditor) {
  test_client c(quick());
  json applied_edit;
  c.answers["workspace/applyEdit"] = [&](const json& params) {
    applied_edit = params;
    return json{{"applied", true}};
  };
  c.start({{"capabilities", json::object()}, {"initializationOptions", {{"acceptIncompleteEdits", true}, {"editMaxTokens", 6}}}});
  c.open(uri, source);
  c.request(1, "textDocument/codeAction", {{"textDocument", {{"uri", uri}}}, {"range", range(3, 4, 3, 4)}, {"context", json::object()}});
  const json action = c.reply(1)["result"][0];
  ASSERT_EQ(action["command"]["command"], "qcoder.applyAction");
  c.request(2, "workspace/executeCommand", action["command"]);
  const json r = c.reply(2);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["applied"], true);
  ASSERT_TRUE(applied_edit.contains("edit"));
  EXPECT_EQ(applied_edit["label"], "qcoder: complete function area");
  const std::string after = apply_edits(source, applied_edit["edit"]["changes"][uri]);  // unversioned: this client lacks documentChanges
  EXPECT_TRUE(after.starts_with("import math\n\n"));
  EXPECT_TRUE(after.ends_with("\nprint(area(2))\n"));
  // The explicit commands and status.
  c.request(3, "workspace/executeCommand", {{"command", "qcoder.status"}});
  const json status = c.reply(3)["result"];
  EXPECT_EQ(status["openDocuments"], 1);
  EXPECT_EQ(status["state"], "idle");
  c.request(4, "workspace/executeCommand", {{"command", "qcoder.rewriteSelection"}, {"arguments", {{{"uri", uri}, {"range", range(5, 0, 5, 5)}, {"instruction", "use f-strings"}}}}});
  EXPECT_TRUE(c.reply(4).contains("result"));
  c.request(5, "workspace/executeCommand", {{"command", "qcoder.nothing"}});
  EXPECT_EQ(c.reply(5)["error"]["code"], codes::invalid_params);
  c.request(6, "workspace/executeCommand", {{"command", "qcoder.fixDiagnostic"}, {"arguments", {{{"uri", uri}}}}});
  EXPECT_NE(c.reply(6)["error"]["message"].get<std::string>().find("params.arguments[0].range"), std::string::npos);
}

TEST(CodeActions, AnIncompleteAnswerIsNotAppliedByDefault) {
  test_client c(quick());
  json init = resolving_client();
  init["initializationOptions"] = {{"editMaxTokens", 2}};
  c.start(init);
  c.open(uri, source);
  c.request(1, "codeAction/resolve", {{"title", "x"}, {"data", {{"uri", uri}, {"kind", "complete"}, {"range", range(3, 4, 3, 4)}}}});
  const json r = c.reply(1);
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["error"]["code"], codes::request_failed);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("cut off at 2 tokens"), std::string::npos);
}

}  // namespace
}  // namespace qcoder::lsp
