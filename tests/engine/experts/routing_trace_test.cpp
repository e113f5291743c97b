#include "engine/experts/routing_trace.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

constexpr std::string_view header = R"({"format": "qcoder-routing-trace", "version": 1, "layers": 2, "experts": 8, "top_k": 2})";

result<routing_trace> parse(std::string_view text) {
  std::istringstream in{std::string(text)};
  return read_routing_trace(in, "t.jsonl");
}

// The error message of reading `text`, or "" when it reads.
std::string read_error(std::string_view text) {
  result<routing_trace> r = parse(text);
  return r ? std::string() : r.err().message;
}

std::vector<std::int32_t> ids(std::span<const std::int32_t> s) { return {s.begin(), s.end()}; }

TEST(RoutingTrace, ReadsTheDocumentedFormat) {
  const std::string text = std::string(header) + "\n" +
                           R"({"token": 0, "layers": [[3, 1], [7, 0]]})" "\n\n" +
                           R"({"token": 5, "layers": [[1, 2], [6, 4]], "predicted": [[], [6, 5]]})" "\n";
  result<routing_trace> trace = parse(text);
  ASSERT_TRUE(trace) << trace.err().message;
  EXPECT_EQ(trace->layers(), 2);
  EXPECT_EQ(trace->experts(), 8);
  EXPECT_EQ(trace->top_k(), 2);
  ASSERT_EQ(trace->tokens(), 2u);
  EXPECT_EQ(trace->token_id(1), 5u);
  EXPECT_EQ(ids(trace->chosen(0, 0)), (std::vector<std::int32_t>{3, 1}));
  EXPECT_EQ(ids(trace->chosen(1, 1)), (std::vector<std::int32_t>{6, 4}));
  EXPECT_TRUE(trace->has_predictions());
  EXPECT_TRUE(trace->predicted(0, 1).empty());  // the first token had none
  EXPECT_TRUE(trace->predicted(1, 0).empty());
  EXPECT_EQ(ids(trace->predicted(1, 1)), (std::vector<std::int32_t>{6, 5}));
  EXPECT_EQ(trace->accesses(), 8u);
}

TEST(RoutingTrace, SyntheticTraceRoundTripsThroughTheFile) {
  synthetic_trace_options o;
  o.layers = 3;
  o.experts = 32;
  o.top_k = 4;
  o.tokens = 50;
  o.seed = 7;
  result<routing_trace> trace = make_synthetic_trace(o);
  ASSERT_TRUE(trace) << trace.err().message;
  std::stringstream file;
  ASSERT_TRUE(write_routing_trace(*trace, file));
  result<routing_trace> back = read_routing_trace(file, "round-trip");
  ASSERT_TRUE(back) << back.err().message;
  ASSERT_EQ(back->tokens(), trace->tokens());
  EXPECT_EQ(back->layers(), 3);
  EXPECT_EQ(back->experts(), 32);
  EXPECT_EQ(back->top_k(), 4);
  EXPECT_TRUE(back->has_predictions());
  for (std::size_t t = 0; t < trace->tokens(); ++t) {
    EXPECT_EQ(back->token_id(t), trace->token_id(t));
    for (std::int32_t l = 0; l < 3; ++l) {
      EXPECT_EQ(ids(back->chosen(t, l)), ids(trace->chosen(t, l)));
      EXPECT_EQ(ids(back->predicted(t, l)), ids(trace->predicted(t, l)));
    }
  }
}

TEST(RoutingTrace, TraceWithoutPredictionsWritesNone) {
  routing_trace trace(1, 4, 1);
  ASSERT_TRUE(trace.begin_token(0));
  ASSERT_TRUE(trace.add_layer(std::vector<std::int32_t>{2}));
  std::stringstream file;
  ASSERT_TRUE(write_routing_trace(trace, file));
  EXPECT_EQ(file.str().find("predicted"), std::string::npos);
  result<routing_trace> back = read_routing_trace(file, "x");
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->has_predictions());
  EXPECT_EQ(ids(back->chosen(0, 0)), std::vector<std::int32_t>{2});
}

