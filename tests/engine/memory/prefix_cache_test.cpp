// The prefix cache on the tiny checkpoints: a prompt served from the cache gives the logits a cold run
// gives (prefixes ending between snapshots, exact repeats, after evictions under a tiny budget, after a
// save and load), the budget always holds and the byte accounting matches the allocations, and bad cache
// files are refused without damage.
#include "engine/memory/prefix_cache.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "engine/generate.h"
#include "engine/prefill.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path model_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next" / "bf16";
constexpr std::int64_t capacity = 512;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class PrefixCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_options options;
    options.threads = 2;
    options.max_batch = 32;
    result<std::unique_ptr<qwen3_next>> loaded = qwen3_next::load(model_dir, options);
    ASSERT_TRUE(loaded) << loaded.err().message;
    model_ = std::move(loaded).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }

  std::int64_t vocab() const { return model_->config().vocab_size; }

  std::vector<std::int32_t> random_tokens(std::size_t n, unsigned seed) const {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(vocab() - 1));
    std::vector<std::int32_t> out(n);
    for (auto& t : out) t = pick(rng);
    return out;
  }

  // Logits after the last token, computed from an empty state.
  std::vector<float> cold(std::span<const std::int32_t> tokens) const {
    sequence_state state = model_->new_state(capacity);
    std::vector<float> logits(static_cast<std::size_t>(vocab()));
    EXPECT_TRUE(model_->forward(tokens, state, logits.data(), logits_mode::last));
    return logits;
  }

  // Logits through the cache; `report` says what was restored and computed.
  std::vector<float> warm(prefix_cache& cache, std::span<const std::int32_t> tokens, prefill_report& report,
                          const prefill_plan& plan = {{}, 16, 4}) const {
    sequence_state state = model_->new_state(capacity);
    std::vector<float> logits(static_cast<std::size_t>(vocab()), -1.0f);
    result<prefill_report> r = prefill(*model_, &cache, tokens, state, logits.data(), plan);
    EXPECT_TRUE(r) << (r ? "" : r.err().message);
    if (r) report = r.value();
    EXPECT_EQ(state.length(), static_cast<std::int64_t>(tokens.size()));
    return logits;
  }

  prefix_cache make_cache(std::uint64_t budget, std::int64_t page_tokens = 8) const {
    return prefix_cache(model_->config(), {budget, page_tokens});
  }

  static qwen3_next* model_;
};

qwen3_next* PrefixCacheTest::model_ = nullptr;

constexpr float same = 0.0f;

TEST_F(PrefixCacheTest, ServesPrefixesEndingBetweenSnapshotsWithColdLogits) {
  prefix_cache cache = make_cache(256u << 20);
  const std::vector<std::int32_t> a = random_tokens(100, 1);
  prefill_report report;
  const std::vector<float> first = warm(cache, a, report);
  EXPECT_EQ(report.restored, 0);
  EXPECT_EQ(report.computed, 100);
  EXPECT_LE(max_abs_diff(first, cold(a)), same);

  // Shares 70 tokens with a: snapshots at 16, 32, ..., 96 (stride) and 100 (end); 64 is the deepest usable.
  std::vector<std::int32_t> b(a.begin(), a.begin() + 70);
  const std::vector<std::int32_t> tail = random_tokens(30, 2);
  b.insert(b.end(), tail.begin(), tail.end());
  const std::vector<float> second = warm(cache, b, report);
  EXPECT_EQ(report.restored, 64);
  EXPECT_EQ(report.computed, 36);
  EXPECT_LE(max_abs_diff(second, cold(b)), same);

  // b left the tree at 70, so a snapshot was taken there: a third prompt sharing 75 tokens with b starts at 70.
  std::vector<std::int32_t> c(b.begin(), b.begin() + 75);
  c.push_back(3);
  const std::vector<float> third = warm(cache, c, report);
  EXPECT_EQ(report.restored, 70);
  EXPECT_LE(max_abs_diff(third, cold(c)), same);
}

TEST_F(PrefixCacheTest, NoShortSegmentsForAutomaticSnapshots) {
  // With the default minimum segment, a branch point 6 tokens past the restore point is not worth a
  // separate forward pass: the prompt runs in one segment and gets only its end snapshot.
  prefix_cache cache = make_cache(256u << 20);
  const prefill_plan plan{{}, 16, 16};
  const std::vector<std::int32_t> a = random_tokens(100, 1);
  prefill_report report;
  warm(cache, a, report, plan);
  const std::int64_t after_a = cache.snapshot_count();
  EXPECT_EQ(after_a, 6);  // 16, 32, 48, 64, 80 and the end (96 is within 16 of it)
  std::vector<std::int32_t> b(a.begin(), a.begin() + 70);
  const std::vector<std::int32_t> tail = random_tokens(30, 2);
  b.insert(b.end(), tail.begin(), tail.end());
  warm(cache, b, report, plan);
  EXPECT_EQ(report.restored, 64);
  EXPECT_EQ(cache.snapshot_count(), after_a + 2);  // 80 (stride, 16 past 64) and the end; not 70
}

