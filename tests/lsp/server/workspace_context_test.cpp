// The session's code context: the index is built from the workspace folder the client names and follows
// saves; edits and left-behind places become recent snippets.
#include "lsp/server/workspace_context.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
namespace fs = std::filesystem;

struct fixture {
  fs::path root = fs::temp_directory_path() / ("qcoder-ws-" + std::to_string(::getpid()));
  std::vector<json> sent;
  jsonrpc::connection rpc{[this](std::string body) { sent.push_back(json::parse(body)); }};
  language_server server{rpc};
  open_documents docs{rpc, server};
  workspace_context ws{docs};
  fixture() {
    fs::create_directories(root / "pkg");
    std::ofstream(root / "pkg" / "util.py") << "def helper(x):\n    return x * 2\n";
    rpc.receive(json{{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"}, {"params", {{"capabilities", json::object()}}}}.dump());
  }
  ~fixture() {
    ws.stop();
    fs::remove_all(root);
  }
  void notify(const char* method, json params) {
    rpc.receive(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}}.dump());
  }
};

TEST(WorkspaceContext, IndexesTheFolderAndFollowsSaves) {
  fixture f;
  f.ws.start({{"workspaceFolders", {{{"uri", "file://" + f.root.string()}, {"name", "w"}}}}});
  ASSERT_NE(f.ws.index(), nullptr);
  const_cast<context::workspace_index*>(f.ws.index())->wait();
  EXPECT_EQ(f.ws.index()->lookup("helper").size(), 1u);
  EXPECT_EQ(f.ws.label((f.root / "pkg" / "util.py").string()), "pkg/util.py");
  // A new definition typed and saved is found without a rebuild.
  const std::string uri = "file://" + (f.root / "pkg" / "util.py").string();
  f.notify("textDocument/didOpen", {{"textDocument", {{"uri", uri}, {"languageId", "python"}, {"version", 1}, {"text", "def helper(x):\n    return x * 2\n"}}}});
  f.notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", 2}}},
                                      {"contentChanges", {{{"text", "def helper(x):\n    return x * 2\n\ndef twice(y):\n    return helper(helper(y))\n"}}}}});
  f.notify("textDocument/didSave", {{"textDocument", {{"uri", uri}}}});
  EXPECT_EQ(f.ws.index()->lookup("twice").size(), 1u);
}

TEST(WorkspaceContext, NoFolderNoIndex) {
  fixture f;
  f.ws.start(json::object());
  EXPECT_EQ(f.ws.index(), nullptr);
  f.ws.start({{"rootUri", "file:///does/not/exist"}});
  EXPECT_EQ(f.ws.index(), nullptr);
}

TEST(WorkspaceContext, EditsAndLeftPlacesBecomeSnippets) {
  fixture f;
  const std::string a = "file:///w/a.py", b = "file:///w/b.py";
  f.notify("textDocument/didOpen", {{"textDocument", {{"uri", a}, {"languageId", "python"}, {"version", 1}, {"text", "x = 1\ny = 2\n"}}}});
  f.notify("textDocument/didChange", {{"textDocument", {{"uri", a}, {"version", 2}}},
                                      {"contentChanges", {{{"range", {{"start", {{"line", 1}, {"character", 4}}}, {"end", {{"line", 1}, {"character", 5}}}}}, {"text", "42"}}}}});
  auto items = f.ws.recent().items();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].source, context::snippet_source::edited);
  EXPECT_EQ(items[0].text, "x = 1\ny = 42\n");
  // Asking in b, then in a: the place in b becomes a viewed snippet.
  f.notify("textDocument/didOpen", {{"textDocument", {{"uri", b}, {"languageId", "python"}, {"version", 1}, {"text", "import os\n"}}}});
  f.ws.viewed(b, *f.docs.find(b), 0);
  EXPECT_EQ(f.ws.recent().items().size(), 1u);
  f.ws.viewed(b, *f.docs.find(b), 0);  // same file: nothing left behind yet
  EXPECT_EQ(f.ws.recent().items().size(), 1u);
  f.ws.viewed(a, *f.docs.find(a), 0);
  items = f.ws.recent().items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].source, context::snippet_source::viewed);
  EXPECT_EQ(items[1].path, "/w/b.py");
  EXPECT_EQ(items[1].text, "import os\n");
}

}  // namespace
}  // namespace qcoder::lsp
