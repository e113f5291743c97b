// Text sync as transcripts: what the client sends, what the server then holds.
#include "lsp/server/open_documents.h"

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using jsonrpc::json;

struct session {
  std::vector<json> sent;
  jsonrpc::connection rpc{[this](std::string body) { sent.push_back(json::parse(body)); }};
  language_server server{rpc};
  open_documents docs{rpc, server};

  explicit session(bool utf8 = false) {
    json caps = json::object();
    if (utf8) caps["general"]["positionEncodings"] = {"utf-8"};
    rpc.receive(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"capabilities", caps}}}}.dump());
  }
  void notify(const char* method, json params) {
    rpc.receive(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}}.dump());
  }
  void open(const std::string& uri, const std::string& text, const char* language = "python") {
    notify("textDocument/didOpen", {{"textDocument", {{"uri", uri}, {"languageId", language}, {"version", 1}, {"text", text}}}});
  }
  void change(const std::string& uri, int version, json changes) {
    notify("textDocument/didChange", {{"textDocument", {{"uri", uri}, {"version", version}}}, {"contentChanges", std::move(changes)}});
  }
  std::string text(const std::string& uri) { return docs.find(uri)->doc.text(); }
};

json range_change(int l0, int c0, int l1, int c1, const std::string& text) {
  return {{"range", {{"start", {{"line", l0}, {"character", c0}}}, {"end", {{"line", l1}, {"character", c1}}}}}, {"text", text}};
}

TEST(OpenDocuments, IncrementalChangesInUtf16ThroughAstralCharactersAndCrlf) {
  session s;
  const std::string uri = "file:///w/a%20b.py";
  s.open(uri, "x = '😀😀'\r\ny = 1\r\n");
  ASSERT_NE(s.docs.find(uri), nullptr);
  EXPECT_EQ(s.docs.find(uri)->doc.path(), "/w/a b.py");
  EXPECT_EQ(s.docs.find(uri)->doc.lang(), context::language::python);
  // UTF-16: each emoji is two units, so the second one starts at column 7.
  s.change(uri, 2, json::array({range_change(0, 7, 0, 9, "!")}));
  EXPECT_EQ(s.text(uri), "x = '😀!'\r\ny = 1\r\n");
  // Several changes in one notification apply in order; the CRLF terminator is not part of the line.
  s.change(uri, 3, json::array({range_change(1, 4, 1, 5, "22"), range_change(1, 0, 1, 0, "#")}));
  EXPECT_EQ(s.text(uri), "x = '😀!'\r\n#y = 22\r\n");
  EXPECT_EQ(s.docs.find(uri)->version, 3);
}

TEST(OpenDocuments, Utf8PositionsWhenNegotiated) {
  session s(/*utf8=*/true);
  const std::string uri = "file:///w/b.py";
  s.open(uri, "é = 1\n");
  s.change(uri, 2, json::array({range_change(0, 2, 0, 2, "x")}));  // after the two bytes of é
  EXPECT_EQ(s.text(uri), "éx = 1\n");
}

TEST(OpenDocuments, AChangeThatDoesNotFitMarksTheDocumentOutOfSyncUntilAFullText) {
  session s;
  const std::string uri = "file:///w/c.py";
  s.open(uri, "abc\n");
  s.change(uri, 2, json::array({range_change(5, 0, 5, 1, "x"), range_change(0, 0, 0, 0, "never")}));
  open_document* d = s.docs.find(uri);
  EXPECT_TRUE(d->out_of_sync);
  EXPECT_EQ(s.text(uri), "abc\n");  // nothing half-applied
  ASSERT_FALSE(s.sent.empty());
  EXPECT_EQ(s.sent.back()["method"], "window/showMessage");
  const std::size_t told = s.sent.size();
  s.change(uri, 3, json::array({range_change(0, 0, 0, 0, "y")}));
  EXPECT_EQ(s.sent.size(), told);  // told once
  EXPECT_EQ(s.text(uri), "abc\n");
  s.change(uri, 4, json::array({{{"text", "fresh\n"}}}));
  EXPECT_FALSE(d->out_of_sync);
  EXPECT_EQ(s.text(uri), "fresh\n");
}

TEST(OpenDocuments, MalformedNotificationsAreIgnoredAndCloseForgets) {
  session s;
  s.notify("textDocument/didOpen", {{"textDocument", {{"uri", 5}}}});
  s.notify("textDocument/didChange", {{"textDocument", {{"uri", "file:///nope.py"}}}, {"contentChanges", json::array()}});
  EXPECT_EQ(s.docs.size(), 0u);
  s.open("file:///w/d.unknown", "plain text", "plaintext");
  EXPECT_EQ(s.docs.find("file:///w/d.unknown")->doc.lang(), std::nullopt);
  s.notify("textDocument/didClose", {{"textDocument", {{"uri", "file:///w/d.unknown"}}}});
  EXPECT_EQ(s.docs.size(), 0u);
}

TEST(OpenDocuments, FileUris) {
  EXPECT_EQ(uri_to_path("file:///tmp/x%2By.py"), "/tmp/x+y.py");
  EXPECT_EQ(uri_to_path("file://localhost/tmp/a"), "/tmp/a");
  EXPECT_EQ(uri_to_path("untitled:Untitled-1"), std::nullopt);
  EXPECT_EQ(uri_to_path("file:///bad%zz"), std::nullopt);
  EXPECT_EQ(uri_to_path("file:///cut%2"), std::nullopt);
  EXPECT_EQ(uri_to_path("file://otherhost/a"), std::nullopt);
}

}  // namespace
}  // namespace qcoder::lsp
