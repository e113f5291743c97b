// Strings found across the pieces a stream arrives in: held back while undecided, cut at a stop, dropped.
#include "service/text_scan.h"

#include <gtest/gtest.h>

namespace qcoder::service {
namespace {

TEST(TextScan, APartialMatchIsTheLongestEndThatBeginsAPattern) {
  EXPECT_EQ(partial_match_at_end("abc<|im", {"<|im_end|>", "<|x"}), 4u);
  EXPECT_EQ(partial_match_at_end("abc<", {"<|im_end|>"}), 1u);
  EXPECT_EQ(partial_match_at_end("abc", {"<|im_end|>"}), 0u);
  EXPECT_EQ(partial_match_at_end("<|im_end|>", {"<|im_end|>"}), 0u);  // whole: not a partial match
}

TEST(TextScan, TheDropperLeavesStringsOutWhereverThePiecesSplitThem) {
  const std::string stream = "a<|q|>b<<|q|>c<|vis";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    text_dropper d({"<|q|>", "<|vision|>", ""});
    std::string out = d.feed(stream.substr(0, cut));
    out += d.feed(stream.substr(cut));
    out += d.finish();
    EXPECT_EQ(out, "ab<c<|vis") << "cut at " << cut;
  }
  text_dropper none({});
  EXPECT_EQ(none.feed("<|q|>"), "<|q|>");
}

TEST(TextScan, TheStopScannerCutsAtTheFirstStopEvenSplit) {
  const std::string stream = "xx<|end|>yy";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    stop_scanner s({"<|end|>", ""});
    std::string out = s.feed(stream.substr(0, cut));
    out += s.feed(stream.substr(cut));
    out += s.finish();
    EXPECT_EQ(out, "xx") << "cut at " << cut;
    EXPECT_TRUE(s.stopped());
  }
}

}  // namespace
}  // namespace qcoder::service
