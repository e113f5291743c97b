#include "context/symbols.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tree_sitter/api.h>

#include "context/document.h"
#include "context/queries.h"

namespace qcoder::context {
namespace {

struct symbol_case {
  language lang;
  const char* code;
  std::vector<std::string> definitions;  // "kind name"
  std::vector<std::string> imports;      // "module|name|alias"
};

const symbol_case cases[] = {
    {language::python,
     "import os.path as osp\nfrom .util import helper as h, other\nimport sys\nLIMIT = 3\n"
     "class Box(Base):\n    def put(self, x):\n        return x\n    @property\n    def size(self):\n        return 1\n"
     "def make(n):\n    return Box()\n",
     {"constant LIMIT", "class Box", "method put", "method size", "function make"},
     {"os.path||osp", ".util|helper|h", ".util|other|", "sys||"}},
    {language::javascript,
     "import { a, b as c } from './mod';\nimport * as ns from '../x';\nconst fs = require('fs');\n"
     "export const LIMIT = 3;\nfunction make(n) { return n; }\nconst arrow = (x) => x;\n"
     "class Box { put(x) { return x; } }\nexports.run = function () {};\n",
     {"constant fs", "constant LIMIT", "function make", "function arrow", "class Box", "method put", "function run"},
     {"./mod|a|", "./mod|b|c", "../x||ns", "fs||fs"}},
    {language::typescript,
     "import { Thing } from \"./thing\";\nexport interface Shape { area(): number }\ntype Id = string;\n"
     "enum Color { Red }\nexport function area(s: Shape): number { return s.area(); }\n"
     "export abstract class Base { abstract run(): void; go(): void {} }\n",
     {"type Shape", "method area", "type Id", "type Color", "function area", "class Base", "method run", "method go"},
     {"./thing|Thing|"}},
    {language::tsx, "import React from 'react';\nexport const App = () => <div/>;\n", {"function App"}, {"react||React"}},
    {language::c,
     "#include \"util.h\"\n#include <stdio.h>\n#define MAX 10\nstatic const int K = 3;\nstruct S { int a; };\n"
     "typedef struct S S_t;\nint add(int a, int b) { return a + b; }\nchar *name(void);\n",
     {"constant MAX", "constant K", "class S", "type S_t", "function add", "function name"},
     {"util.h||", "stdio.h||"}},
    {language::cpp,
     "#include \"a.h\"\nnamespace n {\nclass C { public: void m(); };\nvoid C::m() {}\nconstexpr int K = 2;\n}\n"
     "using U = int;\ntemplate <typename T> T id(T a) { return a; }\n",
     {"class C", "method m", "method m", "constant K", "type U", "function id"},
     {"a.h||"}},
    {language::rust,
     "use std::collections::HashMap;\nuse crate::a::{b, c as d};\nconst K: i32 = 1;\nstruct P { x: i32 }\n"
     "impl P { fn new() -> Self { P { x: 0 } } }\ntrait T { fn t(&self); }\nfn free() {}\n",
     {"constant K", "class P", "method new", "type T", "method t", "function free"},
     {"std::collections|HashMap|", "crate::a|b|", "crate::a|c|d"}},
    {language::go,
     "package main\nimport (\n  \"fmt\"\n  m \"a/b/mod\"\n)\nconst K = 1\ntype S struct { X int }\ntype I interface{}\n"
     "func F(a int) int { return a }\nfunc (s *S) M() {}\n",
     {"constant K", "class S", "type I", "function F", "method M"},
     {"fmt||", "a/b/mod||m"}},
    {language::java,
     "package a.b;\nimport java.util.List;\npublic class A { static final int K = 1; int x; void m() {} A() {} }\n"
     "interface I { void run(); }\nenum E { X }\n",
     {"class A", "constant K", "method m", "method A", "type I", "method run", "type E"},
     {"java.util|List|"}},
};

class SymbolsTest : public ::testing::TestWithParam<symbol_case> {};

TEST_P(SymbolsTest, FindsDefinitionsAndImports) {
  const symbol_case& c = GetParam();
  document doc("x", c.lang, c.code);
  const source_view view = doc.view();
  ASSERT_NE(view.tree, nullptr);
  const file_symbols symbols = extract_symbols(c.lang, view.text, view.tree);
  std::vector<std::string> defs;
  for (const definition& d : symbols.definitions) defs.push_back(std::string(to_string(d.kind)) + " " + d.name);
  EXPECT_EQ(defs, c.definitions);
  std::vector<std::string> imports;
  for (const import_entry& i : symbols.imports) imports.push_back(i.module + "|" + i.name + "|" + i.alias);
  EXPECT_EQ(imports, c.imports);
}

INSTANTIATE_TEST_SUITE_P(AllLanguages, SymbolsTest, ::testing::ValuesIn(cases),
                         [](const ::testing::TestParamInfo<symbol_case>& p) {
                           return std::string(context::info(p.param.lang).name);
                         });

TEST(Symbols, EveryQueryCompiles) {
  for (const language_info& l : all_languages()) {
    EXPECT_NE(symbols_query(l.id), nullptr) << l.name;
    EXPECT_NE(calls_query(l.id), nullptr) << l.name;
  }
}

TEST(Symbols, SignatureAndSnippetOfAMethodAndAClass) {
  const std::string code =
      "class Store:\n    \"\"\"Keeps things.\"\"\"\n    limit = 3\n\n    def put(self, key,\n            value):\n"
      "        self.items[key] = value\n        return value\n";
  document doc("s.py", language::python, code);
  const source_view view = doc.view();
  symbol_options options;
  options.snippet_lines = 3;
  const file_symbols symbols = extract_symbols(language::python, view.text, view.tree, options);
  ASSERT_EQ(symbols.definitions.size(), 2u);
  const definition& cls = symbols.definitions[0];
  EXPECT_EQ(cls.first_line, "class Store:");
  EXPECT_EQ(cls.snippet, "class Store:\n    \"\"\"Keeps things.\"\"\"\n    limit = 3\n    ...\n");  // members, then cut
  const definition& put = symbols.definitions[1];
  EXPECT_EQ(put.first_line, "def put(self, key,");
  EXPECT_EQ(put.signature, "class Store:\n    def put(self, key,\n            value):\n");
  EXPECT_EQ(put.snippet, "class Store:\n    def put(self, key,\n            value):\n"
                         "        self.items[key] = value\n        ...\n");
}

TEST(Symbols, ModuleMatch) {
  EXPECT_EQ(module_match("asyncio/futures.py", "./futures"), 1u);
  EXPECT_EQ(module_match("pkg/a/b.py", "a.b"), 2u);
  EXPECT_EQ(module_match("pkg/a/__init__.py", "pkg.a"), 2u);
  EXPECT_EQ(module_match("src/util.ts", "../src/util.js"), 2u);
  EXPECT_EQ(module_match("include/util.h", "util.h"), 1u);
  EXPECT_EQ(module_match("x/y/mod/file.go", "a/y/mod"), 2u);
  EXPECT_EQ(module_match("src/other.py", "util"), 0u);
}

}  // namespace
}  // namespace qcoder::context
