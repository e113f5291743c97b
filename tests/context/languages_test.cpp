#include "context/languages.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <tree_sitter/api.h>

namespace qcoder::context {
namespace {

struct snippet_case {
  language lang;
  const char* code;
  const char* root_type;
  const char* must_contain;  // a node type the parse must produce, proving the grammar really parsed it
};

const snippet_case snippets[] = {
    {language::python, "def add(a, b):\n    return a + b\n", "module", "function_definition"},
    {language::javascript, "function add(a, b) { return a + b; }\n", "program", "function_declaration"},
    {language::typescript, "function add(a: number, b: number): number { return a + b; }\n", "program",
     "type_annotation"},
    {language::tsx, "const App = () => <div className=\"x\">{1}</div>;\n", "program", "jsx_element"},
    {language::c, "int add(int a, int b) { return a + b; }\n", "translation_unit", "function_definition"},
    {language::cpp, "template <typename T> T add(T a, T b) { return a + b; }\n", "translation_unit",
     "template_declaration"},
    {language::rust, "fn add(a: i32, b: i32) -> i32 { a + b }\n", "source_file", "function_item"},
    {language::go, "package main\nfunc add(a, b int) int { return a + b }\n", "source_file", "function_declaration"},
    {language::java, "class A { int add(int a, int b) { return a + b; } }\n", "program", "method_declaration"},
};

bool contains_type(TSNode node, const std::string& type) {
  if (type == ts_node_type(node)) return true;
  for (uint32_t i = 0; i < ts_node_child_count(node); ++i) {
    if (contains_type(ts_node_child(node, i), type)) return true;
  }
  return false;
}

class GrammarTest : public ::testing::TestWithParam<snippet_case> {};

TEST_P(GrammarTest, LoadsAndParsesASnippet) {
  const snippet_case& c = GetParam();
  const TSLanguage* lang = grammar(c.lang);
  ASSERT_NE(lang, nullptr);
  const uint32_t abi = ts_language_abi_version(lang);
  EXPECT_GE(abi, TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION);
  EXPECT_LE(abi, TREE_SITTER_LANGUAGE_VERSION);

  std::unique_ptr<TSParser, decltype(&ts_parser_delete)> parser(ts_parser_new(), ts_parser_delete);
  ASSERT_TRUE(ts_parser_set_language(parser.get(), lang)) << info(c.lang).name;
  const std::string code = c.code;
  std::unique_ptr<TSTree, decltype(&ts_tree_delete)> tree(
      ts_parser_parse_string(parser.get(), nullptr, code.data(), static_cast<uint32_t>(code.size())), ts_tree_delete);
  ASSERT_NE(tree, nullptr);
  const TSNode root = ts_tree_root_node(tree.get());
  EXPECT_STREQ(ts_node_type(root), c.root_type);
  EXPECT_FALSE(ts_node_has_error(root)) << ts_node_string(root);
  EXPECT_TRUE(contains_type(root, c.must_contain)) << info(c.lang).name;
}

TEST_P(GrammarTest, MarksBrokenCodeAsError) {
  const snippet_case& c = GetParam();
  std::unique_ptr<TSParser, decltype(&ts_parser_delete)> parser(ts_parser_new(), ts_parser_delete);
  ASSERT_TRUE(ts_parser_set_language(parser.get(), grammar(c.lang)));
  const std::string broken = std::string(c.code) + "\n)))(((}}}{{{ ;;; @@@ \"unterminated\n";
  std::unique_ptr<TSTree, decltype(&ts_tree_delete)> tree(
      ts_parser_parse_string(parser.get(), nullptr, broken.data(), static_cast<uint32_t>(broken.size())),
      ts_tree_delete);
  ASSERT_NE(tree, nullptr);
  EXPECT_TRUE(ts_node_has_error(ts_tree_root_node(tree.get()))) << info(c.lang).name;
}

INSTANTIATE_TEST_SUITE_P(AllLanguages, GrammarTest, ::testing::ValuesIn(snippets),
                         [](const ::testing::TestParamInfo<snippet_case>& p) {
                           return std::string(context::info(p.param.lang).name);
                         });

TEST(Languages, EveryLanguageHasASnippetTest) {
  EXPECT_EQ(all_languages().size(), std::size(snippets));
  for (std::size_t i = 0; i < all_languages().size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(all_languages()[i].id), i) << "table order must match the enum";
  }
}

TEST(Languages, FromPath) {
  EXPECT_EQ(language_from_path("src/main.rs"), language::rust);
  EXPECT_EQ(language_from_path("a/b/Component.TSX"), language::tsx);
  EXPECT_EQ(language_from_path("include/x.h"), language::cpp);
  EXPECT_EQ(language_from_path("C:\\w\\x.py"), language::python);
  EXPECT_EQ(language_from_path("kernel.cu"), language::cpp);
  EXPECT_EQ(language_from_path("notes.txt"), std::nullopt);
  EXPECT_EQ(language_from_path(".bashrc"), std::nullopt);
  EXPECT_EQ(language_from_path("Makefile"), std::nullopt);
  EXPECT_EQ(language_from_path("dir.go/file"), std::nullopt);
}

TEST(Languages, FromLspId) {
  EXPECT_EQ(language_from_lsp_id("typescriptreact"), language::tsx);
  EXPECT_EQ(language_from_lsp_id("javascriptreact"), language::javascript);
  EXPECT_EQ(language_from_lsp_id("cuda-cpp"), language::cpp);
  EXPECT_EQ(language_from_lsp_id("go"), language::go);
  EXPECT_EQ(language_from_lsp_id("markdown"), std::nullopt);
  EXPECT_EQ(language_from_lsp_id(""), std::nullopt);
}

}  // namespace
}  // namespace qcoder::context
