#include "context/completion_filter.h"

#include <string>

#include <gtest/gtest.h>

namespace qcoder::context {
namespace {

struct mode_case {
  const char* name;
  language lang;
  const char* code;  // '|' marks the cursor
  completion_mode mode;
};

const mode_case mode_cases[] = {
    {"python_blank_line_in_body", language::python, "def f(x):\n    y = x\n    |\n", completion_mode::multi_line},
    {"python_after_signature", language::python, "def f(x):|\n", completion_mode::multi_line},
    {"python_in_string", language::python, "s = \"abc|def\"\n", completion_mode::none},
    {"python_rest_of_line", language::python, "total = compute(|)\n", completion_mode::single_line},
    {"python_comment", language::python, "# compute the |\n", completion_mode::single_line},
    {"javascript_empty_block", language::javascript, "function f() {|}\n", completion_mode::multi_line},
    {"javascript_template_substitution", language::javascript, "const s = `a ${|}`;\n", completion_mode::single_line},
    {"typescript_before_word", language::typescript, "const x = |value;\n", completion_mode::none},
    {"tsx_code_after_cursor", language::tsx, "const a = f(|x, y);\n", completion_mode::none},
    {"c_blank_line", language::c, "int main(void) {\n  |\n}\n", completion_mode::multi_line},
    {"cpp_in_string", language::cpp, "auto s = \"ab|c\";\n", completion_mode::none},
    {"rust_after_open_brace", language::rust, "fn main() {|\n}\n", completion_mode::multi_line},
    {"go_mid_line", language::go, "package m\nfunc f() { x := |\n}\n", completion_mode::single_line},
    {"java_blank_line", language::java, "class A {\n  void m() {\n    |\n  }\n}\n", completion_mode::multi_line},
};

std::pair<std::string, std::size_t> with_cursor(std::string text) {
  const std::size_t at = text.find('|');
  text.erase(at, 1);
  return {text, at};
}

class ModeTest : public ::testing::TestWithParam<mode_case> {};

TEST_P(ModeTest, DecidesFromTheTree) {
  const mode_case& c = GetParam();
  const auto [text, cursor] = with_cursor(c.code);
  document doc("x", c.lang, text);
  const completion_plan plan = plan_completion(doc.view(), cursor);
  EXPECT_EQ(plan.mode, c.mode) << plan.reason;
  EXPECT_EQ(plan.max_lines > 1, c.mode == completion_mode::multi_line);
}

INSTANTIATE_TEST_SUITE_P(Golden, ModeTest, ::testing::ValuesIn(mode_cases),
                         [](const ::testing::TestParamInfo<mode_case>& p) { return std::string(p.param.name); });

struct filter_case {
  const char* name;
  language lang;
  const char* code;        // '|' marks the cursor
  const char* completion;  // raw model output
  const char* expected;    // cleaned
  stop_reason reason;
};

const filter_case filter_cases[] = {
    {"single_line_stops_at_newline", language::python, "x = |\n", "compute(1)\nprint(x)\n", "compute(1)",
     stop_reason::newline},
    {"drops_what_the_suffix_holds", language::python, "total = compute(|)\n", "a, b)\nprint(total)\n", "a, b",
     stop_reason::unmatched_bracket},
    {"drops_suffix_overlap", language::typescript, "const s = f(|);\n", "x);", "x", stop_reason::unmatched_bracket},
    {"suffix_continues", language::python, "def f(x):\n    y = x\n    |\n    return y\n",
     "z = y * 2\n    return y\n    extra()\n", "z = y * 2", stop_reason::suffix_continues},
    {"dedent_past_scope_python", language::python, "def f(x):\n    |\n", "y = 1\n    return y\n\ndef g():\n    pass\n",
     "y = 1\n    return y", stop_reason::dedent},
    {"unmatched_brace_c", language::c, "int f(int x) {\n  |\n", "int y = x;\n  if (y) { y++; }\n  return y;\n}\nint g() {}\n",
     "int y = x;\n  if (y) { y++; }\n  return y;", stop_reason::dedent},
    {"unmatched_bracket_mid_line_rust", language::rust, "fn f() {\n    let v = vec![|\n}\n", "1, 2, 3];\n}\n",
     "1, 2, 3", stop_reason::unmatched_bracket},
    {"repeated_lines_go", language::go, "package m\nfunc f() {\n\t|\n}\n",
     "a := 1\n\tlog.Println(a)\n\tlog.Println(a)\n\tlog.Println(a)\n", "a := 1\n\tlog.Println(a)",
     stop_reason::repetition},
    {"repeats_the_line_above", language::java, "class A {\n  void m() {\n    count += step;\n    |\n  }\n}\n",
     "count += step;\n    count += step;\n", "", stop_reason::repetition},
    {"restyles_indentation_to_tabs", language::go, "package m\nfunc f() {\n\tx := 1\n\t|\n}\n",
     "if x > 0 {\n        x--\n    }\n", "if x > 0 {\n\t\tx--\n\t}", stop_reason::end_of_stream},
    {"restyles_tabs_to_spaces", language::javascript, "function f() {\n    let a = 1;\n    |\n}\n",
     "if (a) {\n\t\ta++;\n\t}\n", "if (a) {\n        a++;\n    }", stop_reason::end_of_stream},
    {"after_signature_body", language::python, "def area(r):|\n", "\n    return 3.14 * r * r\n\nprint(area(2))\n",
     "\n    return 3.14 * r * r", stop_reason::dedent},
    {"keeps_blank_lines_inside", language::typescript, "function f() {\n  |\n}\n",
     "const a = 1;\n\n  const b = 2;\n\n\n", "const a = 1;\n\n  const b = 2;", stop_reason::end_of_stream},
    {"brackets_in_strings_do_not_count", language::python, "def f():\n    |\n", "s = \")\"\n    return s\n",
     "s = \")\"\n    return s", stop_reason::end_of_stream},
};

class FilterTest : public ::testing::TestWithParam<filter_case> {};

TEST_P(FilterTest, CleansTheWholeCompletion) {
  const filter_case& c = GetParam();
  const auto [text, cursor] = with_cursor(c.code);
  document doc("x", c.lang, text);
  completion_filter filter(plan_completion(doc.view(), cursor));
  filter.feed(c.completion);
  EXPECT_EQ(filter.finish(), c.expected);
  EXPECT_EQ(filter.reason(), c.reason) << to_string(filter.reason());
}

TEST_P(FilterTest, SameResultOneCharacterAtATime) {
  const filter_case& c = GetParam();
  const auto [text, cursor] = with_cursor(c.code);
  document doc("x", c.lang, text);
  completion_filter filter(plan_completion(doc.view(), cursor));
  const std::string completion = c.completion;
  std::size_t fed = 0;
  for (char ch : completion) {
    ++fed;
    if (filter.feed(std::string_view(&ch, 1))) break;
  }
  EXPECT_EQ(filter.finish(), c.expected);
  if (c.reason != stop_reason::end_of_stream) {
    EXPECT_LT(fed, completion.size()) << "stopped before the end of the stream";
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, FilterTest, ::testing::ValuesIn(filter_cases),
                         [](const ::testing::TestParamInfo<filter_case>& p) { return std::string(p.param.name); });

TEST(CompletionFilter, StopsOnTheUnmatchedCloserBeforeItsLineEnds) {
  const auto [text, cursor] = with_cursor("int f() {\n  |\n}\n");
  document doc("x.c", language::c, text);
  completion_filter filter(plan_completion(doc.view(), cursor));
  EXPECT_FALSE(filter.feed("return 1;\n"));
  EXPECT_TRUE(filter.feed("}"));  // no newline yet: the closer alone decides
  EXPECT_EQ(filter.finish(), "return 1;");
}

TEST(CompletionFilter, DetectsIndentStyle) {
  EXPECT_TRUE(detect_indent_style("a\n\tb\n\t\tc\n").tabs);
  const indent_style two = detect_indent_style("a\n  b\n    c\n  d\n");
  EXPECT_FALSE(two.tabs);
  EXPECT_EQ(two.width, 2u);
  EXPECT_EQ(detect_indent_style("x\n").width, 4u);
}


// The edges the issue names: plain text (unknown language), invalid UTF-8, a syntax error at the cursor, and a
// 50,000-line file all get a plan and a filter, decided from lines where there is no tree.
TEST(CompletionFilter, UnknownLanguageFallsBackToLines) {
  const auto [text, cursor] = with_cursor("first line\n  |\nlast line\n");
  document doc = document::from_path("notes.unknown", text);
  const completion_plan plan = plan_completion(doc.view(), cursor);
  EXPECT_EQ(plan.mode, completion_mode::multi_line) << plan.reason;
  completion_filter filter(plan);
  filter.feed("one\n  two\nlast line\nmore\n");
  EXPECT_EQ(filter.finish(), "one\n  two");
  EXPECT_EQ(filter.reason(), stop_reason::dedent);
  const auto [mid, at] = with_cursor("alpha |beta\n");
  document words = document::from_path("notes.unknown", mid);
  EXPECT_EQ(plan_completion(words.view(), at).mode, completion_mode::none);
}

TEST(CompletionFilter, InvalidUtf8IsKeptByteForByte) {
  const auto [text, cursor] = with_cursor("s = '\xFF'\nt = |\n");
  document doc("bytes.py", language::python, text);
  completion_filter filter(plan_completion(doc.view(), cursor));
  filter.feed("'\xC3\x28' + s\nnext()\n");
  EXPECT_EQ(filter.finish(), "'\xC3\x28' + s");
  EXPECT_EQ(filter.reason(), stop_reason::newline);
}

TEST(CompletionFilter, SyntaxErrorAtTheCursor) {
  const auto [text, cursor] = with_cursor("def f(x:\n    return ((x +|\n\ndef g():\n    pass\n");
  document doc("broken.py", language::python, text);
  const completion_plan plan = plan_completion(doc.view(), cursor);
  EXPECT_EQ(plan.mode, completion_mode::single_line) << plan.reason;
  completion_filter filter(plan);
  filter.feed(" 1))\n    y = 2\n");
  EXPECT_EQ(filter.finish(), " 1");  // the closers belong to brackets the file opened
  EXPECT_EQ(filter.reason(), stop_reason::unmatched_bracket);
}

TEST(CompletionFilter, FiftyThousandLineFile) {
  std::string text;
  for (int i = 0; i < 25000; ++i) text += "def f" + std::to_string(i) + "(x):\n    return x\n";
  const std::size_t cursor = text.find("    return x\ndef f12346") + 4;
  text.replace(cursor, 8, "");  // an empty body line in the middle of the file
  document doc("big.py", language::python, text);
  ASSERT_GE(doc.line_count(), 50000u);
  const completion_plan plan = plan_completion(doc.view(), cursor);
  EXPECT_EQ(plan.mode, completion_mode::multi_line) << plan.reason;
  EXPECT_EQ(plan.next_lines.front(), "def f12346(x):");
  completion_filter filter(plan);
  filter.feed("return x * 2\ndef f12346(x):\n");
  EXPECT_EQ(filter.finish(), "return x * 2");
}

}  // namespace
}  // namespace qcoder::context
