#include "engine/tokenizer/bpe.h"

#include <random>

#include <gtest/gtest.h>

#include "engine/tokenizer/tokenizer.h"

namespace qcoder::engine {
namespace {

TEST(TokenizerByteLevel, MapsEveryByteAndBack) {
  EXPECT_EQ(byte_level::char_of_byte(' '), U'\u0120');   // Ġ
  EXPECT_EQ(byte_level::char_of_byte('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(byte_level::char_of_byte('A'), U'A');
  EXPECT_EQ(byte_level::char_of_byte(0xAD), U'\u0143');  // soft hyphen is not printable
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string token = byte_level::to_token(all);
  EXPECT_EQ(byte_level::to_bytes(token), all);
  EXPECT_EQ(byte_level::to_bytes("\xC4\xA0hello"), " hello");
  EXPECT_EQ(byte_level::to_bytes("\xE4\xB8\xAD"), std::nullopt);  // 中 is not in the alphabet
  EXPECT_EQ(byte_level::to_bytes("\xFF"), std::nullopt);
}

// A model over the 256 bytes (id = byte value) with a few merges, ranked in this order.
bpe_model toy_model() {
  std::vector<std::string> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = std::string(1, static_cast<char>(b));
  for (const char* extra : {"ab", "abc", "bc", "aa", "aaaa"}) bytes.emplace_back(extra);
  bpe_model m(std::move(bytes), false);
  EXPECT_TRUE(m.add_merge('a', 'b', 256));
  EXPECT_TRUE(m.add_merge(256, 'c', 257));
  EXPECT_TRUE(m.add_merge('b', 'c', 258));
  EXPECT_TRUE(m.add_merge('a', 'a', 259));
  EXPECT_TRUE(m.add_merge(259, 259, 260));
  EXPECT_FALSE(m.add_merge('a', 'b', 258));  // a pair keeps its first rank
  return m;
}

std::vector<token_id> encode_word(const bpe_model& m, std::string_view word) {
  bpe_scratch scratch;
  std::vector<token_id> out;
  m.encode_word(word, scratch, out);
  return out;
}

TEST(TokenizerBpe, AppliesMergesLowestRankFirstLeftmostOnTies) {
  const bpe_model m = toy_model();
  EXPECT_TRUE(m.has_all_bytes());
  EXPECT_EQ(m.merge_count(), 5u);
  EXPECT_EQ(encode_word(m, "abc"), (std::vector<token_id>{257}));
  EXPECT_EQ(encode_word(m, "bcab"), (std::vector<token_id>{258, 256}));
  EXPECT_EQ(encode_word(m, "aaaaa"), (std::vector<token_id>{260, 'a'}));
  EXPECT_EQ(encode_word(m, "x"), (std::vector<token_id>{'x'}));
  EXPECT_EQ(encode_word(m, ""), (std::vector<token_id>{}));
  EXPECT_EQ(m.find("abc"), 257);
  EXPECT_EQ(m.find("zz"), std::nullopt);
  EXPECT_EQ(m.find_merge('a', 'b').merged, 256);
  EXPECT_EQ(m.find_merge('b', 'a').rank, bpe_model::no_rank);
}

TEST(TokenizerBpe, LongWordsUseTheHeapAndAgreeWithShortOnes) {
  const bpe_model m = toy_model();
  // 1000 'a': pairs to 'aaaa' x 250.
  const std::vector<token_id> ids = encode_word(m, std::string(1000, 'a'));
  EXPECT_EQ(ids, std::vector<token_id>(250, 260));
}

// The textbook algorithm, for comparison: merge the lowest-ranked pair (leftmost first) until none is left.
std::vector<token_id> reference_bpe(const bpe_model& m, std::string_view word) {
  std::vector<token_id> ids;
  for (char b : word) ids.push_back(*m.find(std::string_view(&b, 1)));
  for (;;) {
    std::uint32_t best = bpe_model::no_rank;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      const bpe_model::merge mm = m.find_merge(ids[i], ids[i + 1]);
      if (mm.rank < best) best = mm.rank, at = i;
    }
    if (best == bpe_model::no_rank) return ids;
    ids[at] = m.find_merge(ids[at], ids[at + 1]).merged;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
}

TEST(TokenizerBpe, AgreesWithTheTextbookAlgorithmOnTheTinyQwenVocabulary) {
  result<tokenizer> tok = tokenizer::load(std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16/tokenizer.json");
  ASSERT_TRUE(tok) << tok.err().message;
  const bpe_model& m = tok->bpe();
  std::mt19937 rng(42);
  const std::string alphabet = " etaoinsrhldcu\n_()";
  bpe_scratch scratch;  // reused across words, as an encoder does
  for (int trial = 0; trial < 400; ++trial) {
    const std::size_t length = 1 + rng() % (trial < 200 ? 48 : 400);  // short path, then the heap path
    std::string word;
    for (std::size_t i = 0; i < length; ++i) word.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<token_id> got;
    m.encode_word(word, scratch, got);
    ASSERT_EQ(got, reference_bpe(m, word)) << "word: " << word;
  }
}

TEST(TokenizerBpe, WordCacheFindsWhatWasInsertedAndStartsOverWhenFull) {
  word_cache cache(16);  // 8 words at most
  std::vector<token_id> out;
  EXPECT_FALSE(cache.find("hello", word_cache::hash("hello"), out));
  const std::vector<token_id> ids{1, 2, 3};
  cache.insert("hello", word_cache::hash("hello"), ids);
  EXPECT_TRUE(cache.find("hello", word_cache::hash("hello"), out));
  EXPECT_EQ(out, ids);
  EXPECT_FALSE(cache.find("hellp", word_cache::hash("hellp"), out));
  for (int i = 0; i < 7; ++i) {
    const std::string w = "w" + std::to_string(i);
    cache.insert(w, word_cache::hash(w), ids);
  }
  EXPECT_EQ(cache.size(), 8u);
  cache.insert("one-more", word_cache::hash("one-more"), ids);
  EXPECT_EQ(cache.size(), 1u);
  out.clear();
  EXPECT_FALSE(cache.find("hello", word_cache::hash("hello"), out));
  EXPECT_TRUE(cache.find("one-more", word_cache::hash("one-more"), out));
  // Words longer than the limit are not cached.
  const std::string long_word(word_cache::max_word_bytes + 1, 'x');
  cache.insert(long_word, word_cache::hash(long_word), ids);
  EXPECT_FALSE(cache.find(long_word, word_cache::hash(long_word), out));
}

}  // namespace
}  // namespace qcoder::engine