TEST(RoutingTrace, MalformedFilesFailWithLineAndPath) {
  const std::string h = std::string(header) + "\n";
  EXPECT_NE(read_error("").find("no header"), std::string::npos);
  EXPECT_NE(read_error("[1, 2]\n").find("line 1"), std::string::npos);
  EXPECT_NE(read_error(R"({"format": "other", "version": 1})").find("not a routing trace"), std::string::npos);
  EXPECT_NE(read_error(R"({"format": "qcoder-routing-trace", "version": 2, "layers": 1, "experts": 2, "top_k": 1})")
                .find("version 2"), std::string::npos);
  EXPECT_NE(read_error(R"({"format": "qcoder-routing-trace", "version": 1, "layers": 1, "experts": 2})")
                .find("missing \"top_k\""), std::string::npos);
  EXPECT_NE(read_error(R"({"format": "qcoder-routing-trace", "version": 1, "layers": 1, "experts": 2, "top_k": 3})")
                .find("top_k"), std::string::npos);

  const std::string good = R"({"token": 0, "layers": [[0, 1], [2, 3]]})" "\n";
  EXPECT_EQ(read_error(h + good), "");
  EXPECT_EQ(read_error(h + good + "{\"token\": 1, \"layers\": [[0, 1], [2, 3]\n"), "t.jsonl line 3: not valid JSON");
  EXPECT_NE(read_error(h + R"({"layers": [[0, 1], [2, 3]]})").find("line 2: missing \"token\""), std::string::npos);
  EXPECT_NE(read_error(h + R"({"token": 0, "layers": [[0, 1]]})").find("has 1 layers, the header says 2"),
            std::string::npos);
  EXPECT_NE(read_error(h + R"({"token": 0, "layers": [[0, 1], [2, "x"]]})").find("layers[1][1] must be an integer"),
            std::string::npos);
  EXPECT_NE(read_error(h + R"({"token": 0, "layers": [[0, 1], [2, 8]]})").find("layer 1: chosen: expert 8 is out of range"),
            std::string::npos);
  EXPECT_NE(read_error(h + R"({"token": 0, "layers": [[0, 1], [3, 3]]})").find("expert 3 is listed twice"),
            std::string::npos);
  EXPECT_NE(read_error(h + R"({"token": 0, "layers": [[0], [1]], "predicted": [[0], [-1]]})").find("predicted[1][0]"),
            std::string::npos);
  EXPECT_NE(read_error(h + good + good).find("line 3: token 0 does not come after token 0"), std::string::npos);
}

TEST(RoutingTrace, SyntheticTraceIsDeterministicAndWellFormed) {
  synthetic_trace_options o;
  o.layers = 4;
  o.tokens = 300;
  result<routing_trace> a = make_synthetic_trace(o);
  result<routing_trace> b = make_synthetic_trace(o);
  o.seed = 2;
  result<routing_trace> c = make_synthetic_trace(o);
  ASSERT_TRUE(a && b && c);
  ASSERT_EQ(a->tokens(), 300u);
  bool differs = false;
  for (std::size_t t = 0; t < a->tokens(); ++t) {
    for (std::int32_t l = 0; l < a->layers(); ++l) {
      EXPECT_EQ(ids(a->chosen(t, l)), ids(b->chosen(t, l)));
      differs = differs || ids(a->chosen(t, l)) != ids(c->chosen(t, l));
      const std::vector<std::int32_t> chosen = ids(a->chosen(t, l));
      ASSERT_EQ(chosen.size(), 10u);
      EXPECT_EQ(std::set<std::int32_t>(chosen.begin(), chosen.end()).size(), 10u);
      EXPECT_EQ(a->predicted(t, l).size(), l == 0 ? 0u : 10u);
    }
  }
  EXPECT_TRUE(differs);
}

TEST(RoutingTrace, SyntheticTraceHasSkewLocalityAndNoisyPredictions) {
  synthetic_trace_options o;
  o.layers = 2;
  o.tokens = 2000;
  result<routing_trace> trace = make_synthetic_trace(o);
  ASSERT_TRUE(trace);
  std::vector<int> uses(512, 0);
  double overlap_previous = 0, predicted_right = 0;
  for (std::size_t t = 0; t < trace->tokens(); ++t) {
    const std::vector<std::int32_t> now = ids(trace->chosen(t, 1));
    for (std::int32_t e : now) ++uses[static_cast<std::size_t>(e)];
    if (t > 0) {
      const std::vector<std::int32_t> before = ids(trace->chosen(t - 1, 1));
      for (std::int32_t e : now) overlap_previous += std::count(before.begin(), before.end(), e);
    }
    for (std::int32_t e : trace->predicted(t, 1)) predicted_right += std::count(now.begin(), now.end(), e);
  }
  const double picks = 10.0 * static_cast<double>(trace->tokens());
  std::sort(uses.begin(), uses.end(), std::greater<>());
  int top64 = 0;
  for (int i = 0; i < 64; ++i) top64 += uses[static_cast<std::size_t>(i)];
  EXPECT_GT(top64 / picks, 0.4);  // skew: an eighth of the experts take a large share (uniform: 0.125)
  const double overlap = overlap_previous / picks;
  EXPECT_GT(overlap, 0.1);  // locality: consecutive tokens share experts (independent draws: ~0.03)
  EXPECT_LT(overlap, 0.5);
  EXPECT_NEAR(predicted_right / picks, o.prediction_accuracy, 0.03);
}

TEST(RoutingTrace, SyntheticOptionsAreChecked) {
  synthetic_trace_options o;
  o.top_k = 300;  // 2 * top_k > experts
  EXPECT_FALSE(make_synthetic_trace(o));
  o = {};
  o.locality = 1.5;
  EXPECT_FALSE(make_synthetic_trace(o));
  o = {};
  o.window = 0;
  EXPECT_FALSE(make_synthetic_trace(o));
  o = {};
  o.skew = 4;  // steep: the popular experts are taken quickly, the draw must still end
  o.tokens = 20;
  o.locality = 0;
  EXPECT_TRUE(make_synthetic_trace(o));
}

}  // namespace
}  // namespace qcoder::engine
