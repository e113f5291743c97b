// Request checks and response pieces of the OpenAI API, without a server: each field's errors, the
// prompt forms, FIM with a suffix, the context limit, and the stop-string scanner that holds back text.
#include "serve/openai_api.h"


#include <gtest/gtest.h>

#include "tests/support/tiny_model.h"

namespace qcoder::serve {
namespace {
using json = nlohmann::ordered_json;

using testing_support::tiny_tokenizer;

api_context context() { return {&tiny_tokenizer(), "tiny", 512, 100}; }

std::optional<api_error> parse(endpoint kind, const json& body, api_request& out) {
  return parse_request(kind, body, context(), out);
}

TEST(OpenAiApi, ACompletionRequestBecomesAGeneration) {
  api_request r;
  ASSERT_FALSE(parse(endpoint::completions,
                     {{"model", "tiny"}, {"prompt", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"}, {"max_tokens", 7},
                      {"temperature", 0.5}, {"top_p", 0.9}, {"top_k", 5}, {"seed", 3}, {"stop", "\n\n"}, {"logprobs", 2},
                      {"stream", true}, {"stream_options", {{"include_usage", true}}}},
                     r));
  const engine::tokenizer& tok = tiny_tokenizer();
  // A raw prompt: the control tokens written in it are control tokens.
  EXPECT_EQ(r.prompt.front(), *tok.find_token("<|fim_prefix|>"));
  EXPECT_EQ(r.prompt.back(), *tok.find_token("<|fim_middle|>"));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FALSE(r.sampling.greedy);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 5);
  EXPECT_EQ(r.sampling.seed, 3u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);

  // With a suffix the FIM prompt is built here, and the caller's text stays text.
  ASSERT_FALSE(parse(endpoint::completions, {{"model", "tiny"}, {"prompt", "x = <|fim_pad|>"}, {"suffix", "y"}, {"temperature", 0}}, r));
  EXPECT_EQ(r.prompt.front(), *tok.find_token("<|fim_prefix|>"));
  EXPECT_EQ(std::count(r.prompt.begin(), r.prompt.end(), *tok.find_token("<|fim_pad|>")), 0);
  EXPECT_TRUE(r.sampling.greedy);
  EXPECT_EQ(r.max_tokens, 16);  // the API's default
  EXPECT_EQ(r.top_logprobs, -1);

  // Token ids as the prompt.
  ASSERT_FALSE(parse(endpoint::completions, {{"model", "tiny"}, {"prompt", {5, 6, 7}}}, r));
  EXPECT_EQ(r.prompt, (std::vector<std::int32_t>{5, 6, 7}));
  ASSERT_FALSE(parse(endpoint::completions, {{"model", "tiny"}, {"prompt", {"only one"}}}, r));
}

TEST(OpenAiApi, EachBadFieldIsAClearErrorWithItsStatus) {
  api_request r;
  const auto error = [&](endpoint kind, const json& body) {
    std::optional<api_error> e = parse(kind, body, r);
    EXPECT_TRUE(e) << body.dump();
    return e.value_or(api_error{});
  };
  EXPECT_EQ(error(endpoint::completions, json::array()).status, 400);
  EXPECT_EQ(error(endpoint::completions, {{"prompt", "x"}}).param, "model");
  const api_error unknown = error(endpoint::completions, {{"model", "gpt-4"}, {"prompt", "x"}});
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.code, "model_not_found");
  EXPECT_EQ(unknown.body()["error"]["code"], "model_not_found");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}}).param, "prompt");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", ""}}).param, "prompt");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", {"a", "b"}}}).param, "prompt");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", {1, -2}}}).param, "prompt");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"temperature", 3}}).param, "temperature");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"temperature", "hot"}}).param, "temperature");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"n", 2}}).param, "n");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 0}}).param, "max_tokens");
  json many = json::array();
  for (std::size_t i = 0; i <= max_stop_strings; ++i) many.push_back("s" + std::to_string(i));
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"stop", many}}).param, "stop");
  many.erase(many.begin());  // exactly the limit: accepted
  api_request fine;
  EXPECT_FALSE(parse(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"stop", many}}, fine));
  EXPECT_EQ(fine.stop.size(), max_stop_strings);
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"stop", ""}}).param, "stop");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"stream_options", {{"include_usage", true}}}}).param,
            "stream_options");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"presence_penalty", 2.5}}).param, "presence_penalty");
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"echo", true}}).param, "echo");
  EXPECT_EQ(error(endpoint::chat, {{"model", "tiny"}, {"messages", "hi"}}).param, "messages");
  EXPECT_EQ(error(endpoint::chat, {{"model", "tiny"}, {"messages", json::array()}}).param, "messages");
  EXPECT_EQ(error(endpoint::chat, {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"top_logprobs", 2}}).param,
            "top_logprobs");
  EXPECT_EQ(error(endpoint::chat, {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tool_choice", "required"}}).param,
            "tool_choice");
  // The context: prompt + max_tokens within 512.
  const api_error long_one = error(endpoint::completions, {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 600}});
  EXPECT_EQ(long_one.status, 400);
  EXPECT_EQ(long_one.code, "context_length_exceeded");
  EXPECT_NE(long_one.message.find("512"), std::string::npos);
  std::vector<int> ids(520, 5);
  EXPECT_EQ(error(endpoint::completions, {{"model", "tiny"}, {"prompt", ids}}).code, "context_length_exceeded");
}

