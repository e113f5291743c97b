#include "context/prompt_builder.h"

#include <algorithm>
#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qcoder::context {
namespace {
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;
using testing::EndsWith;

const engine::tokenizer& tiny_tokenizer() {
  static const engine::tokenizer tok =
      engine::tokenizer::load_model_dir(std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16").value();
  return tok;
}

prompt_builder make_builder(std::size_t budget = 2048, bool chat = false) {
  prompt_options options;
  options.budget_tokens = budget;
  options.chat = chat;
  return prompt_builder::create(tiny_tokenizer(), options).value();
}

// The text with "|" removed, and the cursor where it was.
std::pair<std::string, std::size_t> with_cursor(std::string text) {
  const std::size_t at = text.find('|');
  text.erase(at, 1);
  return {text, at};
}

const prompt_block* find_block(const prompt& p, block_kind kind) {
  for (const prompt_block& b : p.blocks) {
    if (b.kind == kind) return &b;
  }
  return nullptr;
}

std::vector<block_kind> kinds(const prompt& p) {
  std::vector<block_kind> out;
  for (const prompt_block& b : p.blocks) out.push_back(b.kind);
  return out;
}

void expect_consistent(const prompt& p) {
  std::size_t sum = 0;
  std::string text;
  for (const prompt_block& b : p.blocks) sum += b.tokens, text += b.text;
  EXPECT_EQ(sum, p.ids.size());
  EXPECT_EQ(text, p.text);
  EXPECT_LE(p.ids.size(), p.budget);
}

TEST(PromptBuilder, PythonImportedDefinitionFromAnotherFile) {
  workspace_index index;
  index.update_file("pkg/util.py", "def helper(a, b):\n    \"\"\"Adds.\"\"\"\n    return a + b\n\ndef unused():\n    pass\n");
  index.update_file("pkg/other.py", "def helper(z):\n    return z\n");  // same name, wrong module
  const auto [text, cursor] = with_cursor("from .util import helper\n\ndef run(x):\n    y = 1\n    |\n    return y\n");
  document doc("pkg/main.py", language::python, text);
  prompt_builder builder = make_builder();
  const prompt p = builder.build({doc.view(), cursor, &index, nullptr}).value();
  expect_consistent(p);
  EXPECT_THAT(p.text, StartsWith("<|repo_name|>workspace\n<|file_sep|>pkg/util.py\ndef helper(a, b):\n"));
  EXPECT_THAT(p.text, Not(HasSubstr("def helper(z)")));
  // The cursor's line up to the cursor comes after <|fim_middle|>: the start of the answer.
  EXPECT_THAT(p.text, HasSubstr("<|file_sep|>pkg/main.py\n<|fim_prefix|>from .util import helper\n\ndef run(x):\n    y = 1\n"
                                "<|fim_suffix|>\n    return y\n<|fim_middle|>    "));
  EXPECT_THAT(p.text, EndsWith("<|fim_middle|>    "));
  EXPECT_EQ(kinds(p), (std::vector<block_kind>{block_kind::repo, block_kind::imports, block_kind::file,
                                               block_kind::prefix, block_kind::suffix, block_kind::middle}));
  EXPECT_EQ(find_block(p, block_kind::imports)->name, "imports pkg/util.py");
}

TEST(PromptBuilder, TypeScriptNamedAndNamespaceImports) {
  workspace_index index;
  index.update_file("src/shapes.ts", "export function area(r: number): number {\n  return 3 * r * r;\n}\n");
  index.update_file("src/math/vec.ts", "export function dot(a: number[], b: number[]): number {\n  return 0;\n}\n");
  const auto [text, cursor] = with_cursor(
      "import { area } from './shapes';\nimport * as vec from './math/vec';\n\nexport function f(r: number) {\n"
      "  const d = vec.dot([1], [2]);\n  |\n}\n");
  document doc("src/main.ts", language::typescript, text);
  prompt_builder builder = make_builder();
  const prompt p = builder.build({doc.view(), cursor, &index, nullptr}).value();
  expect_consistent(p);
  EXPECT_THAT(p.text, HasSubstr("<|file_sep|>src/shapes.ts\nexport function area(r: number): number\n"));
  EXPECT_THAT(p.text, HasSubstr("<|file_sep|>src/math/vec.ts\nexport function dot("));
}

TEST(PromptBuilder, ImportedModulesOutlineAsFirstLinesMostUsedFirst) {
  workspace_index index;
  index.update_file("shapes.py", "PI = 3\n\ndef rare(a):\n    return a\n\ndef popular(b,\n            c):\n    return b\n");
  index.update_file("user1.py", "import shapes\nshapes.popular(1, 2)\n");
  index.update_file("user2.py", "import shapes\nshapes.popular(3, 4)\n");
  const auto [text, cursor] = with_cursor("import shapes\n\ndef f():\n    |\n");
  document doc("main.py", language::python, text);
  prompt_builder builder = make_builder();
  const prompt p = builder.build({doc.view(), cursor, &index, nullptr}).value();
  expect_consistent(p);
  // First lines only, no blank line between them, the most referred to first, constants last; the
  // groups are in file order within the block, so the order shows in what made the cut, not here.
  EXPECT_EQ(find_block(p, block_kind::imports)->text, "<|file_sep|>shapes.py\nPI = 3\ndef rare(a):\ndef popular(b,\n");
  const std::vector<indexed_definition> outline = index.outline("shapes.py", 10);
  ASSERT_EQ(outline.size(), 3u);
  EXPECT_EQ(outline[0].def.name, "popular");
  EXPECT_EQ(outline[1].def.name, "rare");
  EXPECT_EQ(outline[2].def.name, "PI");
}

TEST(PromptBuilder, CNameUsedNearTheCursorGetsItsSnippet) {
  workspace_index index;
  index.update_file("lib/add.c", "int add(int a, int b) {\n  return a + b;\n}\n");
  const auto [text, cursor] = with_cursor("#include <stdio.h>\nint main(void) {\n  int x = add(1, 2);\n  |\n}\n");
  document doc("main.c", language::c, text);
  prompt_builder builder = make_builder();
  const prompt p = builder.build({doc.view(), cursor, &index, nullptr}).value();
  expect_consistent(p);
  const prompt_block* used = find_block(p, block_kind::used);
  ASSERT_NE(used, nullptr);
  EXPECT_EQ(used->text, "<|file_sep|>lib/add.c\nint add(int a, int b) {\n  return a + b;\n}\n");
}

TEST(PromptBuilder, BlocksBeforeTheFileAreByteIdenticalAcrossCursorMoves) {
  workspace_index index;
  index.update_file("util.py", "def helper(a):\n    return a\n\ndef other(b):\n    return b\n");
  index.update_file("near.py", "def nearby(q):\n    return q\n");
  std::string text = "from util import helper, other\n\n";
  for (int i = 0; i < 30; ++i) text += "def f" + std::to_string(i) + "(x):\n    return helper(x) + other(x)\n\n";
  text += "def g():\n    nearby(1)\n    return 0\n";
  document doc("main.py", language::python, text);
  prompt_builder builder = make_builder(1024);
  const source_view view = doc.view();
  const prompt a = builder.build({view, text.find("return helper(x)", 200), &index, nullptr}).value();
  const prompt b = builder.build({view, text.find("return 0"), &index, nullptr}).value();
  const prompt_block* imports_a = find_block(a, block_kind::imports);
  ASSERT_NE(imports_a, nullptr);
  EXPECT_EQ(imports_a->text, find_block(b, block_kind::imports)->text);
  // The prompts share everything up to the end of the imports block.
  const std::size_t stable = a.text.find(imports_a->text) + imports_a->text.size();
  EXPECT_EQ(a.text.substr(0, stable), b.text.substr(0, stable));
  // And the one near g() shows nearby()'s definition after it, the other does not.
  EXPECT_THAT(b.text, HasSubstr("def nearby(q):"));
  EXPECT_THAT(a.text, Not(HasSubstr("def nearby(q):")));
  // Same request twice: the same bytes.
  EXPECT_EQ(builder.build({view, text.find("return 0"), &index, nullptr}).value().text, b.text);
}

TEST(PromptBuilder, FiftyThousandLinesWithinBudgetAtStatementBoundaries) {
  std::string text;
  for (int i = 0; i < 25000; ++i) text += "def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "\n";
  document doc("big.py", language::python, text);
  ASSERT_EQ(doc.line_count(), 50001u);
  const source_view view = doc.view();
  for (std::size_t budget : {256u, 1024u, 2048u}) {
    prompt_builder builder = make_builder(budget);
    const std::size_t cursor = text.find("return x * 12345");
    const auto start = std::chrono::steady_clock::now();
    const prompt p = builder.build({view, cursor, nullptr, nullptr}).value();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    expect_consistent(p);
    EXPECT_GT(p.ids.size(), budget * 3 / 4) << "most of the budget is used";
    const prompt_block* prefix = find_block(p, block_kind::prefix);
    const prompt_block* suffix = find_block(p, block_kind::suffix);
    EXPECT_THAT(prefix->text, StartsWith("def f")) << "cut at a definition";
    EXPECT_THAT(suffix->text, EndsWith("\n<|fim_middle|>")) << "cut at a line end";
    EXPECT_LT(suffix->tokens, prefix->tokens);
  }
}

TEST(PromptBuilder, ScopeHeadersWhenThePrefixStartsInsideThem) {
  std::string text = "class Engine:\n    def run(self, steps):\n";
  for (int i = 0; i < 200; ++i) text += "        total_" + std::to_string(i) + " = steps * " + std::to_string(i) + "\n";
  text += "        \n";
  document doc("engine.py", language::python, text);
  prompt_builder builder = make_builder(256);
  const prompt p = builder.build({doc.view(), text.size() - 1, nullptr, nullptr}).value();
  expect_consistent(p);
  const prompt_block* scope = find_block(p, block_kind::scope);
  ASSERT_NE(scope, nullptr);
  EXPECT_EQ(scope->text, "class Engine:\n    def run(self, steps):\n        # ...\n");
}

TEST(PromptBuilder, TheCursorsLineGoesAfterTheMiddleTokenUnlessItIsHuge) {
  prompt_builder builder = make_builder(4096);
  // Typing on a line changes only the middle: the blocks before it are byte-identical keystroke after keystroke.
  const std::string before = "def f(x):\n    return x\n\nvalue = f(";
  document one("m.py", language::python, before + "1)\n");
  document two("m.py", language::python, before + "12)\n");
  const prompt a = builder.build({one.view(), before.size() + 1, nullptr, nullptr}).value();
  const prompt b = builder.build({two.view(), before.size() + 2, nullptr, nullptr}).value();
  expect_consistent(a);
  expect_consistent(b);
  EXPECT_EQ(find_block(a, block_kind::middle)->text, "value = f(1");
  EXPECT_EQ(find_block(b, block_kind::middle)->text, "value = f(12");
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (std::size_t i = 0; i + 1 < a.blocks.size(); ++i) EXPECT_EQ(a.blocks[i].text, b.blocks[i].text) << i;
  // A minified line: kept in the prefix, no middle.
  std::string huge = "x = [";
  while (huge.size() < 4500) huge += "item, ";
  document minified("min.js", language::javascript, huge + "]\n");
  const prompt c = builder.build({minified.view(), huge.size(), nullptr, nullptr}).value();
  expect_consistent(c);
  EXPECT_EQ(find_block(c, block_kind::middle), nullptr);
  EXPECT_THAT(c.text, HasSubstr(", <|fim_suffix|>"));
}

TEST(PromptBuilder, SyntaxErrorUnknownLanguageAndInvalidUtf8) {
  prompt_builder builder = make_builder(512);
  {
    const auto [text, cursor] = with_cursor("def f(x:\n    return ((x +|\n\ndef g():\n    pass\n");
    document doc("broken.py", language::python, text);
    const prompt p = builder.build({doc.view(), cursor, nullptr, nullptr}).value();
    expect_consistent(p);
    EXPECT_EQ(find_block(p, block_kind::middle)->text, "    return ((x +");
    EXPECT_THAT(find_block(p, block_kind::prefix)->text, EndsWith("def f(x:\n"));
  }
  {
    const auto [text, cursor] = with_cursor("line one\nline two |\nline three\n");
    document doc = document::from_path("notes.unknown", text);
    const prompt p = builder.build({doc.view(), cursor, nullptr, nullptr}).value();
    expect_consistent(p);
    EXPECT_THAT(p.text, HasSubstr("<|fim_prefix|>line one\n<|fim_suffix|>\nline three\n<|fim_middle|>line two "));
  }
  {
    const std::string text = "s = '\xFF\xFE'\nt = |";
    const auto [clean, cursor] = with_cursor(text);
    document doc("bytes.py", language::python, clean);
    const prompt p = builder.build({doc.view(), cursor, nullptr, nullptr}).value();
    expect_consistent(p);
    EXPECT_THAT(p.text, HasSubstr("s = '\xFF\xFE'\n<|fim_suffix|><|fim_middle|>t = "));
  }
  document doc("a.py", language::python, "x = 1\n");
  EXPECT_FALSE(builder.build({doc.view(), 100, nullptr, nullptr}));  // cursor past the end
}

TEST(PromptBuilder, FileTextCannotForgeControlTokens) {
  const auto [text, cursor] = with_cursor("s = '<|fim_prefix|><|file_sep|>'\n|");
  document doc("forge.py", language::python, text);
  prompt_builder builder = make_builder(512);
  const prompt p = builder.build({doc.view(), cursor, nullptr, nullptr}).value();
  const engine::token_id fim_prefix = tiny_tokenizer().find_token("<|fim_prefix|>").value();
  const engine::token_id file_sep = tiny_tokenizer().find_token("<|file_sep|>").value();
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), fim_prefix), 1);
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), file_sep), 1);
}

