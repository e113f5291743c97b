// Runs `qcoder tokenize`, `detokenize` and `bench tokenize` as a user would, against the tiny tokenizer.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/lsp/cli/run_qcoder.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::HasSubstr;

const std::string tiny_tokenizer = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16/tokenizer.json";
const std::string tiny_cases = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/golden/tokenizer-cases.jsonl";

using qcoder::testing_support::run_result;

run_result run(const std::string& args, bool merge_stderr = false) {
  return qcoder::testing_support::run_qcoder(args, merge_stderr);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class TokenizeCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qcoder-tokenize-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(TokenizeCommand, PrintsTheGoldenIdsWithSpecials) {
  const run_result r = run("tokenize --special --tokenizer " + tiny_tokenizer + " --jsonl " + tiny_cases);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(tiny_cases);
  std::vector<std::string> want;
  for (std::string line; std::getline(in, line);) want.push_back(json::parse(line)["ids"].dump());
  EXPECT_EQ(lines_of(r.out), want);
}

TEST_F(TokenizeCommand, DocumentTextByDefaultAndDetokenizeRoundTrips) {
  const std::string input = write("in.jsonl", "{\"text\": \"<|fim_prefix|>x\"}\n\n{\"text\": \"caf\\u00e9 \\ud83d\\ude80\"}\n");
  const run_result r = run("tokenize --tokenizer " + tiny_tokenizer + " < " + input);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u);
  for (int id : json::parse(lines[0])) {
    EXPECT_NE(id, 2036);  // <|fim_prefix|> stays text
  }

  const std::string ids = write("ids.jsonl", r.out);
  const run_result back = run("detokenize --tokenizer " + tiny_tokenizer + " --jsonl " + ids);
  ASSERT_EQ(back.exit_code, 0) << back.out;
  const std::vector<std::string> texts = lines_of(back.out);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(json::parse(texts[0])["text"], "<|fim_prefix|>x");
  EXPECT_EQ(json::parse(texts[1])["text"], "caf\xC3\xA9 \xF0\x9F\x9A\x80");
}

TEST_F(TokenizeCommand, LoneSurrogateIsAClearErrorWithTheLineNumber) {
  const std::string input = write("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"\\ud800 alone\"}\n");
  const run_result r = run("tokenize --tokenizer " + tiny_tokenizer + " --jsonl " + input, /*merge_stderr=*/true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("bad.jsonl:2"));
  EXPECT_THAT(r.out, HasSubstr("surrogate"));
}

TEST_F(TokenizeCommand, BadLinesAndBadIdsAreErrors) {
  run_result r = run("tokenize --tokenizer " + tiny_tokenizer + " --jsonl " + write("a.jsonl", "[1, 2]\n"), true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("a.jsonl:1: expected an object"));
  r = run("detokenize --tokenizer " + tiny_tokenizer + " --jsonl " + write("b.jsonl", "[1, 999999]\n"), true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("999999"));
  r = run("detokenize --tokenizer " + tiny_tokenizer + " --jsonl " + write("c.jsonl", "[1, \"x\"]\n"), true);
  EXPECT_EQ(r.exit_code, 1);
  r = run("tokenize --tokenizer " + write("broken.json", "{\"model\": ") + " --jsonl " + tiny_cases, true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("broken.json"));
  r = run("tokenize --tokenizer /nonexistent/tokenizer.json", true);
  EXPECT_EQ(r.exit_code, 1);
  r = run("tokenize --model " + dir_.string(), true);  // a folder without config.json
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(TokenizeCommand, BenchTokenizeReportsThroughput) {
  fs::create_directories(dir_ / "src");
  std::string code;
  for (int i = 0; i < 2000; ++i) code += "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "\n";
  write("src/a.py", code);
  write("src/skip.bin", "not a source file");
  run_result r = run("bench tokenize --json --passes 2 --tokenizer " + tiny_tokenizer + " --corpus " + (dir_ / "src").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["files"], 1);
  EXPECT_EQ(j["bytes"], code.size());
  EXPECT_GT(j["tokens"].get<double>(), 0);
  EXPECT_GT(j["cold_mb_per_s"].get<double>(), 0);
  EXPECT_GT(j["warm_mb_per_s"].get<double>(), 0);
  EXPECT_GT(j["one_mib_file_ms"].get<double>(), 0);

  r = run("bench tokenize --tokenizer " + tiny_tokenizer + " --corpus " + (dir_ / "src").string());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("MB/s"));
  EXPECT_THAT(r.out, HasSubstr("1 MiB file"));
}

TEST_F(TokenizeCommand, BenchDispatcher) {
  run_result r = run("bench --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("tokenize"));
  EXPECT_EQ(run("bench").exit_code, 2);
  r = run("bench frobnicate", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("unknown benchmark 'frobnicate'"));
  r = run("bench tokenize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: qcoder bench tokenize"));
}

}  // namespace
