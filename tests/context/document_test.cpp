#include "context/document.h"

#include <random>
#include <string>

#include <gtest/gtest.h>
#include <tree_sitter/api.h>

namespace qcoder::context {
namespace {

std::string tree_string(const TSTree* tree) {
  char* s = ts_node_string(ts_tree_root_node(tree));
  std::string out(s);
  free(s);  // NOLINT: tree-sitter allocates with malloc
  return out;
}

TEST(Document, Utf16ColumnsThroughAstralCharactersAndCrlf) {
  // "a😀b" = a (1 unit), U+1F600 (2 units, 4 bytes), b; then CRLF, then "é" (1 unit, 2 bytes).
  document doc("x.txt", std::nullopt, "a\xF0\x9F\x98\x80" "b\r\n\xC3\xA9x\rlast");
  ASSERT_EQ(doc.line_count(), 3u);
  EXPECT_EQ(doc.line_text(0), "a\xF0\x9F\x98\x80" "b");
  EXPECT_EQ(doc.line_text(2), "last");  // a lone CR ends a line too
  EXPECT_EQ(*doc.offset_at({0, 3}, column_unit::utf16), 5u);   // before b
  EXPECT_EQ(*doc.offset_at({0, 6}, column_unit::utf8), 6u);    // end of line 0 in bytes
  EXPECT_EQ(*doc.offset_at({0, 4}, column_unit::utf16), 6u);   // end of line 0
  EXPECT_EQ(*doc.offset_at({1, 1}, column_unit::utf16), 10u);  // after é
  EXPECT_EQ(*doc.offset_at({1, 2}, column_unit::utf8), 10u);
  EXPECT_EQ(*doc.position_at(5, column_unit::utf16), (text_position{0, 3}));
  EXPECT_EQ(*doc.position_at(10, column_unit::utf8), (text_position{1, 2}));
  EXPECT_EQ(*doc.position_at(12, column_unit::utf16), (text_position{2, 0}));

  // Out of range or inside a character: errors, not crashes.
  EXPECT_FALSE(doc.offset_at({0, 2}, column_unit::utf16));  // between the surrogates
  EXPECT_FALSE(doc.offset_at({0, 5}, column_unit::utf16));  // past the end of the line
  EXPECT_FALSE(doc.offset_at({0, 2}, column_unit::utf8));   // inside the emoji's bytes
  EXPECT_FALSE(doc.offset_at({3, 0}, column_unit::utf16));  // past the last line
  EXPECT_FALSE(doc.position_at(7, column_unit::utf16));     // between \r and \n
  EXPECT_FALSE(doc.position_at(100, column_unit::utf16));
  EXPECT_EQ(doc.offset_at({0, 2}, column_unit::utf16).err().code, errc::invalid_argument);
}

TEST(Document, InvalidUtf8IsKeptByteExactAndCountsOneUnit) {
  const std::string text = "x = \"\xFF\xC0\x80\"\n";  // a stray byte and an overlong NUL
  document doc("bad.py", language::python, text);
  EXPECT_EQ(doc.text(), text);
  EXPECT_EQ(*doc.offset_at({0, 6}, column_unit::utf16), 6u);  // each invalid byte is one unit
  EXPECT_EQ(*doc.position_at(7, column_unit::utf16), (text_position{0, 7}));
  ASSERT_TRUE(doc.replace(5, 6, "ok"));
  EXPECT_EQ(doc.text(), "x = \"ok\xC0\x80\"\n");
  EXPECT_NE(doc.tree(), nullptr);  // parsed despite the bytes
}

TEST(Document, UnknownLanguageIsPlainText) {
  document doc = document::from_path("notes.txt", "some text\n");
  EXPECT_FALSE(doc.lang().has_value());
  EXPECT_EQ(doc.tree(), nullptr);
  EXPECT_EQ(doc.view().text, "some text\n");
  ASSERT_TRUE(doc.replace(0, 4, "more"));
  EXPECT_EQ(doc.parse_count(), 0u);
}

TEST(Document, LspRangeEditsAndBadRanges) {
  document doc("a.py", language::python, "def f():\n    return 1\n");
  ASSERT_TRUE(doc.replace({1, 11}, {1, 12}, column_unit::utf16, "2"));
  EXPECT_EQ(doc.text(), "def f():\n    return 2\n");
  EXPECT_FALSE(doc.replace({1, 12}, {1, 11}, column_unit::utf16, "x"));  // reversed
  EXPECT_FALSE(doc.replace({5, 0}, {5, 0}, column_unit::utf16, "x"));
  EXPECT_FALSE(doc.replace(10, 1000, "x"));
  EXPECT_EQ(doc.text(), "def f():\n    return 2\n");
}

// Random edits against a std::string model: text, line index, and (optionally) the incremental tree
// against a fresh parse.
void random_edits(int lines, int edits, bool compare_trees) {
  std::string model;
  for (int i = 0; i < lines / 2; ++i) model += "def f" + std::to_string(i) + "(x):\n    return x + " + std::to_string(i) + "\n";
  document doc("big.py", language::python, model);
  ASSERT_NE(doc.tree(), nullptr);
  std::mt19937 rng(7);
  const char* inserts[] = {"", "\n", "\r\n", "\r", "y", "  z = 1\n", "\xF0\x9F\x98\x80", "(", "\xFF"};
  for (int step = 0; step < edits; ++step) {
    const std::size_t begin = rng() % (model.size() + 1);
    const std::size_t end = std::min(model.size(), begin + rng() % 8);
    const std::string text = inserts[rng() % std::size(inserts)];
    ASSERT_TRUE(doc.replace(begin, end, text));
    model.replace(begin, end - begin, text);
    if (compare_trees && step % 10 == 9) {
      ASSERT_NE(doc.tree(), nullptr);  // incremental reparses along the way
    }
    if (step % 100 == 99 || step + 1 == edits) {
      ASSERT_EQ(doc.text(), model);
      document fresh("big.py", std::nullopt, model);  // the line index agrees with a fresh one
      ASSERT_EQ(doc.line_count(), fresh.line_count());
      for (std::size_t line = 0; line < fresh.line_count(); line += 97) {
        ASSERT_EQ(doc.line_start(line), fresh.line_start(line)) << line;
      }
    }
  }
  const TSTree* tree = doc.tree();
  ASSERT_NE(tree, nullptr);
  EXPECT_EQ(ts_node_end_byte(ts_tree_root_node(tree)), model.size());
  if (compare_trees) {
    document fresh("big.py", language::python, model);
    EXPECT_EQ(tree_string(tree), tree_string(fresh.tree()));
  }
}

// Edits that start at the first byte: the first line still starts at 0, and emptying the document leaves
// one empty line that the next edit can address (Neovim sends exactly this for :%delete then new lines).
TEST(Document, EditsAtTheStartKeepTheFirstLine) {
  document doc("x.py", language::python, "a\nb\n");
  ASSERT_TRUE(doc.replace({0, 0}, {0, 0}, column_unit::utf16, "x"));
  EXPECT_EQ(doc.line_count(), 3u);
  EXPECT_EQ(doc.line_text(0), "xa");
  ASSERT_TRUE(doc.replace({0, 0}, {1, 0}, column_unit::utf16, ""));
  EXPECT_EQ(doc.text(), "b\n");
  EXPECT_EQ(doc.line_count(), 2u);
  ASSERT_TRUE(doc.replace({0, 0}, {1, 0}, column_unit::utf16, ""));
  EXPECT_EQ(doc.text(), "");
  EXPECT_EQ(doc.line_count(), 1u);
  ASSERT_TRUE(doc.replace({0, 0}, {0, 0}, column_unit::utf16, "one\ntwo\n"));
  EXPECT_EQ(doc.text(), "one\ntwo\n");
  EXPECT_EQ(doc.line_count(), 3u);
  EXPECT_EQ(*doc.offset_at({1, 1}, column_unit::utf16), 5u);
  ASSERT_TRUE(doc.replace({0, 0}, {0, 3}, column_unit::utf16, "\n"));
  EXPECT_EQ(doc.text(), "\n\ntwo\n");
  EXPECT_EQ(doc.line_count(), 4u);
  EXPECT_EQ(doc.line_text(2), "two");
}

TEST(Document, FiftyThousandLinesRandomEditsMatchAModel) { random_edits(50000, 300, false); }

TEST(Document, IncrementalTreeEqualsAFreshParse) { random_edits(2000, 200, true); }

TEST(Document, ABurstOfEditsCostsOneReparse) {
  document doc("a.ts", language::typescript, "function f(a: number) {\n  return a;\n}\n");
  ASSERT_NE(doc.tree(), nullptr);
  const std::uint64_t parses = doc.parse_count();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(doc.replace(34, 34, "+1"));
  EXPECT_EQ(doc.parse_count(), parses);
  const source_view view = doc.view();
  EXPECT_EQ(doc.parse_count(), parses + 1);
  EXPECT_EQ(view.text, "function f(a: number) {\n  return a+1+1+1+1+1+1+1+1+1+1;\n}\n");
  EXPECT_FALSE(ts_node_has_error(ts_tree_root_node(view.tree)));
}

TEST(Document, DecodeUtf8RejectsMalformedSequences) {
  EXPECT_TRUE(decode_utf8("\xE2\x82\xAC", 0).valid);                                  // €
  EXPECT_FALSE(decode_utf8("\xED\xA0\x80", 0).valid);                                 // a surrogate
  EXPECT_FALSE(decode_utf8("\xF4\x90\x80\x80", 0).valid);                             // past U+10FFFF
  EXPECT_FALSE(decode_utf8("\xE0\x80\xAF", 0).valid);                                 // overlong
  EXPECT_FALSE(decode_utf8("\xE2\x82", 0).valid);                                     // truncated
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80", 0).code_point, U'\U0001F600');
}

}  // namespace
}  // namespace qcoder::context
