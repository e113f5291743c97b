#include "context/workspace_index.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qcoder::context {
namespace {
namespace fs = std::filesystem;
using testing::ElementsAre;

class WorkspaceIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qcoder-index-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel, std::ios::binary) << text;
  }
  fs::path root_;
};

TEST_F(WorkspaceIndexTest, RespectsGitignoreSkipsBinaryLargeAndDependencyFolders) {
  write(".gitignore", "generated/\n*.gen.py\n!keep.gen.py\n");
  write("src/util.py", "def helper(x):\n    return x\n");
  write("src/keep.gen.py", "def kept():\n    pass\n");
  write("src/drop.gen.py", "def dropped():\n    pass\n");
  write("generated/g.py", "def generated():\n    pass\n");
  write("node_modules/dep/index.js", "function dependency() {}\n");
  write("src/sub/.gitignore", "local.py\n");
  write("src/sub/local.py", "def local():\n    pass\n");
  write("src/blob.py", std::string("def binary():\n\0\0\0", 17));
  write("src/huge.py", "def huge():\n    pass\n" + std::string(3000, '#'));
  write("README.md", "# not code\n");
  index_options options;
  options.max_file_bytes = 2000;
  workspace_index index(options);
  index.start(root_);
  ASSERT_TRUE(index.wait());
  EXPECT_THAT(index.paths(), ElementsAre("src/keep.gen.py", "src/util.py"));
  const index_stats stats = index.stats();
  EXPECT_EQ(stats.skipped_binary, 1u);
  EXPECT_EQ(stats.skipped_large, 1u);
  EXPECT_TRUE(stats.complete);
  const std::vector<indexed_definition> found = index.lookup("helper");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].path, "src/util.py");
  EXPECT_EQ(found[0].def.first_line, "def helper(x):");
  EXPECT_TRUE(index.lookup("generated").empty());
}

TEST_F(WorkspaceIndexTest, UpdatesAndRemovesFiles) {
  write("a.ts", "export function alpha() {}\n");
  workspace_index index;
  index.start(root_);
  ASSERT_TRUE(index.wait());
  EXPECT_EQ(index.count("alpha"), 1u);
  index.update_file((root_ / "a.ts").string(), "export function beta() {}\n");
  EXPECT_EQ(index.count("alpha"), 0u);
  EXPECT_EQ(index.count("beta"), 1u);
  index.update_file("b.go", "package b\nfunc Beta() {}\n");
  EXPECT_EQ(index.lookup("Beta").at(0).path, "b.go");
  index.update_file("notes.txt", "beta");  // unknown language: ignored
  EXPECT_EQ(index.stats().files, 2u);
  index.remove_file("a.ts");
  EXPECT_EQ(index.count("beta"), 0u);
  EXPECT_EQ(index.stats().files, 1u);
}

TEST_F(WorkspaceIndexTest, MemoryBudgetKeepsSignaturesThenDrops) {
  std::string body;
  for (int i = 0; i < 40; ++i) body += "    x" + std::to_string(i) + " = " + std::to_string(i) + "\n";
  for (int f = 0; f < 6; ++f) write("m" + std::to_string(f) + ".py", "def f" + std::to_string(f) + "():\n" + body);
  index_options options;
  options.threads = 1;
  workspace_index unlimited(options);
  unlimited.start(root_);
  ASSERT_TRUE(unlimited.wait());
  const std::uint64_t full = unlimited.stats().bytes;
  ASSERT_EQ(unlimited.stats().files, 6u);

  options.max_total_bytes = full / 2;  // room for some snippets, then signatures only
  workspace_index half(options);
  half.start(root_);
  ASSERT_TRUE(half.wait());
  EXPECT_LE(half.stats().bytes, full / 2);
  EXPECT_GT(half.stats().signatures_only, 0u);
  EXPECT_GT(half.stats().files, 0u);
  EXPECT_FALSE(half.lookup("f0").at(0).def.snippet.empty());  // indexed first (name order), with its snippet
  EXPECT_TRUE(half.lookup("f5").empty() || half.lookup("f5")[0].def.snippet.empty());

  options.max_total_bytes = full / 20;  // not even signatures for all
  workspace_index tiny(options);
  tiny.start(root_);
  ASSERT_TRUE(tiny.wait());
  EXPECT_LE(tiny.stats().bytes, full / 20);
  EXPECT_GT(tiny.stats().dropped, 0u);
  EXPECT_LT(tiny.stats().files, 6u);
}

TEST_F(WorkspaceIndexTest, CancelsThroughTheStopToken) {
  for (int f = 0; f < 200; ++f) write("d/m" + std::to_string(f) + ".py", "def f():\n    pass\n");
  std::stop_source stop;
  stop.request_stop();  // cancelled before it starts: the build must notice and report it
  workspace_index index;
  index.start(root_, stop.get_token());
  EXPECT_FALSE(index.wait());
  EXPECT_FALSE(index.stats().complete);
  EXPECT_LT(index.stats().files, 200u);
}

TEST(WorkspaceIndex, ReferenceCountsFollowUpdates) {
  workspace_index index;
  index.update_file("a.py", "import util\nutil.helper(1)\nutil.helper(2)\n");
  index.update_file("b.py", "from util import helper\nhelper(3)\n");
  EXPECT_EQ(index.references("helper"), 4u);  // the import names it too
  EXPECT_EQ(index.references("util"), 4u);
  index.update_file("a.py", "x = 1\n");
  EXPECT_EQ(index.references("helper"), 2u);
  index.remove_file("b.py");
  EXPECT_EQ(index.references("helper"), 0u);
  EXPECT_EQ(index.references("nowhere"), 0u);
  workspace_index off(index_options{.count_references = false});
  off.update_file("a.py", "helper(1)\n");
  EXPECT_EQ(off.references("helper"), 0u);
}

TEST(WorkspaceIndex, BinaryAndSkippedFolders) {
  EXPECT_TRUE(looks_binary(std::string("ab\0c", 4)));
  EXPECT_FALSE(looks_binary("plain text"));
  EXPECT_TRUE(is_skipped_folder("node_modules"));
  EXPECT_TRUE(is_skipped_folder(".git"));
  EXPECT_FALSE(is_skipped_folder("src"));
}

}  // namespace
}  // namespace qcoder::context