TEST(OpenAiApi, ChatDefaultsAndLogprobs) {
  api_request r;
  ASSERT_FALSE(parse(endpoint::chat,
                     {{"model", "tiny"},
                      {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                      {"logprobs", true},
                      {"top_logprobs", 4},
                      {"max_completion_tokens", 9}},
                     r));
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_EQ(r.max_tokens, 9);
  const std::string prompt = *tiny_tokenizer().decode(r.prompt);
  EXPECT_NE(prompt.find("<|im_start|>user\nhi<|im_end|>"), std::string::npos) << prompt;
  EXPECT_TRUE(prompt.ends_with("<|im_start|>assistant\n")) << prompt;
  ASSERT_FALSE(parse(endpoint::chat, {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}, r));
  EXPECT_EQ(r.max_tokens, 100);  // the server's default for chat, within the context
  EXPECT_EQ(r.top_logprobs, -1);
}

TEST(StopScanner, HoldsBackWhatMayBecomeAStopString) {
  stop_scanner s({"END", "\n\n"});
  EXPECT_EQ(s.feed("abc E"), "abc ");
  EXPECT_EQ(s.feed("N"), "");
  EXPECT_EQ(s.feed("x"), "ENx");  // not END after all
  EXPECT_EQ(s.feed("y\n"), "y");
  EXPECT_EQ(s.feed("\nmore"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.feed("later"), "");
  EXPECT_EQ(s.finish(), "");

  stop_scanner t({"END"});
  std::string all;
  for (const char c : std::string("one EN two ENE END three")) all += t.feed(std::string(1, c));
  EXPECT_EQ(all, "one EN two ENE ");
  EXPECT_TRUE(t.stopped());

  stop_scanner none({});
  EXPECT_EQ(none.feed("E"), "E");
  stop_scanner tail({"STOP"});
  EXPECT_EQ(tail.feed("abST"), "ab");
  EXPECT_EQ(tail.finish(), "ST");  // the end of the generation: held text was not a stop
}

TEST(OpenAiApi, UsageAndLogprobShapes) {
  const json u = usage_json({10, 4, 6});
  EXPECT_EQ(u["total_tokens"], 14);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 6);
  const engine::tokenizer& tok = tiny_tokenizer();
  const std::vector<std::int32_t> ids = tok.encode_text("hello world");
  std::vector<engine::token_logprob> records;
  for (const std::int32_t id : ids) records.push_back({id, -0.5f, {{id, -0.5f}, {ids[0], -1.5f}}});
  const json completions = logprobs_json(endpoint::completions, tok, records, 3);
  std::string joined;
  for (const json& t : completions["tokens"]) joined += t.get<std::string>();
  EXPECT_EQ(joined, "hello world");
  EXPECT_EQ(completions["text_offset"][0], 3);
  EXPECT_EQ(completions["token_logprobs"].size(), ids.size());
  const json chat = logprobs_json(endpoint::chat, tok, records);
  EXPECT_EQ(chat["content"].size(), ids.size());
  EXPECT_EQ(chat["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_TRUE(chat["content"][0]["bytes"].is_array());
}

}  // namespace
}  // namespace qcoder::serve
