// --prefix-cache-dir through the real binary: a second run of the same request starts warm from the saved
// cache and prints the same output; a damaged cache file is reported and replaced, never fatal.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/lsp/cli/run_qcoder.h"

namespace {
namespace fs = std::filesystem;
using qcoder::testing_support::run_qcoder;

std::string generate_args(const fs::path& dir) {
  return "generate --model " + std::string(QCODER_TEST_DATA_DIR) +
         "/tiny-qwen3next/bf16 --ids 5,17,42,8,99,3 --max-tokens 6 --greedy --prefix-cache 32MiB --prefix-cache-dir " +
         dir.string();
}

fs::path fresh_dir(const char* name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  return dir;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

TEST(PrefixCacheCli, SecondRunStartsWarmFromTheSavedCache) {
  const fs::path dir = fresh_dir("qcoder-cli-prefix-cache");
  const auto cold = run_qcoder(generate_args(dir), /*merge_stderr=*/true);
  ASSERT_EQ(cold.exit_code, 0) << cold.out;
  EXPECT_NE(cold.out.find("6 prompt tokens (0 from the prefix cache)"), std::string::npos) << cold.out;
  const auto warm = run_qcoder(generate_args(dir), /*merge_stderr=*/true);
  ASSERT_EQ(warm.exit_code, 0) << warm.out;
  EXPECT_NE(warm.out.find("6 prompt tokens (6 from the prefix cache)"), std::string::npos) << warm.out;
  // Same ids on stdout.
  const auto cold_ids = run_qcoder(generate_args(fresh_dir("qcoder-cli-prefix-cache-2")), false);
  const auto warm_ids = run_qcoder(generate_args(dir), false);
  EXPECT_EQ(first_line(cold_ids.out), first_line(warm_ids.out));
  EXPECT_FALSE(first_line(warm_ids.out).empty());
}

TEST(PrefixCacheCli, DamagedCacheFileIsReportedAndReplaced) {
  const fs::path dir = fresh_dir("qcoder-cli-prefix-cache-bad");
  ASSERT_EQ(run_qcoder(generate_args(dir), false).exit_code, 0);
  fs::path file;
  for (const auto& entry : fs::directory_iterator(dir)) file = entry.path();
  ASSERT_FALSE(file.empty());
  fs::resize_file(file, fs::file_size(file) / 2);
  const auto r = run_qcoder(generate_args(dir), /*merge_stderr=*/true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("not loaded, starting empty"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(0 from the prefix cache)"), std::string::npos) << r.out;
  // ... and the next run is warm again from the cache this one saved.
  const auto again = run_qcoder(generate_args(dir), /*merge_stderr=*/true);
  EXPECT_NE(again.out.find("(6 from the prefix cache)"), std::string::npos) << again.out;
}

TEST(PrefixCacheCli, FimTypingBenchRecomputesOnlyTheNewTokens) {
  const auto r = run_qcoder("bench fim-typing --model " + std::string(QCODER_TEST_DATA_DIR) +
                                "/tiny-qwen3next/bf16 --file-tokens 300 --chars 5 --cold-runs 1 --max-tokens 2 "
                                "--prefix-cache 64MiB --json --log-level warn",
                            /*merge_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["keystrokes"].get<int>(), 5);
  EXPECT_GE(j["prompt_tokens"].get<int>(), 300);
  // A keystroke appends a character to the middle part: a token or two to compute, never the prompt.
  EXPECT_GE(j["recomputed_tokens_p50"].get<double>(), 1.0);
  EXPECT_LE(j["recomputed_tokens_p50"].get<double>(), 3.0);
  // The jump to an earlier line leaves the cached path early and recomputes most of the prompt.
  EXPECT_GT(j["jump_recomputed_tokens"].get<int>(), j["prompt_tokens"].get<int>() / 2);
  EXPECT_LE(j["cache_bytes"].get<std::uint64_t>(), j["cache_budget"].get<std::uint64_t>());
  EXPECT_GT(j["snapshots"].get<int>(), 5);
}

}  // namespace
