// Inline completion end to end on the tiny model: the mode decision gates generation, the prompt goes
// through the prefix cache, cancellation and the partial callback stop generation.
#include "service/completion.h"

#include <filesystem>

#include <gtest/gtest.h>

namespace qcoder::service {
namespace {
namespace fs = std::filesystem;

const fs::path model_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next" / "bf16";

class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine::model_options options;
    options.threads = 1;
    auto loaded = engine::qwen3_next::load(model_dir, options);
    ASSERT_TRUE(loaded) << loaded.err().message;
    model_ = std::move(loaded).value();
    auto service = completion_service::create(model_dir);
    ASSERT_TRUE(service) << service.err().message;
    service_ = std::move(service).value();
    cache_ = std::make_unique<engine::prefix_cache>(model_->config(), engine::prefix_cache_options{32u << 20});
    backend_ = std::make_unique<engine_backend>(service_->shared_tokenizer(), *model_, cache_.get());
  }
  completion_request request(std::string text, std::size_t cursor) {
    completion_request r;
    r.path = "src/calc.py";
    r.lang = context::language::python;
    r.text = std::move(text);
    r.cursor = cursor;
    r.max_tokens = 16;
    return r;
  }
  std::unique_ptr<engine::qwen3_next> model_;
  std::unique_ptr<completion_service> service_;
  std::unique_ptr<engine::prefix_cache> cache_;
  std::unique_ptr<engine_backend> backend_;
};

TEST_F(CompletionTest, AnEmptyBodyGetsAMultiLineCompletionThroughTheCache) {
  const std::string text = "def add(a, b):\n    \n\nprint(add(1, 2))\n";
  const std::size_t cursor = text.find("    \n") + 4;
  auto first = service_->complete(*backend_, request(text, cursor));
  ASSERT_TRUE(first) << first.err().message;
  EXPECT_EQ(first->mode, context::completion_mode::multi_line) << first->reason;
  EXPECT_GT(first->prompt_tokens, 10u);
  EXPECT_GT(first->generated_tokens, 0u);
  EXPECT_EQ(first->restored_tokens, 0);
  // The same request again: the prompt is in the cache, and the output is the same (greedy).
  auto again = service_->complete(*backend_, request(text, cursor));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->restored_tokens, static_cast<std::int64_t>(again->prompt_tokens));
  EXPECT_EQ(again->items, first->items);
}

TEST_F(CompletionTest, InsideAStringNothingIsGenerated) {
  const std::string text = "name = \"hello world\"\n";
  auto r = service_->complete(*backend_, request(text, text.find("world")));
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(r->mode, context::completion_mode::none);
  EXPECT_EQ(r->generated_tokens, 0u);
  EXPECT_TRUE(r->items.empty());
}

TEST_F(CompletionTest, CancellationAndThePartialCallbackStopGeneration) {
  const std::string text = "def add(a, b):\n    \n";
  std::stop_source stop;
  stop.request_stop();
  completion_request cancelled = request(text, text.find("    \n") + 4);
  cancelled.stop = stop.get_token();
  auto r = service_->complete(*backend_, cancelled);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->cancelled);
  EXPECT_TRUE(r->items.empty());

  completion_request bounded = request(text, text.find("    \n") + 4);
  bounded.max_tokens = 64;
  int calls = 0;
  bounded.on_partial = [&calls](const std::string&) { return ++calls < 2; };
  auto partial = service_->complete(*backend_, bounded);
  ASSERT_TRUE(partial);
  EXPECT_LE(calls, 2);
  EXPECT_LT(partial->generated_tokens, 64u);
}

TEST_F(CompletionTest, CursorPastTheEndIsAnError) {
  auto r = service_->complete(*backend_, request("x = 1\n", 100));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace qcoder::service
