#include "context/related_code.h"

#include <algorithm>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace qcoder::context {
namespace {
using testing::ElementsAre;
using testing::HasSubstr;

std::pair<std::string, std::size_t> with_cursor(std::string text) {
  const std::size_t at = text.find('|');
  text.erase(at, 1);
  return {text, at};
}

import_table imports_of(const workspace_index& index, const std::string& path, language lang, const std::string& text) {
  document doc(path, lang, text);
  symbol_options only_imports;
  only_imports.definitions = false;
  return import_table(index, path, lang, extract_symbols(lang, text, doc.tree(), only_imports).imports);
}

// The related definitions as "relation path:name" strings, in rank order.
std::vector<std::string> related(const workspace_index& index, const std::string& path, language lang, const std::string& code) {
  const auto [text, cursor] = with_cursor(code);
  document doc(path, lang, text);
  const import_table imports = imports_of(index, path, lang, text);
  std::vector<std::string> out;
  for (const related_definition& r : find_related(doc.view(), cursor, index, imports)) {
    out.push_back(std::string(to_string(r.why)) + " " + r.def.path + ":" + r.def.def.name);
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

TEST(ResolveModule, PythonRelativeImportsUseTheFilesFolder) {
  workspace_index index;
  for (const char* f : {"pkg/util.py", "other/util.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "pkg/sub/util.py", "a/b.py"}) {
    index.update_file(f, "x = 1\n");
  }
  EXPECT_THAT(resolve_module(index, "pkg/sub/mod.py", language::python, ".util"), ElementsAre("pkg/sub/util.py"));
  EXPECT_THAT(resolve_module(index, "pkg/sub/mod.py", language::python, "..util"), ElementsAre("pkg/util.py"));
  EXPECT_THAT(resolve_module(index, "pkg/sub/mod.py", language::python, "."), ElementsAre("pkg/sub/__init__.py"));
  EXPECT_TRUE(resolve_module(index, "pkg/sub/mod.py", language::python, "....util").empty());
  EXPECT_THAT(resolve_module(index, "main.py", language::python, "a.b"), ElementsAre("a/b.py"));
  // An absolute module must match every segment: "x.util" is neither pkg/util.py nor other/util.py.
  EXPECT_TRUE(resolve_module(index, "main.py", language::python, "x.util").empty());
}

TEST(ResolveModule, ScriptsCAndHeaders) {
  workspace_index index;
  for (const char* f : {"src/y.ts", "src/dir/index.ts", "lib/z.ts", "lib/z.test.ts", "src/c/util.h", "src/c/util.c", "inc/util.h"}) {
    index.update_file(f, "\n");
  }
  EXPECT_THAT(resolve_module(index, "src/main.ts", language::typescript, "./y"), ElementsAre("src/y.ts"));
  EXPECT_THAT(resolve_module(index, "src/main.ts", language::typescript, "../lib/z.js"), ElementsAre("lib/z.ts"));
  EXPECT_THAT(resolve_module(index, "src/main.ts", language::typescript, "./dir"), ElementsAre("src/dir/index.ts"));
  EXPECT_TRUE(resolve_module(index, "src/main.ts", language::typescript, "./missing").empty());
  // Next to the file first, then the header's other files of the same stem.
  const std::vector<std::string> c = resolve_module(index, "src/c/main.c", language::c, "util.h");
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c.front(), "src/c/util.h");
  EXPECT_TRUE(std::find(c.begin(), c.end(), "src/c/util.c") != c.end());
}

TEST(ImportTable, NamesAliasesAndModules) {
  workspace_index index;
  index.update_file("a/b.py", "def c():\n    pass\n");
  index.update_file("a/mod.py", "def f():\n    pass\n");
  index.update_file("os/path.py", "def join(a, b):\n    pass\n");
  index.update_file("os/__init__.py", "sep = '/'\n");
  const import_table t = imports_of(index, "main.py", language::python,
                                    "from a.b import c as d\nfrom a import mod\nimport a.b as m\nimport os.path\n");
  ASSERT_NE(t.name("d"), nullptr);
  EXPECT_EQ(t.name("d")->original, "c");
  EXPECT_THAT(t.name("d")->files, ElementsAre("a/b.py"));
  EXPECT_EQ(t.name("c"), nullptr);
  ASSERT_NE(t.module("mod"), nullptr);  // from a import mod: a module
  EXPECT_THAT(*t.module("mod"), ElementsAre("a/mod.py"));
  ASSERT_NE(t.module("m"), nullptr);
  EXPECT_THAT(*t.module("m"), ElementsAre("a/b.py"));
  ASSERT_NE(t.module("os.path"), nullptr);
  EXPECT_THAT(*t.module("os.path"), ElementsAre("os/path.py"));
  EXPECT_NE(t.module("os"), nullptr);
}

TEST(FindRelated, ImportedNameBeatsTheSameNameElsewhere) {
  workspace_index index;
  index.update_file("pkg/util.py", "def helper(a):\n    return a\n");
  index.update_file("other/util.py", "def helper(b):\n    return b\n");
  const std::vector<std::string> r =
      related(index, "pkg/main.py", language::python, "from .util import helper\n\ndef run():\n    x = helper(1)\n    |\n");
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r.front(), "imported pkg/util.py:helper");
  EXPECT_FALSE(has(r, "global other/util.py:helper"));
}

TEST(FindRelated, ModuleMembersThroughAliases) {
  workspace_index index;
  index.update_file("src/math/vec.ts", "export function dot(a: number[], b: number[]): number {\n  return 0;\n}\n");
  index.update_file("src/other/vec.ts", "export function dot(x: string): string {\n  return x;\n}\n");
  const std::vector<std::string> r = related(index, "src/main.ts", language::typescript,
                                             "import * as vec from './math/vec';\nfunction f() {\n  const d = vec.dot([1], [2]);\n  |\n}\n");
  EXPECT_TRUE(has(r, "imported src/math/vec.ts:dot"));
  EXPECT_FALSE(has(r, "imported src/other/vec.ts:dot"));
}

TEST(FindRelated, SelfCallsResolveThroughTheBaseClassAndItsOutlineComes) {
  workspace_index index;
  index.update_file("base.py",
                    "class Base:\n    def start(self):\n        pass\n\n    def stop(self, force=False):\n        pass\n\n"
                    "class Other:\n    def start(self):\n        pass\n");
  const std::vector<std::string> r = related(index, "impl.py", language::python,
                                             "from base import Base\n\nclass Impl(Base):\n    def run(self):\n"
                                             "        self.start()\n        |\n");
  EXPECT_TRUE(has(r, "base_class base.py:start")) << testing::PrintToString(r);
  EXPECT_FALSE(has(r, "global base.py:start"));
  EXPECT_TRUE(has(r, "base_class base.py:Base"));  // the outline
  // The outline lists the members' first lines.
  const auto [text, cursor] = with_cursor("from base import Base\n\nclass Impl(Base):\n    def run(self):\n        |\n");
  document doc("impl.py", language::python, text);
  const import_table imports = imports_of(index, "impl.py", language::python, text);
  const std::vector<related_definition> defs = find_related(doc.view(), cursor, index, imports);
  ASSERT_FALSE(defs.empty());
  EXPECT_EQ(defs.front().def.def.name, "Base");
  EXPECT_EQ(defs.front().def.def.snippet, "class Base:\n    def start(self):\n    def stop(self, force=False):\n");
}

TEST(FindRelated, IncludedNearbyAndUniqueDefinitions) {
  workspace_index index;
  index.update_file("src/net/conn.c", "int conn_open(int fd) {\n  return fd;\n}\n");
  index.update_file("src/net/conn.h", "#define CONN_MAX 4\n");
  index.update_file("src/net/retry.c", "int retry(int n) {\n  return n;\n}\n");
  index.update_file("src/fs/file.c", "int file_open(int fd) {\n  return fd;\n}\nint shared(int a) {\n  return a;\n}\n");
  index.update_file("src/db/a.c", "int shared(int a) {\n  return a;\n}\n");
  const std::vector<std::string> r = related(index, "src/net/main.c", language::c,
                                             "#include \"conn.h\"\nint main(void) {\n  conn_open(CONN_MAX);\n  retry(3);\n"
                                             "  file_open(1);\n  shared(2);\n  |\n}\n");
  // conn.h and the conn.c beside it are what the include names.
  EXPECT_TRUE(has(r, "included src/net/conn.c:conn_open")) << testing::PrintToString(r);
  EXPECT_TRUE(has(r, "included src/net/conn.h:CONN_MAX"));
  EXPECT_TRUE(has(r, "nearby src/net/retry.c:retry"));
  EXPECT_TRUE(has(r, "global src/fs/file.c:file_open"));
  // Two definitions, neither nearer: no guess.
  EXPECT_FALSE(std::any_of(r.begin(), r.end(), [](const std::string& s) { return s.ends_with(":shared"); }));
}

TEST(FindRelated, NearerUsesRankFirstAndTheOrderIsStable) {
  workspace_index index;
  index.update_file("lib.py", "def far_one():\n    pass\n\ndef near_one():\n    pass\n");
  std::string code = "from lib import far_one, near_one\n\ndef f():\n    far_one()\n";
  for (int i = 0; i < 30; ++i) code += "    x" + std::to_string(i) + " = " + std::to_string(i) + "\n";
  code += "    near_one()\n    |\n";
  const std::vector<std::string> r = related(index, "main.py", language::python, code);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], "imported lib.py:near_one");
  EXPECT_EQ(r[1], "imported lib.py:far_one");
  EXPECT_EQ(related(index, "main.py", language::python, code), r);
}

