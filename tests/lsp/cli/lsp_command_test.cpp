// `qcoder lsp` as an editor starts it: frames on stdin, frames on stdout, logs only on stderr, and the
// spec's exit codes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

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

}  // namespace