TEST_F(PrefixCacheTest, ExactRepeatIsServedFromStoredLogitsWithoutCompute) {
  prefix_cache cache = make_cache(256u << 20);
  const std::vector<std::int32_t> a = random_tokens(40, 3);
  prefill_report report;
  const std::vector<float> first = warm(cache, a, report);
  const std::vector<float> again = warm(cache, a, report);
  EXPECT_EQ(report.restored, 40);
  EXPECT_EQ(report.computed, 0);
  EXPECT_EQ(max_abs_diff(first, again), 0.0f);

  // A prefix of a cached prompt that ends inside an edge: the node is split and still serves correctly.
  const std::vector<std::int32_t> shorter(a.begin(), a.begin() + 37);
  const std::vector<float> part = warm(cache, shorter, report);
  EXPECT_EQ(report.restored, 32);
  EXPECT_LE(max_abs_diff(part, cold(shorter)), same);
  EXPECT_EQ(cache.audit_bytes(), cache.bytes());
}

TEST_F(PrefixCacheTest, ShortPromptsAreCachedToo) {
  prefix_cache cache = make_cache(64u << 20);
  const std::vector<std::int32_t> a = {5, 9};
  prefill_report report;
  warm(cache, a, report);
  const std::vector<std::int32_t> b = {5, 9, 11};
  const std::vector<float> logits = warm(cache, b, report);
  EXPECT_EQ(report.restored, 2);
  EXPECT_EQ(report.computed, 1);
  EXPECT_LE(max_abs_diff(logits, cold(b)), same);
}

TEST_F(PrefixCacheTest, GenerateContinuesFromTheFinishedRequest) {
  prefix_cache cache = make_cache(256u << 20);
  generation_request request;
  request.prompt = random_tokens(30, 4);
  request.max_tokens = 6;
  request.sampling.temperature = 0.0f;
  request.cache = &cache;
  sequence_state state = model_->new_state(capacity);
  result<generation_result> first = generate(*model_, state, request);
  ASSERT_TRUE(first) << first.err().message;
  ASSERT_EQ(first.value().tokens.size(), 6u);

  // The follow-up prompt is the first prompt plus its output: all but the last output token was fed, so
  // the cache holds 35 tokens and their logits.
  std::vector<std::int32_t> follow = request.prompt;
  follow.insert(follow.end(), first.value().tokens.begin(), first.value().tokens.end());
  prefill_report report;
  const std::vector<float> logits = warm(cache, follow, report);
  EXPECT_EQ(report.restored, 35);
  EXPECT_EQ(report.computed, 1);
  EXPECT_LE(max_abs_diff(logits, cold(follow)), same);
}

TEST_F(PrefixCacheTest, BudgetHoldsAndAccountingIsExactUnderRandomTraffic) {
  // Room for a few snapshots only, so nearly every insert evicts.
  const std::uint64_t budget = 3 * make_cache(1).snapshot_bytes() + 40 * make_cache(1).kv_bytes_per_token();
  prefix_cache cache = make_cache(budget, 4);
  std::mt19937 rng(7);
  std::vector<std::vector<std::int32_t>> prompts;
  std::int64_t evictions_seen = 0;
  for (int step = 0; step < 40; ++step) {
    std::vector<std::int32_t> p;
    if (!prompts.empty() && rng() % 3 != 0) {  // mostly continue or branch off an earlier prompt
      const auto& base = prompts[rng() % prompts.size()];
      p.assign(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(rng() % (base.size() + 1)));
    }
    const std::vector<std::int32_t> extra = random_tokens(1 + rng() % 12, static_cast<unsigned>(100 + step));
    p.insert(p.end(), extra.begin(), extra.end());
    prefill_report report;
    const std::vector<float> logits = warm(cache, p, report, {{}, 8, 4});
    EXPECT_LE(cache.bytes(), budget) << "step " << step;
    EXPECT_EQ(cache.audit_bytes(), cache.bytes()) << "step " << step;
    if (step % 8 == 0) {
      EXPECT_LE(max_abs_diff(logits, cold(p)), same) << "step " << step << ", restored " << report.restored;
    }
    prompts.push_back(p);
  }
  evictions_seen = static_cast<std::int64_t>(cache.stats().nodes_evicted + cache.stats().snapshots_evicted);
  EXPECT_GT(evictions_seen, 0);
  EXPECT_GT(cache.stats().hits, 0u);
}

