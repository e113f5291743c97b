// qcoder.refactorWorkspace as a transcript against the tiny model: the refactor runs over the workspace
// folder (open documents from the editor's text), reports progress, and hands the editor one versioned
// workspace edit; bad arguments and a missing folder are clear errors.
#include "lsp/server/refactor_workspace.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/lsp/server/test_client.h"

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
using testing::test_client;
namespace codes = jsonrpc::codes;
namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}
std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

session_options quick() {
  session_options o;
  o.settings.debounce = std::chrono::milliseconds(0);
  return o;
}

TEST(RefactorWorkspace, RefactorsTheFolderAndHandsTheEditorOneVersionedEdit) {
  const fs::path root = fs::path(::testing::TempDir()) / "lsp_refactor ws";  // a space: the uris escape it
  fs::remove_all(root);
  write(root / "a.py", "def get_user(uid):\n    return DB[uid]\n");
  write(root / "b.py", "def other():\n    return 1\n");
  write(root / "c.py", "print(get_user(1))\n");
  const std::string unsaved = "x = get_user(2)\nprint(get_user(1))\n";
  const std::string c_uri = path_to_uri((root / "c.py").string());

  test_client c(quick());
  json applied;
  c.answers["workspace/applyEdit"] = [&](const json& params) {
    applied = params;
    return json{{"applied", true}};
  };
  c.start({{"rootUri", path_to_uri(root.string())},
           {"capabilities", {{"workspace", {{"workspaceEdit", {{"documentChanges", true}}}}}, {"window", {{"workDoneProgress", true}}}}},
           {"initializationOptions", {{"acceptIncompleteEdits", true}}}});
  c.open(c_uri, unsaved, "python", 3);
  c.request(1, "workspace/executeCommand",
            {{"command", "qcoder.refactorWorkspace"},
             {"arguments", {{{"instruction", "rename `get_user` to `fetch_user`"}, {"checkRelevance", false}, {"jobs", 2}}}}});
  const json r = c.reply(1);
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(r["result"]["applied"], true);
  EXPECT_EQ(r["result"]["files"], 2);  // a.py and c.py name get_user; b.py does not
  EXPECT_EQ(r["result"]["skipped"], json::array());

  ASSERT_TRUE(applied.contains("edit")) << applied.dump();
  EXPECT_EQ(applied["label"], "qcoder: refactor");
  std::map<std::string, json> by_uri;
  for (const json& d : applied["edit"]["documentChanges"]) by_uri[d["textDocument"]["uri"].get<std::string>()] = d;
  ASSERT_EQ(by_uri.size(), 2u);
  ASSERT_TRUE(by_uri.count(c_uri));
  EXPECT_EQ(by_uri[c_uri]["textDocument"]["version"], 3);  // the open document: its version, its text
  EXPECT_FALSE(by_uri[c_uri]["edits"].empty());
  const std::string a_uri = path_to_uri((root / "a.py").string());
  ASSERT_TRUE(by_uri.count(a_uri)) << applied.dump();
  EXPECT_TRUE(by_uri[a_uri]["textDocument"]["version"].is_null());  // not open: no version
  EXPECT_NE(a_uri.find("%20"), std::string::npos);
  // The edits are positions in the editor's text of c.py (two lines), not the file on disk (one line).
  int max_line = 0;
  for (const json& e : by_uri[c_uri]["edits"]) max_line = std::max(max_line, e["range"]["end"]["line"].get<int>());
  EXPECT_LE(max_line, 2);
  // The server writes nothing itself: the editor applies the edit (and its undo takes it back).
  EXPECT_EQ(read(root / "a.py"), "def get_user(uid):\n    return DB[uid]\n");
  // Progress under a token the server created.
  const auto progress = c.sent("$/progress");
  ASSERT_GE(progress.size(), 2u);
  bool began = false, ended = false;
  for (const json& p : progress) {
    if (!p["params"]["token"].get<std::string>().starts_with("qcoder/refactor/")) continue;
    began |= p["params"]["value"]["kind"] == "begin";
    ended |= p["params"]["value"]["kind"] == "end";
  }
  EXPECT_TRUE(began && ended);

  int id = 2;
  for (const json& jobs : {json(0), json(65), json("2")}) {
    c.request(id, "workspace/executeCommand",
              {{"command", "qcoder.refactorWorkspace"}, {"arguments", {{{"instruction", "x"}, {"jobs", jobs}}}}});
    const json bad = c.reply(id++);
    EXPECT_EQ(bad["error"]["code"], codes::invalid_params) << bad.dump();
  }
}

TEST(RefactorWorkspace, BadArgumentsAndNoFolderAreClearErrors) {
  test_client c(quick());
  c.start();
  c.request(1, "workspace/executeCommand", {{"command", "qcoder.refactorWorkspace"}, {"arguments", {{{"instruction", "  "}}}}});
  EXPECT_EQ(c.reply(1)["error"]["code"], codes::invalid_params);
  c.request(2, "workspace/executeCommand", {{"command", "qcoder.refactorWorkspace"}});
  EXPECT_EQ(c.reply(2)["error"]["code"], codes::invalid_params);
  c.request(3, "workspace/executeCommand",
            {{"command", "qcoder.refactorWorkspace"}, {"arguments", {{{"instruction", "x"}, {"include", "*.py"}}}}});
  EXPECT_EQ(c.reply(3)["error"]["code"], codes::request_failed) << "no folder is checked first";
  const json no_folder = c.reply(3);
  EXPECT_NE(no_folder["error"]["message"].get<std::string>().find("workspace folder"), std::string::npos);
}

TEST(RefactorWorkspace, PathsBecomeFileUris) {
  EXPECT_EQ(path_to_uri("/a/b c/d#e.py"), "file:///a/b%20c/d%23e.py");
  EXPECT_EQ(uri_to_path(path_to_uri("/x/ü y.py")), "/x/ü y.py");
}

}  // namespace
}  // namespace qcoder::lsp