TEST(PromptBuilder, ChatVariantAndRecentSnippets) {
  recent_snippets recent;
  recent.add({"b.py", 10, "def viewed_one():\n    return 1\n", snippet_source::viewed});
  recent.add({"c.py", 3, "edited_value = compute(7)\n", snippet_source::edited});
  recent.add({"d.py", 0, "def viewed_two():\n    return 2\n", snippet_source::viewed});
  const auto [text, cursor] = with_cursor("x = |\n");
  document doc("a.py", language::python, text);
  prompt_builder builder = make_builder(1024, /*chat=*/true);
  const prompt p = builder.build({doc.view(), cursor, nullptr, &recent}).value();
  expect_consistent(p);
  EXPECT_THAT(p.text, StartsWith("<|im_start|>system\n"));
  EXPECT_THAT(p.text, EndsWith("<|fim_middle|><|im_end|>\n<|im_start|>assistant\n"));
  const std::size_t one = p.text.find("viewed_one"), two = p.text.find("viewed_two"), edited = p.text.find("edited_value");
  ASSERT_NE(edited, std::string::npos);
  EXPECT_LT(one, two);     // ring order
  EXPECT_LT(two, edited);  // viewed before edited: edits change more often
  EXPECT_THAT(p.text, HasSubstr("<|file_sep|>c.py\nedited_value = compute(7)\n"));
}

TEST(RecentSnippets, SimilarSnippetsReplaceEachOther) {
  recent_snippets recent(3);
  recent.add({"a.py", 0, "def f(x):\n    return x + 1\n", snippet_source::edited});
  recent.add({"a.py", 0, "def f(x):\n    return x + 2\n", snippet_source::edited});  // same words
  recent.add({"b.py", 0, "def f(x):\n    return x + 2\n", snippet_source::edited});  // other file: kept
  ASSERT_EQ(recent.items().size(), 2u);
  EXPECT_EQ(recent.items()[0].text, "def f(x):\n    return x + 2\n");
  recent.add({"c.py", 0, "alpha beta", snippet_source::viewed});
  recent.add({"d.py", 0, "gamma delta", snippet_source::viewed});
  ASSERT_EQ(recent.items().size(), 3u);  // capacity: the oldest went
  EXPECT_EQ(recent.items()[0].path, "b.py");
  EXPECT_DOUBLE_EQ(word_similarity("a b c", "a b d"), 0.5);
}

}  // namespace
}  // namespace qcoder::context