TEST_F(PrefixCacheTest, EntryLargerThanTheBudgetIsNotStored) {
  prefix_cache cache = make_cache(make_cache(1).snapshot_bytes() / 2);
  prefill_report report;
  const std::vector<std::int32_t> a = random_tokens(20, 5);
  warm(cache, a, report);
  EXPECT_EQ(cache.node_count(), 0);
  EXPECT_GT(cache.stats().inserts_refused, 0u);
  EXPECT_LE(cache.bytes(), cache.budget());
}

TEST_F(PrefixCacheTest, SaveAndLoadKeepEveryEntry) {
  const fs::path dir = fs::path(::testing::TempDir()) / "qcoder-prefix-cache-test";
  fs::create_directories(dir);
  const fs::path file = dir / "cache.bin";
  result<std::string> identity = model_identity(model_dir);
  ASSERT_TRUE(identity) << identity.err().message;

  prefix_cache cache = make_cache(256u << 20);
  const std::vector<std::int32_t> a = random_tokens(50, 6);
  prefill_report report;
  warm(cache, a, report);
  ASSERT_TRUE(cache.save(file, identity.value()));

  // Loaded with another page size: rows are stored per node.
  prefix_cache loaded = make_cache(256u << 20, 5);
  ASSERT_TRUE(loaded.load(file, identity.value()));
  EXPECT_EQ(loaded.node_count(), cache.node_count());
  EXPECT_EQ(loaded.snapshot_count(), cache.snapshot_count());
  EXPECT_EQ(loaded.audit_bytes(), loaded.bytes());
  std::vector<std::int32_t> b(a.begin(), a.begin() + 45);
  b.push_back(7);
  const std::vector<float> logits = warm(loaded, b, report);
  EXPECT_EQ(report.restored, 32);
  EXPECT_LE(max_abs_diff(logits, cold(b)), same);

  // A smaller budget on load drops entries until it fits.
  prefix_cache small = make_cache(cache.bytes() / 2, 8);
  ASSERT_TRUE(small.load(file, identity.value()));
  EXPECT_LE(small.bytes(), small.budget());
  EXPECT_LT(small.snapshot_count(), cache.snapshot_count());
  EXPECT_EQ(small.audit_bytes(), small.bytes());
}

TEST_F(PrefixCacheTest, BadFilesAreRefusedAndLeaveTheCacheEmpty) {
  const fs::path dir = fs::path(::testing::TempDir()) / "qcoder-prefix-cache-bad";
  fs::create_directories(dir);
  const fs::path file = dir / "cache.bin";
  prefix_cache cache = make_cache(256u << 20);
  prefill_report report;
  warm(cache, random_tokens(30, 8), report);
  ASSERT_TRUE(cache.save(file, "model-a"));
  const auto size = fs::file_size(file);

  prefix_cache other = make_cache(256u << 20);
  result<void> wrong_model = other.load(file, "model-b");
  ASSERT_FALSE(wrong_model);
  EXPECT_NE(wrong_model.err().message.find("another model"), std::string::npos) << wrong_model.err().message;
  EXPECT_EQ(other.node_count(), 0);

  EXPECT_FALSE(other.load(dir / "missing.bin", "model-a"));

  const fs::path truncated = dir / "truncated.bin";
  fs::copy_file(file, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, size - 100);
  result<void> cut = other.load(truncated, "model-a");
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.err().code, errc::corrupt_data);
  EXPECT_EQ(other.node_count(), 0);
  EXPECT_EQ(other.bytes(), other.audit_bytes());

  const fs::path flipped = dir / "flipped.bin";
  fs::copy_file(file, flipped, fs::copy_options::overwrite_existing);
  {
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    char byte = 0;
    f.read(&byte, 1);
    f.seekp(static_cast<std::streamoff>(size / 2));
    byte = static_cast<char>(byte ^ 0x40);
    f.write(&byte, 1);
  }
  result<void> corrupt = other.load(flipped, "model-a");
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.err().code, errc::corrupt_data);
  EXPECT_EQ(other.node_count(), 0);
}

TEST(ModelIdentityTest, DiffersBetweenCheckpointsAndIsStable) {
  const fs::path root = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";
  result<std::string> bf16 = model_identity(root / "bf16");
  result<std::string> bf16_again = model_identity(root / "bf16");
  result<std::string> fp8 = model_identity(root / "fp8");
  ASSERT_TRUE(bf16 && bf16_again && fp8);
  EXPECT_EQ(bf16.value(), bf16_again.value());
  EXPECT_NE(bf16.value(), fp8.value());
  EXPECT_FALSE(model_identity(root / "no-such-model"));
}

}  // namespace
}  // namespace qcoder::engine
