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

namespace {
using nlohmann::json;
using qcoder::testing_support::run_qcoder;

std::string message(const json& m) { return qcoder::jsonrpc::frame(m.dump()); }

// Runs `qcoder lsp` with `input` on stdin; stdout only (stderr dropped).
qcoder::testing_support::run_result run_lsp(const std::string& input, const char* name) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / name;
  std::ofstream(file, std::ios::binary) << input;
  return run_qcoder("lsp --stdio < " + file.string(), /*merge_stderr=*/false);
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

TEST(LspCommand, CleanSessionExitsWithZeroAndStdoutHasOnlyFrames) {
  const std::string input =
      message({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"capabilities", json::object()}}}}) +
      message({{"jsonrpc", "2.0"}, {"method", "initialized"}, {"params", json::object()}}) +
      "Content-Length: 3\r\n\r\n{x}" +
      message({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "shutdown"}}) +
      message({{"jsonrpc", "2.0"}, {"method", "exit"}});
  const auto r = run_lsp(input, "lsp-clean.in");
  EXPECT_EQ(r.exit_code, 0);
  const std::vector<json> out = bodies(r.out);
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
