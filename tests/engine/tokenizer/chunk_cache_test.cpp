#include "engine/tokenizer/chunk_cache.h"

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

const tokenizer& tiny() {
  static const result<tokenizer> tok =
      tokenizer::load(std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16/tokenizer.json");
  if (!tok) std::abort();
  return *tok;
}

std::vector<token_id> to_vector(std::span<const token_id> ids) { return {ids.begin(), ids.end()}; }

TEST(TokenizerChunkCache, SecondEncodeOfTheSameTextIsAHit) {
  encoder enc(tiny());
  chunk_cache cache(enc);
  const std::string text = "def add(a, b):\n    return a + b\n";
  const std::vector<token_id> first = to_vector(cache.encode(text));
  EXPECT_EQ(first, tiny().encode_text(text));
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(to_vector(cache.encode(text)), first);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.chunk_count(), 1u);
}

TEST(TokenizerChunkCache, SpecialModeIsPartOfTheKey) {
  encoder enc(tiny());
  chunk_cache cache(enc);
  const std::string text = "<|fim_prefix|>x";
  const std::vector<token_id> as_text = to_vector(cache.encode(text, false));
  const std::vector<token_id> as_prompt = to_vector(cache.encode(text, true));
  EXPECT_NE(as_text, as_prompt);
  EXPECT_EQ(as_prompt.front(), *tiny().find_token("<|fim_prefix|>"));
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(to_vector(cache.encode(text, false)), as_text);
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(TokenizerChunkCache, EvictsLeastRecentlyUsedPastTheBudget) {
  encoder enc(tiny());
  const std::string a(100, 'a'), b(100, 'b'), c(100, 'c');
  std::size_t budget = 0;
  for (const std::string* text : {&a, &b, &c}) {
    chunk_cache one(enc);
    one.encode(*text);
    budget += one.stored_bytes();
  }
  --budget;  // any two chunks fit, all three do not
  chunk_cache cache(enc, budget);
  cache.encode(a);
  cache.encode(b);
  cache.encode(a);  // a is now the most recent
  cache.encode(c);  // over budget: b goes
  EXPECT_LE(cache.stored_bytes(), budget);
  EXPECT_EQ(cache.chunk_count(), 2u);
  const std::uint64_t misses = cache.misses();
  cache.encode(a);
  EXPECT_EQ(cache.misses(), misses);
  cache.encode(b);
  EXPECT_EQ(cache.misses(), misses + 1);
  // A chunk bigger than the whole budget is still returned correctly.
  const std::string huge(5000, 'x');
  EXPECT_EQ(to_vector(cache.encode(huge)), tiny().encode_text(huge));
}

TEST(TokenizerChunkCache, LinesEncodedSeparatelyEqualTheWholeFile) {
  encoder enc(tiny());
  chunk_cache cache(enc);
  const std::string lines[] = {"import os\n", "def f(x):  \n", "    return x  # caf\xC3\xA9\n", "print(f(1))\n"};
  std::string whole;
  std::vector<token_id> joined;
  for (const std::string& line : lines) {
    whole += line;
    const std::span<const token_id> ids = cache.encode(line);
    joined.insert(joined.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(joined, tiny().encode_text(whole));
}

}  // namespace
}  // namespace qcoder::engine
