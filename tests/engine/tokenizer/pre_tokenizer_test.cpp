#include "engine/tokenizer/pre_tokenizer.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view piece : split_qwen(text)) out.emplace_back(piece);
  return out;
}

using pieces = std::vector<std::string>;

// Expected splits were produced by Python's `regex` module with the pattern from tokenizer.json.
TEST(TokenizerPreTokenizer, MatchesTheRegexOnTypicalText) {
  EXPECT_EQ(split("Hello world"), (pieces{"Hello", " world"}));
  EXPECT_EQ(split("x=1_000"), (pieces{"x", "=", "1", "_", "0", "0", "0"}));
  EXPECT_EQ(split("foo();\n\n}\n"), (pieces{"foo", "();\n\n", "}\n"}));
  EXPECT_EQ(split(" (a)"), (pieces{" (", "a", ")"}));
  EXPECT_EQ(split("\tfoo"), (pieces{"\tfoo"}));
  EXPECT_EQ(split("1234"), (pieces{"1", "2", "3", "4"}));
  EXPECT_EQ(split(" 12"), (pieces{" ", "1", "2"}));
  EXPECT_EQ(split("?!\n"), (pieces{"?!\n"}));
  EXPECT_EQ(split(""), pieces{});
}

TEST(TokenizerPreTokenizer, ContractionsAreCaseInsensitive) {
  EXPECT_EQ(split("it's"), (pieces{"it", "'s"}));
  EXPECT_EQ(split("they'LL"), (pieces{"they", "'LL"}));
  EXPECT_EQ(split("we'Ve"), (pieces{"we", "'Ve"}));
  EXPECT_EQ(split("'sam"), (pieces{"'s", "am"}));
  EXPECT_EQ(split("'x"), (pieces{"'x"}));
  EXPECT_EQ(split("'"), (pieces{"'"}));
}

TEST(TokenizerPreTokenizer, WhiteSpaceRunsLeaveOneSpaceForTheNextWord) {
  EXPECT_EQ(split("a   b"), (pieces{"a", "  ", " b"}));
  EXPECT_EQ(split("end   "), (pieces{"end", "   "}));
  EXPECT_EQ(split("  \n\n  x"), (pieces{"  \n\n", " ", " x"}));
  EXPECT_EQ(split("x  \n  y"), (pieces{"x", "  \n", " ", " y"}));
  EXPECT_EQ(split("\r\n\r\n"), (pieces{"\r\n\r\n"}));
}

TEST(TokenizerPreTokenizer, UsesUnicodeClasses) {
  EXPECT_EQ(split("\xC2\xA0nbsp"), (pieces{"\xC2\xA0nbsp"}));                                  // NBSP + word
  EXPECT_EQ(split("a\xE2\x80\x83\xE2\x80\x83" "b"), (pieces{"a", "\xE2\x80\x83", "\xE2\x80\x83" "b"}));  // em spaces
  EXPECT_EQ(split("e\xCC\x81"), (pieces{"e", "\xCC\x81"}));                                    // a mark is not \p{L}
  EXPECT_EQ(split("a\xC2\x85" "b"), (pieces{"a", "\xC2\x85" "b"}));                            // U+0085
  EXPECT_EQ(split("\xEF\xBB\xBFimport"), (pieces{"\xEF\xBB\xBFimport"}));                      // BOM + word
  EXPECT_EQ(split("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"), (pieces{"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE"}));
  EXPECT_EQ(split("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ok"), (pieces{"\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", " ok"}));
}

TEST(TokenizerPreTokenizer, InvalidBytesArePunctuationAndCovered) {
  EXPECT_EQ(split("\xFF" "abc"), (pieces{"\xFF" "abc"}));
  EXPECT_EQ(split("a \xFF\xFE;"), (pieces{"a", " \xFF\xFE;"}));
  EXPECT_EQ(split("x\xC3"), (pieces{"x", "\xC3"}));  // truncated sequence at the end
  EXPECT_EQ(split("'\xFF"), (pieces{"'\xFF"}));
}

TEST(TokenizerPreTokenizer, PiecesAlwaysCoverTheInput) {
  std::string text;
  for (int i = 0; i < 4096; ++i) text.push_back(static_cast<char>((i * 7919 + i / 13) & 0xFF));
  std::string joined;
  for (std::string_view piece : split_qwen(text)) {
    ASSERT_FALSE(piece.empty());
    joined.append(piece);
  }
  EXPECT_EQ(joined, text);
}

}  // namespace
}  // namespace qcoder::engine
