// The server-sent events parser, fed the same streams whole, split at every byte position, and one byte
// at a time: the events must not depend on where the network cut the bytes.
#include "http/sse.h"

#include <gtest/gtest.h>

namespace qcoder::http {

// For gtest's messages (found by ADL, so outside the anonymous namespace).
void PrintTo(const sse_parser::event& e, std::ostream* out) { *out << "{" << e.name << ": " << e.data << "}"; }

namespace {

using event = sse_parser::event;

// Feeds `pieces` in order and returns the events, checking that every push said to go on.
std::vector<event> parse(const std::vector<std::string_view>& pieces) {
  sse_parser parser;
  std::vector<event> out;
  for (std::string_view piece : pieces) {
    EXPECT_TRUE(parser.push(piece, [&](const event& e) {
      out.push_back(e);
      return true;
    }));
  }
  return out;
}

// Every way of cutting `stream` in two, and byte by byte, gives `expected`.
void expect_events_however_split(std::string_view stream, const std::vector<event>& expected) {
  EXPECT_EQ(parse({stream}), expected) << "whole";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    EXPECT_EQ(parse({stream.substr(0, cut), stream.substr(cut)}), expected) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  EXPECT_EQ(parse(bytes), expected) << "byte by byte";
}

TEST(SseParser, ReadsOpenAiStyleEvents) {
  expect_events_however_split("data: {\"a\":1}\n\ndata: [DONE]\n\n", {{"", "{\"a\":1}"}, {"", "[DONE]"}});
}

TEST(SseParser, AcceptsEveryLineEndAndCountsASplitCrlfOnce) {
  // CRLF, CR and LF; a CRLF cut between pushes must not read as two line ends (which would be a blank line).
  expect_events_however_split("data: a\r\ndata: b\r\n\r\ndata: c\rdata: d\r\rdata: e\n\n",
                              {{"", "a\nb"}, {"", "c\nd"}, {"", "e"}});
}

TEST(SseParser, JoinsDataLinesAndReadsNamesSkippingComments) {
  expect_events_however_split(
      ": keep-alive\n"
      "event: error\n"
      "data:  two spaces keep one\n"
      "data\n"
      "id: 7\n"
      "retry: 1000\n"
      "data:no space\n"
      "\n"
      ": another comment\n\n"  // a comment and a blank line: no event
      "event: named but no data\n\n"
      "data: plain\n\n",
      {{"error", " two spaces keep one\n\nno space"}, {"", "plain"}});
}

TEST(SseParser, AnEventWithoutItsBlankLineIsNeverDispatched) {
  EXPECT_EQ(parse({"data: first\n\ndata: cut off\n"}), (std::vector<event>{{"", "first"}}));
  EXPECT_TRUE(parse({"data: cut off"}).empty());
}

TEST(SseParser, StopsWhenTheHandlerSaysSo) {
  sse_parser parser;
  int calls = 0;
  EXPECT_FALSE(parser.push("data: 1\n\ndata: 2\n\n", [&](const event&) { return ++calls < 1; }));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(parser.push("data: 3\n\n", [&](const event&) { return ++calls, true; }));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(parser.error().empty());
}

TEST(SseParser, RefusesALineOrEventPastTheLimit) {
  const auto ignore = [](const event&) { return true; };
  sse_parser endless_line(100);
  EXPECT_TRUE(endless_line.push(std::string(60, 'x'), ignore));
  EXPECT_FALSE(endless_line.push(std::string(60, 'x'), ignore));
  EXPECT_NE(endless_line.error().find("100 bytes"), std::string::npos) << endless_line.error();

  sse_parser endless_event(100);  // short lines, but the event never ends
  bool ok = true;
  for (int i = 0; i < 20 && ok; ++i) ok = endless_event.push("data: 0123456789\n", ignore);
  EXPECT_FALSE(ok);
  EXPECT_FALSE(endless_event.error().empty());

  sse_parser many_small(100);  // the limit is per event: a long stream of small events is fine
  int events = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(many_small.push("data: 0123456789\n\n", [&](const event&) { return ++events, true; }));
  }
  EXPECT_EQ(events, 100);
}

}  // namespace
}  // namespace qcoder::http