TEST(FindRelated, ClassBoundByRequireIsTheBaseClass) {
  workspace_index index;
  index.update_file("lib/base-cmd.js",
                    "class BaseCommand {\n  async setWorkspaces() {\n    return 1\n  }\n}\nmodule.exports = BaseCommand\n");
  const std::string code =
      "const BaseCommand = require('../base-cmd.js')\n\nclass Publish extends BaseCommand {\n  async exec(args) {\n    |\n  }\n}\n";
  // The edited file is indexed too: its `const BaseCommand` is the binding, not the class.
  index.update_file("lib/commands/publish.js", with_cursor(code).first);
  EXPECT_EQ(related(index, "lib/commands/publish.js", language::javascript, code),
            std::vector<std::string>{"base_class lib/base-cmd.js:BaseCommand"});
}

TEST(FindRelated, ReexportsThroughPackagesAndBarrels) {
  workspace_index index;
  index.update_file("unittest/__init__.py", "from .case import TestCase\n");
  index.update_file("unittest/case.py", "class TestCase:\n    def assertEqual(self, a, b):\n        pass\n");
  index.update_file("other/case.py", "class TestCase:\n    def check(self):\n        pass\n");
  const std::vector<std::string> py = related(index, "test_x.py", language::python,
                                              "import unittest\n\nclass T(unittest.TestCase):\n    def test(self):\n        |\n");
  EXPECT_EQ(py, std::vector<std::string>{"base_class unittest/case.py:TestCase"});
  index.update_file("src/index.ts", "export { map } from './operators/map';\n");
  index.update_file("src/operators/map.ts", "export function map(f: any) {\n  return f;\n}\n");
  index.update_file("src/legacy/map.ts", "export function map(g: any) {\n  return g;\n}\n");
  EXPECT_TRUE(has(related(index, "app.ts", language::typescript, "import { map } from './src';\nconst y = map(1);\n|\n"),
                  "imported src/operators/map.ts:map"));
}

