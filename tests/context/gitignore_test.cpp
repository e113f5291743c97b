#include "context/gitignore.h"

#include <gtest/gtest.h>

namespace qcoder::context {
namespace {

TEST(Glob, GitWildmatchRules) {
  EXPECT_TRUE(glob_match("*.o", "a.o"));
  EXPECT_FALSE(glob_match("*.o", "dir/a.o"));  // '*' does not cross '/'
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "a/c"));
  EXPECT_TRUE(glob_match("[a-c]x", "bx"));
  EXPECT_FALSE(glob_match("[!a-c]x", "bx"));
  EXPECT_TRUE(glob_match("**/foo", "foo"));
  EXPECT_TRUE(glob_match("**/foo", "a/b/foo"));
  EXPECT_TRUE(glob_match("a/**/b", "a/b"));
  EXPECT_TRUE(glob_match("a/**/b", "a/x/y/b"));
  EXPECT_TRUE(glob_match("abc/**", "abc/x/y"));
  EXPECT_FALSE(glob_match("abc/**", "abcd/x"));
  EXPECT_TRUE(glob_match("\\*x", "*x"));
  EXPECT_FALSE(glob_match("\\*x", "ax"));
}

TEST(Gitignore, NegationAnchoringFoldersAndDepth) {
  gitignore ignore;
  ignore.add("", "# comment\n\n*.log\n!keep.log\n/build\ncache/\ndocs/*.md\n\\#hash\ntrailing   \n");
  ignore.add("sub", "*.tmp\n!important.tmp\n");
  EXPECT_TRUE(ignore.ignored("x.log", false));
  EXPECT_TRUE(ignore.ignored("deep/x.log", false));  // no slash: any depth
  EXPECT_FALSE(ignore.ignored("keep.log", false));   // re-included
  EXPECT_TRUE(ignore.ignored("build", true));
  EXPECT_FALSE(ignore.ignored("src/build", true));   // anchored to the root
  EXPECT_TRUE(ignore.ignored("cache", true));
  EXPECT_FALSE(ignore.ignored("cache", false));      // folders only
  EXPECT_TRUE(ignore.ignored("docs/a.md", false));
  EXPECT_FALSE(ignore.ignored("docs/x/a.md", false));
  EXPECT_TRUE(ignore.ignored("#hash", false));
  EXPECT_TRUE(ignore.ignored("trailing", false));   // trailing spaces dropped
  EXPECT_TRUE(ignore.ignored("sub/a.tmp", false));
  EXPECT_FALSE(ignore.ignored("a.tmp", false));       // sub's rules stay in sub
  EXPECT_FALSE(ignore.ignored("sub/important.tmp", false));
  EXPECT_FALSE(ignore.ignored("main.py", false));
}

}  // namespace
}  // namespace qcoder::context
