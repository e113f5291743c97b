// Runs `qcoder context` and `qcoder bench context` as a user would, on a small workspace written to a
// temporary folder, with the tiny checkpoint's tokenizer.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/lsp/cli/run_qcoder.h"

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::HasSubstr;
using qcoder::testing_support::run_qcoder;

const std::string tiny_tokenizer = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16/tokenizer.json";

class ContextCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qcoder-context-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "pkg");
    write("pkg/util.py", "def helper(a, b):\n    return a + b\n");
    write("pkg/main.py", "from .util import helper\n\ndef run(x):\n    total = helper(x, 1)\n    return total\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel, std::ios::binary) << text; }
  fs::path dir_;
};

TEST_F(ContextCommand, JsonShowsBlocksWithinTheBudget) {
  const auto r = run_qcoder("context --file " + (dir_ / "pkg/main.py").string() + " --line 4 --col 5 --workspace " +
                                dir_.string() + " --tokenizer " + tiny_tokenizer + " --budget 512 --json",
                            false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["file"], "pkg/main.py");
  EXPECT_LE(out["tokens"].get<int>(), 512);
  EXPECT_EQ(out["budget"], 512);
  EXPECT_EQ(out["mode"], "none");  // code follows the cursor on its line
  std::vector<std::string> kinds;
  int sum = 0;
  for (const json& b : out["blocks"]) kinds.push_back(b["kind"]), sum += b["tokens"].get<int>();
  EXPECT_EQ(sum, out["tokens"].get<int>());
  EXPECT_THAT(kinds, testing::ElementsAre("repo", "imports", "file", "prefix", "suffix", "middle"));
  EXPECT_THAT(out["prompt"].get<std::string>(), HasSubstr("<|file_sep|>pkg/util.py\ndef helper(a, b):\n"));
}

TEST_F(ContextCommand, TextOutputAndErrors) {
  const std::string file = (dir_ / "pkg/main.py").string();
  const auto text = run_qcoder("context --file " + file + " --line 5 --col 5 --tokenizer " + tiny_tokenizer, false);
  ASSERT_EQ(text.exit_code, 0) << text.out;
  EXPECT_THAT(text.out, HasSubstr("<|fim_prefix|>"));
  EXPECT_THAT(text.out, HasSubstr("of a budget of 2048"));
  EXPECT_EQ(run_qcoder("context --file " + file + " --line 99 --col 1 --tokenizer " + tiny_tokenizer, true).exit_code, 1);
  EXPECT_EQ(run_qcoder("context --line 1 --col 1 --tokenizer " + tiny_tokenizer, true).exit_code, 2);
  EXPECT_EQ(run_qcoder("context --file /no/such/file.py --line 1 --col 1 --tokenizer " + tiny_tokenizer, true).exit_code, 1);
}

TEST_F(ContextCommand, BenchFindsTheImportedCallee) {
  // Calls that only share a name with a workspace function are not samples: a builtin called by its plain
  // name (the module defining `enumerate` is imported, the name is not) and a built-in type's method.
  write("pkg/text.py", "class Text:\n    def startswith(self, prefix):\n        return True\n\ndef enumerate(xs):\n    return xs\n");
  write("pkg/other.py", "from . import text\n\ndef f(s):\n    for i, c in enumerate(s):\n        pass\n    return s.startswith('x')\n");
  const auto r = run_qcoder("bench context --workspace " + dir_.string() + " --tokenizer " + tiny_tokenizer + " --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["samples"], 1);  // helper(x, 1): the one call of a function defined in another file
  EXPECT_EQ(out["budgets"]["2048"]["recall"], 1.0);
  EXPECT_EQ(out["budgets"]["1024"]["languages"]["python"]["samples"], 1);
}

}  // namespace