TEST(FindRelated, AMemberTheModuleDoesNotDefineIsNotGuessed) {
  workspace_index index;
  index.update_file("os.py", "def getcwd():\n    pass\n");
  index.update_file("email/header.py", "class Version:\n    def major(self):\n        pass\n");
  const std::vector<std::string> r = related(index, "tar.py", language::python, "import os\nos.major(1)\nos.getcwd()\n|\n");
  EXPECT_TRUE(has(r, "imported os.py:getcwd")) << testing::PrintToString(r);
  EXPECT_FALSE(std::any_of(r.begin(), r.end(), [](const std::string& s) { return s.ends_with(":major"); }));
}

TEST(FindRelated, AMethodOfTheFileItselfIsLocal) {
  workspace_index index;
  const std::string code = "class A:\n    def helper_method(self):\n        pass\n\ndef f(a):\n    a.helper_method()\n    |\n";
  index.update_file("a.py", with_cursor(code).first);
  EXPECT_EQ(related(index, "a.py", language::python, code), std::vector<std::string>{"local a.py:helper_method"});
}

TEST(FindRelated, PlainTextAndNoIndexHitsGiveNothing) {
  workspace_index index;
  document doc = document::from_path("notes.txt", "call helper here\n");
  EXPECT_TRUE(find_related(doc.view(), 5, index, import_table()).empty());
  EXPECT_TRUE(related(index, "main.py", language::python, "def f():\n    helper()\n    |\n").empty());
}


TEST(FindRelated, FiftyThousandLinesSearchOnlyAroundTheCursor) {
  workspace_index index;
  index.update_file("lib.py", "def early(a):\n    return a\n\ndef late(b):\n    return b\n");
  std::string code = "from lib import early, late\n\ndef first():\n    early(1)\n";
  for (int i = 0; i < 25000; ++i) code += "def f" + std::to_string(i) + "(x):\n    return x\n";
  code += "def last():\n    late(2)\n    |\n";
  const std::vector<std::string> r = related(index, "main.py", language::python, code);
  EXPECT_TRUE(has(r, "imported lib.py:late"));
  EXPECT_FALSE(has(r, "imported lib.py:early")) << "used 50,000 lines above the cursor";
}

TEST(FindRelated, InvalidUtf8AndASyntaxErrorAtTheCursor) {
  workspace_index index;
  index.update_file("lib.py", "def helper(a):\n    return a\n");
  EXPECT_TRUE(has(related(index, "main.py", language::python,
                          "from lib import helper\ns = '\xFF\xFE'\ndef f(:\n    y = helper(s\n    z = ((|\n"),
                  "imported lib.py:helper"));
  // Unknown language: plain text, no tree, nothing resolved (and no crash).
  document doc = document::from_path("notes.unknown", "helper(1)\n");
  EXPECT_TRUE(find_related(doc.view(), 3, index, import_table()).empty());
}

}  // namespace
}  // namespace qcoder::context
