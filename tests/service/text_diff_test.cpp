// Minimal replacements: what changed and only that, and applying them always gives the new text.
#include "service/text_diff.h"

#include <random>

#include <gtest/gtest.h>

namespace qcoder::service {
namespace {

TEST(TextDiff, EqualTextsGiveNothing) {
  EXPECT_TRUE(diff_texts("a\nb\n", "a\nb\n").empty());
  EXPECT_TRUE(diff_texts("", "").empty());
}

TEST(TextDiff, AnInsertedDocstringIsOneInsertion) {
  const std::string before = "def f(x):\n    return x + 1\n";
  const std::string after = "def f(x):\n    \"\"\"Adds one.\"\"\"\n    return x + 1\n";
  const auto edits = diff_texts(before, after);
  ASSERT_EQ(edits.size(), 1u);
  EXPECT_EQ(edits[0].begin, 10u);  // the start of the body's line
  EXPECT_EQ(edits[0].end, 10u);
  EXPECT_EQ(edits[0].text, "    \"\"\"Adds one.\"\"\"\n");
}

TEST(TextDiff, AChangedWordIsNarrowedToTheWord) {
  const auto edits = diff_texts("x = compute(a)\ny = 2\n", "x = compute(b)\ny = 2\n");
  ASSERT_EQ(edits.size(), 1u);
  EXPECT_EQ(edits[0], (text_replacement{12, 13, "b"}));
}

TEST(TextDiff, SeparateChangesStaySeparate) {
  const std::string before = "a\nb\nc\nd\ne\n";
  const std::string after = "A\nb\nc\nd\nE\n";
  const auto edits = diff_texts(before, after);
  ASSERT_EQ(edits.size(), 2u);
  EXPECT_EQ(edits[0], (text_replacement{0, 1, "A"}));
  EXPECT_EQ(edits[1], (text_replacement{8, 9, "E"}));
}

TEST(TextDiff, NarrowingNeverSplitsACharacter) {
  // "é" and "è" share their first byte; the replacement must take the whole character.
  const std::string before = "s = \"caf\xC3\xA9\"\n";
  const std::string after = "s = \"caf\xC3\xA8\"\n";
  const auto edits = diff_texts(before, after);
  ASSERT_EQ(edits.size(), 1u);
  EXPECT_EQ(edits[0].begin, 8u);
  EXPECT_EQ(edits[0].text, "\xC3\xA8");
}

TEST(TextDiff, RandomEditsRoundTrip) {
  std::mt19937 rng(7);
  const std::vector<std::string> pool = {"alpha\n", "beta\n", "gamma\n", "delta\n", "\n", "    x = 1\n", "}\n", "z"};
  for (int round = 0; round < 500; ++round) {
    std::string a, b;
    const int na = static_cast<int>(rng() % 12), nb = static_cast<int>(rng() % 12);
    for (int i = 0; i < na; ++i) a += pool[rng() % pool.size()];
    for (int i = 0; i < nb; ++i) b += pool[rng() % pool.size()];
    const auto edits = diff_texts(a, b);
    EXPECT_EQ(apply_replacements(a, edits), b) << "round " << round;
    for (std::size_t i = 1; i < edits.size(); ++i) EXPECT_LE(edits[i - 1].end, edits[i].begin);
    // The bounded fallback gives a correct (coarser) answer too.
    EXPECT_EQ(apply_replacements(a, diff_texts(a, b, /*max_cells=*/4)), b) << "round " << round;
  }
}

}  // namespace
}  // namespace qcoder::service
