// The model flags shared by every command: the per-layer expert budget SPEC parser.
#include "lsp/cli/model_flags.h"

#include <gtest/gtest.h>

namespace qcoder::cli {
namespace {

TEST(ModelFlags, ParsesPerLayerExpertBudgets) {
  result<std::vector<engine::layer_budget>> b = parse_layer_budgets("0-11=256MiB,40=1GiB");
  ASSERT_TRUE(b) << b.err().message;
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].first, 0);
  EXPECT_EQ((*b)[0].last, 11);
  EXPECT_EQ((*b)[0].bytes, 256ull << 20);
  EXPECT_EQ((*b)[1].first, 40);
  EXPECT_EQ((*b)[1].last, 40);
  EXPECT_EQ((*b)[1].bytes, 1ull << 30);

  b = parse_layer_budgets(" 3 - 4 = 100 , 7=2KiB ");
  ASSERT_TRUE(b) << b.err().message;
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].first, 3);
  EXPECT_EQ((*b)[0].last, 4);
  EXPECT_EQ((*b)[0].bytes, 100u);
  EXPECT_EQ((*b)[1].bytes, 2048u);
}

TEST(ModelFlags, MalformedPerLayerBudgetsAreClearErrors) {
  const struct {
    const char* spec;
    const char* message;
  } cases[] = {
      {"", "is not LAYER=SIZE"},
      {"5", "'5' is not LAYER=SIZE"},
      {"0=1GiB,", "'' is not LAYER=SIZE"},
      {"x=1GiB", "'x' is not a layer"},
      {"-1=1GiB", "'-1' is not a layer"},
      {"1-=1GiB", "'1-' is not a layer"},
      {"3-1=1GiB", "'3-1' is backwards"},
      {"2=lots", "layer 2: 'lots' is not a size"},
      {"2=", "layer 2: '' is not a size"},
      {"2=1XB", "unknown size unit"},
  };
  for (const auto& c : cases) {
    result<std::vector<engine::layer_budget>> b = parse_layer_budgets(c.spec);
    ASSERT_FALSE(b) << c.spec;
    EXPECT_EQ(b.err().code, errc::invalid_argument);
    EXPECT_NE(b.err().message.find(c.message), std::string::npos) << c.spec << ": " << b.err().message;
  }
}

}  // namespace
}  // namespace qcoder::cli
