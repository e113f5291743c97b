// `qcoder lsp` as an editor starts it: frames on stdin, frames on stdout, logs only on stderr, and the
// spec's exit codes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lsp/jsonrpc/framing.h"
#include "tests/lsp/cli/run_qcoder.h"
#include "tests/support/tiny_server.h"

namespace {
using nlohmann::json;
using qcoder::testing_support::run_qcoder;

std::string message(const json& m) { return qcoder::jsonrpc::frame(m.dump()); }

// Runs `qcoder lsp` with `input` on stdin; stdout only (stderr dropped).
qcoder::testing_support::run_result run_lsp(const std::string& input, const char* name, const std::string& flags = "") {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / name;
  std::ofstream(file, std::ios::binary) << input;
  return run_qcoder("lsp --stdio " + flags + " < " + file.string(), /*merge_stderr=*/false);
}

std::vector<json> bodies(const std::string& out) {
  qcoder::jsonrpc::frame_reader reader;
  reader.feed(out);
  std::vector<json> result;
  while (auto next = reader.next()) {
    EXPECT_TRUE(*next) << "stdout holds something that is not a frame";
    if (*next) result.push_back(json::parse(next->value()));
  }
  EXPECT_EQ(reader.buffered(), 0u) << "stray bytes on stdout";
  return result;
}

// Replies to our requests (notifications and server-to-client requests left out).
std::vector<json> responses(const std::vector<json>& all) {
  std::vector<json> out;
  for (const json& m : all) {
    if (m.contains("id") && !m.contains("method")) out.push_back(m);
  }
  return out;
}

const json* find_method(const std::vector<json>& all, const std::string& method, std::size_t skip = 0) {
  for (const json& m : all) {
    if (m.value("method", "") == method && skip-- == 0) return &m;
  }
  return nullptr;
}

TEST(LspCommand, LoadsTheModelWithProgressAndSavesThePrefixCacheAtShutdown) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "lsp-prefix-cache";
  std::filesystem::remove_all(dir);
  const json init_params = {{"capabilities", {{"window", {{"workDoneProgress", true}}}}}};
  const std::string input =
      message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", init_params}}) +
      message({{"jsonrpc", "2.0"}, {"method", "initialized"}, {"params", json::object()}}) +
      message({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}) + message({{"jsonrpc", "2.0"}, {"method", "exit"}});
  const auto r = run_lsp(input, "lsp-model.in",
                         "--model " + std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16 --prefix-cache 16MiB " +
                             "--prefix-cache-dir " + dir.string());
  EXPECT_EQ(r.exit_code, 0);
  const std::vector<json> all = bodies(r.out);
  const json* create = find_method(all, "window/workDoneProgress/create");
  ASSERT_NE(create, nullptr);
  const json* begin = find_method(all, "$/progress", 0);
  const json* end = find_method(all, "$/progress", 1);
  ASSERT_TRUE(begin != nullptr && end != nullptr);
  EXPECT_EQ((*begin)["params"]["value"]["kind"], "begin");
  EXPECT_EQ((*end)["params"]["value"]["kind"], "end");
  EXPECT_EQ((*end)["params"]["token"], (*create)["params"]["token"]);
  const json* loading = find_method(all, "qcoder/status", 0);
  const json* idle = find_method(all, "qcoder/status", 1);
  ASSERT_TRUE(loading != nullptr && idle != nullptr);
  EXPECT_EQ((*loading)["params"]["state"], "loading");
  EXPECT_EQ((*idle)["params"]["state"], "idle");
  const std::vector<json> replies = responses(all);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1]["id"], 2);
  EXPECT_TRUE(replies[1]["result"].is_null());
  // The clean shutdown saved the (empty) prefix cache for this model.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files += entry.path().filename().string().starts_with("prefix-cache-");
  EXPECT_EQ(files, 1);
}

TEST(LspCommand, AModelThatFailsToLoadIsReportedToTheUser) {
  const std::string input =
      message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", json::object()}}) +
      message({{"jsonrpc", "2.0"}, {"method", "initialized"}, {"params", json::object()}}) +
      message({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}) + message({{"jsonrpc", "2.0"}, {"method", "exit"}});
  const auto r = run_lsp(input, "lsp-nomodel.in", "--model /nonexistent-model");
  EXPECT_EQ(r.exit_code, 0);
  const std::vector<json> all = bodies(r.out);
  const json* shown = find_method(all, "window/showMessage");
  ASSERT_NE(shown, nullptr);
  EXPECT_NE((*shown)["params"]["message"].get<std::string>().find("could not be loaded"), std::string::npos);
  const json* error_status = find_method(all, "qcoder/status", 1);
  ASSERT_NE(error_status, nullptr);
  EXPECT_EQ((*error_status)["params"]["state"], "error");
}

TEST(LspCommand, CleanSessionExitsWithZeroAndStdoutHasOnlyFrames) {
  const std::string input =
      message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"capabilities", json::object()}}}}) +
      message({{"jsonrpc", "2.0"}, {"method", "initialized"}, {"params", json::object()}}) +
      "Content-Length: 3\r\n\r\n{x}" +
      message({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}) +
      message({{"jsonrpc", "2.0"}, {"method", "exit"}});
  const auto r = run_lsp(input, "lsp-clean.in", "--model /nonexistent-model");
  EXPECT_EQ(r.exit_code, 0);
  const std::vector<json> out = responses(bodies(r.out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]["id"], 1);
  EXPECT_TRUE(out[0]["result"].contains("capabilities"));
  EXPECT_EQ(out[1]["error"]["code"], -32700);
  EXPECT_EQ(out[2]["id"], 2);
}

