// The lifecycle as transcripts: messages in, checked messages out.
#include "lsp/server/language_server.h"

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
namespace codes = jsonrpc::codes;

struct session {
  std::vector<json> sent;
  jsonrpc::connection rpc{[this](std::string body) { sent.push_back(json::parse(body)); }};
  language_server server{rpc};
  json send(const json& message) {
    const std::size_t before = sent.size();
    rpc.receive(message.dump());
    return sent.size() > before ? sent.back() : json();
  }
  json request(int id, const char* method, json params = json::object()) {
    return send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
  }
  void notify(const char* method) { send({{"jsonrpc", "2.0"}, {"method", method}, {"params", json::object()}}); }
};

TEST(LanguageServer, RequestsBeforeInitializeAreRefused) {
  session s;
  EXPECT_EQ(s.request(1, "textDocument/inlineCompletion")["error"]["code"], codes::server_not_initialized);
  EXPECT_EQ(s.request(2, "shutdown")["error"]["code"], codes::server_not_initialized);
}

TEST(LanguageServer, InitializeNegotiatesThePositionEncoding) {
  session plain;
  const json r = plain.request(1, "initialize", {{"capabilities", json::object()}});
  EXPECT_EQ(r["result"]["capabilities"]["positionEncoding"], "utf-16");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "qcoder");
  EXPECT_EQ(plain.server.encoding(), position_encoding::utf16);
  EXPECT_EQ(plain.request(2, "initialize")["error"]["code"], codes::invalid_request);

  session utf8;
  const json params = {{"capabilities", {{"general", {{"positionEncodings", {"utf-16", "utf-8"}}}}}}};
  EXPECT_EQ(utf8.request(1, "initialize", params)["result"]["capabilities"]["positionEncoding"], "utf-8");
  EXPECT_EQ(utf8.server.encoding(), position_encoding::utf8);
}

TEST(LanguageServer, ShutdownThenExitGivesZero) {
  session s;
  s.request(1, "initialize");
  s.notify("initialized");
  EXPECT_TRUE(s.request(2, "shutdown")["result"].is_null());
  EXPECT_EQ(s.request(3, "textDocument/inlineCompletion")["error"]["code"], codes::invalid_request);
  EXPECT_FALSE(s.server.exit_code());
  s.notify("exit");
  EXPECT_EQ(s.server.exit_code(), 0);
}

TEST(LanguageServer, ExitWithoutShutdownGivesOne) {
  session s;
  s.request(1, "initialize");
  s.notify("exit");
  EXPECT_EQ(s.server.exit_code(), 1);
}

}  // namespace
}  // namespace qcoder::lsp
