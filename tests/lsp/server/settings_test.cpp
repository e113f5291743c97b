// Settings from the client: fields apply, wrong types are reported by name and ignored.
#include "lsp/server/settings.h"

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using nlohmann::json;

TEST(Settings, FieldsApplyAndBadOnesAreNamed) {
  server_settings s;
  const auto problems = apply_settings(json{{"maxTokens", 64},
                                            {"contextTokens", 4096},
                                            {"debounceMs", 0},
                                            {"editMaxTokens", -1},
                                            {"rewriteInstruction", 3},
                                            {"acceptIncompleteEdits", true},
                                            {"model", "/m"},
                                            {"enable", {{"markdown", false}, {"*", true}, {"go", "yes"}}}},
                                       s);
  EXPECT_EQ(s.max_tokens, 64);
  EXPECT_EQ(s.context_tokens, 4096u);
  EXPECT_EQ(s.debounce.count(), 0);
  EXPECT_EQ(s.edit_max_tokens, 1024);  // unchanged
  EXPECT_TRUE(s.accept_incomplete_edits);
  EXPECT_EQ(s.model, "/m");
  EXPECT_FALSE(s.enabled_for("markdown"));
  EXPECT_TRUE(s.enabled_for("python"));
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("qcoder.rewriteInstruction"), std::string::npos);
  EXPECT_NE(problems[1].find("qcoder.editMaxTokens"), std::string::npos);
  EXPECT_NE(problems[2].find("qcoder.enable.go"), std::string::npos);
}

TEST(Settings, TheDefaultLanguageSwitchAndNonObjects) {
  server_settings s;
  EXPECT_TRUE(apply_settings(json{{"enable", {{"*", false}, {"rust", true}}}}, s).empty());
  EXPECT_FALSE(s.enabled_for("python"));
  EXPECT_TRUE(s.enabled_for("rust"));
  EXPECT_TRUE(apply_settings(json(), s).empty());
  EXPECT_EQ(apply_settings(json::array(), s).size(), 1u);
}

}  // namespace
}  // namespace qcoder::lsp