TEST(LspCommand, EndOfInputWithoutExitGivesOne) {
  const auto r = run_lsp(message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", json::object()}}),
                         "lsp-eof.in");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(bodies(r.out).size(), 1u);
}

TEST(LspCommand, ListenServesOneClientOverLoopbackTcp) {
  const std::filesystem::path err = std::filesystem::path(::testing::TempDir()) / "lsp-listen.err";
  std::filesystem::remove(err);
  const std::string command = std::string(QCODER_BINARY) + " lsp --listen 127.0.0.1:0 --log-level warn 2>" +
                              err.string() + "; echo $? >> " + err.string();
  std::thread server([&command] { (void)std::system(command.c_str()); });
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {  // the binary prints the port it bound
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(err);
    std::string line;
    if (std::getline(in, line) && line.find("listening on 127.0.0.1:") != std::string::npos) {
      port = std::stoi(line.substr(line.rfind(':') + 1));
    }
  }
  ASSERT_GT(port, 0);
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  const std::string input =
      message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", json::object()}}) +
      message({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}) + message({{"jsonrpc", "2.0"}, {"method", "exit"}});
  boost::asio::write(socket, boost::asio::buffer(input));
  std::string out;
  boost::system::error_code ec;
  std::array<char, 4096> buffer{};
  while (!ec) out.append(buffer.data(), socket.read_some(boost::asio::buffer(buffer), ec));
  server.join();
  const std::vector<json> replies = bodies(out);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_TRUE(replies[0]["result"].contains("capabilities"));
  std::ifstream in(err);
  std::string first, code;
  std::getline(in, first);
  std::getline(in, code);
  EXPECT_EQ(code, "0");
}

TEST(LspCommand, ListenRefusesNonLoopbackWithoutAllowRemote) {
  const auto r = run_qcoder("lsp --listen 10.1.2.3:2087", /*merge_stderr=*/true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("not a loopback address"), std::string::npos) << r.out;
}

}  // namespace

namespace {

// `bench lsp` types into a file through an in-process server: every keystroke is answered, the stages it
// reports are consistent with each other, and a completion streamed at least one partial.
TEST(LspCommand, BenchLspReportsTheServersOwnLatencyPerKeystroke) {
  const auto r = run_qcoder("bench lsp --model " + std::string(QCODER_TEST_DATA_DIR) +
                                "/tiny-qwen3next/bf16 --file-tokens 800 --chars 6 --max-tokens 8 --json --log-level warn",
                            /*merge_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["keystrokes"].get<int>(), 6);
  EXPECT_GE(j["requests_with_partial"].get<int>(), 1);
  for (const char* key : {"edit_applied_us", "request_to_prompt_ms", "token_to_partial_ms", "overhead_ms",
                          "model_to_first_token_ms", "request_total_ms"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j[key]["p50"].get<double>(), 0.0) << key;
    EXPECT_GE(j[key]["p99"].get<double>(), j[key]["p50"].get<double>()) << key;
  }
  EXPECT_GT(j["bytes_sent_per_keystroke"].get<double>(), 100.0);  // at least a reply and a status each
  // The server's overhead is a part of the whole request, which also holds the model's time.
  EXPECT_LT(j["overhead_ms"]["p50"].get<double>(), j["request_total_ms"]["p50"].get<double>());
  EXPECT_LE(j["request_to_prompt_ms"]["p50"].get<double>(), j["request_total_ms"]["p50"].get<double>());
}

TEST(LspCommand, BenchLspMeasuresARemoteBackendToo) {
  // The same keystrokes with the model behind `qcoder serve` (in this test process): the model's part now
  // includes the HTTP round trip; the server's own overhead is measured the same way.
  auto server = qcoder::testing_support::tiny_server::start();
  ASSERT_TRUE(server) << server.err().message;
  const auto r = run_qcoder("bench lsp --model " + std::string(QCODER_TEST_DATA_DIR) +
                                "/tiny-qwen3next/bf16 --file-tokens 800 --chars 6 --max-tokens 8 --json --log-level warn --backend " +
                                (*server)->url(),
                            /*merge_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["keystrokes"].get<int>(), 6);
  EXPECT_GE(j["requests_with_partial"].get<int>(), 1);
  EXPECT_GT(j["model_to_first_token_ms"]["p50"].get<double>(), 0.0);
  EXPECT_GT((*server)->metric("qcoder_generations_submitted_total"), 0);  // the completions went there
}

TEST(LspCommand, BenchLspRefusesAMissingFile) {
  const auto r = run_qcoder("bench lsp --model " + std::string(QCODER_TEST_DATA_DIR) +
                                "/tiny-qwen3next/bf16 --file /nonexistent/x.py --chars 2",
                            /*merge_stderr=*/true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("/nonexistent/x.py"), std::string::npos) << r.out;
}

}  // namespace
