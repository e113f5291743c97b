// The reply shapes, without a server or a model: scripted tokens through reply_stream into a recording
// sink. A tool call parsed out of a streamed chat reply and sent as a tool_calls delta, the same reply
// whole, stop strings and logprobs in a streamed completion, errors before and after the stream started,
// and a client that went away.
#include "serve/reply_stream.h"


#include <gtest/gtest.h>

#include "tests/support/tiny_model.h"

namespace qcoder::serve {
namespace {
using json = nlohmann::ordered_json;

using testing_support::tiny_tokenizer;

struct recording {
  int status = 0;
  std::string body;
  bool streamed = false;
  bool ended = false;
  std::vector<std::string> events;  // the data of each event
  bool client_gone = false;
};

class recording_sink final : public reply_sink {
 public:
  explicit recording_sink(recording& r) : r_(r) {}
  void send(int status, std::string body, http::header_list) override {
    r_.status = status;
    r_.body = std::move(body);
  }
  bool begin_stream() override {
    r_.streamed = true;
    r_.status = 200;
    return !r_.client_gone;
  }
  bool write(std::string data) override {
    EXPECT_TRUE(data.starts_with("data: ") && data.ends_with("\n\n")) << data;
    r_.events.push_back(data.substr(6, data.size() - 8));
    return !r_.client_gone;
  }
  void end() override { r_.ended = true; }

 private:
  recording& r_;
};

std::vector<service::tool_spec> weather_tool() {
  return *service::parse_tools(json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}])"));
}

const std::string tool_reply =
    "Let me check.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>";

// Feeds `text` token by token as the model would produce it, then ends with `reason`.
void play(reply_stream& reply, const std::string& text, engine::finish_reason reason, bool logprobs = false) {
  const std::vector<std::int32_t> ids = tiny_tokenizer().encode_prompt(text);
  engine::generation_result r;
  for (const std::int32_t id : ids) {
    if (logprobs) reply.on_logprob({id, -0.25f, {{id, -0.25f}}});
    r.tokens.push_back(id);
    if (!reply.on_token(id)) break;
  }
  r.reason = reason;
  r.prompt_tokens_restored = 3;
  reply.on_done(std::move(r));
}

api_request chat_request(bool stream) {
  api_request req;
  req.kind = endpoint::chat;
  req.prompt = {1, 2, 3, 4};
  req.stream = stream;
  req.include_usage = stream;
  req.tools = weather_tool();
  return req;
}

TEST(ReplyStream, AStreamedToolCallBecomesAToolCallsDelta) {
  recording rec;
  reply_stream reply(std::make_unique<recording_sink>(rec), chat_request(true), tiny_tokenizer(), "tiny", 7);
  play(reply, tool_reply, engine::finish_reason::stop_token);
  ASSERT_TRUE(rec.streamed);
  ASSERT_TRUE(rec.ended);
  ASSERT_GE(rec.events.size(), 4u);
  EXPECT_EQ(rec.events.back(), "[DONE]");
  std::string content;
  std::vector<json> calls;
  std::string finish;
  json usage;
  for (std::size_t i = 0; i + 1 < rec.events.size(); ++i) {
    const json e = json::parse(rec.events[i]);
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    if (e.contains("usage") && e["usage"].is_object()) usage = e["usage"];
    if (e["choices"].empty()) continue;
    const json& choice = e["choices"][0];
    if (i == 0) {
      EXPECT_EQ(choice["delta"]["role"], "assistant");
    }
    if (choice["delta"].contains("content")) content += choice["delta"]["content"].get<std::string>();
    if (choice["delta"].contains("tool_calls")) calls.push_back(choice["delta"]["tool_calls"][0]);
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(content.find("<tool_call>"), std::string::npos) << content;
  EXPECT_EQ(content.substr(0, 13), "Let me check.");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["type"], "function");
  EXPECT_TRUE(calls[0]["id"].get<std::string>().starts_with("call_"));
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()), json::parse(R"({"city": "Paris", "days": 2})"));
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(usage["prompt_tokens"], 4);
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], 3);
}

