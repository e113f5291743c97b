// Content-Length framing: whole messages however the bytes arrive, and recovery from bad frames.
#include "lsp/jsonrpc/framing.h"

#include <gtest/gtest.h>

namespace qcoder::jsonrpc {
namespace {

std::vector<std::string> drain(frame_reader& r, std::vector<std::string>* errors = nullptr) {
  std::vector<std::string> out;
  while (auto next = r.next()) {
    if (*next) {
      out.push_back(next->value());
    } else if (errors != nullptr) {
      errors->push_back(next->err().message);
    }
  }
  return out;
}

TEST(Framing, ByteByByteAndManyPerChunkGiveTheSameMessages) {
  const std::string stream = frame("{\"a\":1}") + "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n" +
                             frame("{\"b\":\"é\"}") + frame("");
  frame_reader whole;
  whole.feed(stream);
  const std::vector<std::string> at_once = drain(whole);
  ASSERT_EQ(at_once.size(), 3u);
  EXPECT_EQ(at_once[0], "{\"a\":1}");
  EXPECT_EQ(at_once[1], "{\"b\":\"é\"}");  // length in bytes, not characters
  EXPECT_EQ(at_once[2], "");
  frame_reader bytes;
  std::vector<std::string> one_by_one;
  for (char c : stream) {
    bytes.feed(std::string_view(&c, 1));
    for (auto& m : drain(bytes)) one_by_one.push_back(m);
  }
  EXPECT_EQ(one_by_one, at_once);
  EXPECT_EQ(bytes.buffered(), 0u);
}

TEST(Framing, HeaderNamesAreCaseInsensitiveAndOtherHeadersIgnored) {
  frame_reader r;
  r.feed("X-Other: 1\r\ncontent-length:  3 \r\n\r\nabc");
  const auto got = drain(r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "abc");
}

TEST(Framing, BadHeadersAreReportedAndTheStreamRecovers) {
  frame_reader r;
  std::vector<std::string> errors;
  r.feed("Content-Length: x12\r\n\r\n" + frame("{\"ok\":1}"));
  r.feed("No colon here\r\n\r\n" + frame("{\"ok\":2}"));
  r.feed("Content-Type: text\r\n\r\n" + frame("{\"ok\":3}"));
  const auto got = drain(r, &errors);
  EXPECT_EQ(got, (std::vector<std::string>{"{\"ok\":1}", "{\"ok\":2}", "{\"ok\":3}"}));
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("bad Content-Length"), std::string::npos);
  EXPECT_NE(errors[1].find("malformed header"), std::string::npos);
  EXPECT_NE(errors[2].find("missing Content-Length"), std::string::npos);
}

TEST(Framing, OversizedBodyIsSkippedEvenWhenItArrivesInPieces) {
  frame_reader r(16);
  std::vector<std::string> errors;
  const std::string big(100, 'x');
  const std::string stream = frame(big) + frame("{}");
  for (std::size_t i = 0; i < stream.size(); i += 7) {
    r.feed(std::string_view(stream).substr(i, 7));
    for (auto& m : drain(r, &errors)) EXPECT_EQ(m, "{}");
  }
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("over the limit"), std::string::npos);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(Framing, EndlessHeaderIsCutOff) {
  frame_reader r;
  std::vector<std::string> errors;
  r.feed(std::string(10000, 'h'));
  drain(r, &errors);
  ASSERT_EQ(errors.size(), 1u);
  r.feed(frame("{}"));
  EXPECT_EQ(drain(r), std::vector<std::string>{"{}"});
}

}  // namespace
}  // namespace qcoder::jsonrpc
