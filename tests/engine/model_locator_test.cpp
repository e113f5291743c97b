#include "engine/model_locator.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

class ModelLocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The process id too: CTest runs each test in its own process, two at a time, and gtest's seed comes from
    // the clock, so two processes started in the same millisecond would share (and remove) one folder.
    root_ = fs::temp_directory_path() /
            fmt::format("qcoder-locator-{}-{}", ::getpid(), ::testing::UnitTest::GetInstance()->random_seed());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes a snapshot folder with a config and (optionally) weights; returns its path.
  fs::path make_snapshot(const fs::path& hub, const std::string& repo, const std::string& revision,
                         bool with_weights = true) {
    const fs::path dir = hub / repo / "snapshots" / revision;
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << "{}";
    if (with_weights) std::ofstream(dir / "model.safetensors.index.json") << "{}";
    return dir;
  }

  fs::path root_;
};

TEST_F(ModelLocatorTest, ExplicitDirectoryWins) {
  const fs::path dir = root_ / "mine";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{}";
  make_snapshot(root_ / "home/.cache/huggingface/hub", "models--Qwen--Qwen3-Coder-Next-FP8", "abc");
  result<located_model> found = locate_model({dir.string(), "", "", (root_ / "home").string()});
  ASSERT_TRUE(found) << found.err().message;
  EXPECT_EQ(found->dir, dir);
  EXPECT_EQ(found->source, "--model");
}

TEST_F(ModelLocatorTest, ExplicitDirectoryWithoutConfigIsAnError) {
  const fs::path dir = root_ / "empty";
  fs::create_directories(dir);
  result<located_model> found = locate_model({dir.string(), "", "", ""});
  ASSERT_FALSE(found);
  EXPECT_EQ(found.err().code, errc::not_found);
  EXPECT_NE(found.err().message.find("no config.json"), std::string::npos);

  result<located_model> missing = locate_model({(root_ / "nope").string(), "", "", ""});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.err().message.find("no such directory"), std::string::npos);
}

TEST_F(ModelLocatorTest, PrefersFp8InTheHomeCache) {
  const fs::path hub = root_ / "home/.cache/huggingface/hub";
  make_snapshot(hub, "models--Qwen--Qwen3-Coder-Next", "r1");
  const fs::path fp8 = make_snapshot(hub, "models--Qwen--Qwen3-Coder-Next-FP8", "r2");
  make_snapshot(hub, "models--Other--Model", "r3");
  result<located_model> found = locate_model({"", "", "", (root_ / "home").string()});
  ASSERT_TRUE(found) << found.err().message;
  EXPECT_EQ(found->dir, fp8);
  EXPECT_NE(found->source.find("FP8"), std::string::npos);
}

TEST_F(ModelLocatorTest, HfHomeComesBeforeHomeAndRefsMainPicksTheRevision) {
  const fs::path hf_home_hub = root_ / "hf/hub";
  make_snapshot(hf_home_hub, "models--Qwen--Qwen3-Coder-Next", "old");
  const fs::path wanted = make_snapshot(hf_home_hub, "models--Qwen--Qwen3-Coder-Next", "new");
  fs::create_directories(hf_home_hub / "models--Qwen--Qwen3-Coder-Next" / "refs");
  std::ofstream(hf_home_hub / "models--Qwen--Qwen3-Coder-Next" / "refs" / "main") << "new\n";
  make_snapshot(root_ / "home/.cache/huggingface/hub", "models--Qwen--Qwen3-Coder-Next-FP8", "x");
  result<located_model> found = locate_model({"", "", (root_ / "hf").string(), (root_ / "home").string()});
  ASSERT_TRUE(found) << found.err().message;
  EXPECT_EQ(found->dir, wanted);
}

TEST_F(ModelLocatorTest, IncompleteSnapshotsAreSkipped) {
  const fs::path hub = root_ / "home/.cache/huggingface/hub";
  make_snapshot(hub, "models--Qwen--Qwen3-Coder-Next-FP8", "partial", /*with_weights=*/false);
  result<located_model> found = locate_model({"", "", "", (root_ / "home").string()});
  ASSERT_FALSE(found);
}

TEST_F(ModelLocatorTest, MissingModelMessageSaysWhereAndHow) {
  result<located_model> found = locate_model({"", (root_ / "hubcache").string(), "", (root_ / "home").string()});
  ASSERT_FALSE(found);
  const std::string& message = found.err().message;
  EXPECT_NE(message.find((root_ / "hubcache").string()), std::string::npos);
  EXPECT_NE(message.find((root_ / "home/.cache/huggingface/hub").string()), std::string::npos);
  EXPECT_NE(message.find("hf download Qwen/Qwen3-Coder-Next-FP8"), std::string::npos);
  EXPECT_NE(message.find("--model DIR"), std::string::npos);
}

}  // namespace
}  // namespace qcoder::engine