TEST(ReplyStream, TheSameReplyWholeHasToolCallsInTheMessage) {
  recording rec;
  reply_stream reply(std::make_unique<recording_sink>(rec), chat_request(false), tiny_tokenizer(), "tiny", 7);
  play(reply, tool_reply, engine::finish_reason::stop_token);
  EXPECT_FALSE(rec.streamed);
  ASSERT_EQ(rec.status, 200);
  const json body = json::parse(rec.body);
  EXPECT_EQ(body["object"], "chat.completion");
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"].get<std::string>().substr(0, 13), "Let me check.");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_FALSE(choice["message"]["tool_calls"][0].contains("index"));
  EXPECT_EQ(body["usage"]["completion_tokens"], body["usage"]["total_tokens"].get<int>() - 4);
}

TEST(ReplyStream, AStreamedCompletionStopsBeforeTheStopStringWithItsLogprobs) {
  api_request req;
  req.kind = endpoint::completions;
  req.prompt = {1, 2};
  req.stream = true;
  req.stop = {"STOP"};
  req.top_logprobs = 1;
  recording rec;
  reply_stream reply(std::make_unique<recording_sink>(rec), req, tiny_tokenizer(), "tiny", 1);
  play(reply, "alpha beta STOP gamma", engine::finish_reason::length, true);
  std::string text;
  std::size_t records = 0;
  std::string finish;
  for (const std::string& e : rec.events) {
    if (e == "[DONE]") continue;
    const json chunk = json::parse(e);
    const json& choice = chunk["choices"][0];
    text += choice["text"].get<std::string>();
    if (choice["logprobs"].is_object()) records += choice["logprobs"]["tokens"].size();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(text, "alpha beta ");
  EXPECT_EQ(finish, "stop");
  EXPECT_GE(records, tiny_tokenizer().encode_text("alpha beta ").size());  // the held-back tokens' come along
  EXPECT_EQ(rec.events.back(), "[DONE]");
}

TEST(ReplyStream, ErrorsAndAClientThatWentAway) {
  api_request req;
  req.kind = endpoint::completions;
  req.prompt = {1};
  req.stream = true;
  {
    recording rec;  // nothing sent yet: a proper status
    reply_stream reply(std::make_unique<recording_sink>(rec), req, tiny_tokenizer(), "tiny", 1);
    reply.on_done(fail(errc::io_error, "an expert could not be read"));
    EXPECT_FALSE(rec.streamed);
    EXPECT_EQ(rec.status, 500);
    EXPECT_EQ(json::parse(rec.body)["error"]["type"], "server_error");
  }
  {
    recording rec;  // mid-stream: an error event, then the end
    reply_stream reply(std::make_unique<recording_sink>(rec), req, tiny_tokenizer(), "tiny", 1);
    for (const std::int32_t id : tiny_tokenizer().encode_text("some text")) reply.on_token(id);
    reply.on_done(fail(errc::io_error, "an expert could not be read"));
    ASSERT_TRUE(rec.streamed);
    ASSERT_GE(rec.events.size(), 2u);
    EXPECT_TRUE(json::parse(rec.events[rec.events.size() - 2]).contains("error"));
    EXPECT_EQ(rec.events.back(), "[DONE]");
    EXPECT_TRUE(rec.ended);
  }
  {
    recording rec;  // the client is gone: generation is told to stop
    rec.client_gone = true;
    reply_stream reply(std::make_unique<recording_sink>(rec), req, tiny_tokenizer(), "tiny", 1);
    bool go_on = true;
    for (const std::int32_t id : tiny_tokenizer().encode_text("some text")) go_on = go_on && reply.on_token(id);
    EXPECT_FALSE(go_on);
  }
}

}  // namespace
}  // namespace qcoder::serve
