// Tokens → the OpenAI reply, whole or as server-sent events (see reply_stream.h).
#include "serve/reply_stream.h"

#include <chrono>
#include <random>

namespace qcoder::serve {
namespace {
using json = nlohmann::ordered_json;

class responder_sink final : public reply_sink {
 public:
  explicit responder_sink(http::responder reply) : reply_(std::move(reply)) {}
  void send(int status, std::string body, http::header_list headers) override {
    reply_.send(status, "application/json", std::move(body), std::move(headers));
  }
  bool begin_stream() override { return reply_.begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}); }
  bool write(std::string data) override { return reply_.write(std::move(data)); }
  void end() override { reply_.end(); }

 private:
  http::responder reply_;
};

}  // namespace

std::unique_ptr<reply_sink> http_sink(http::responder reply) { return std::make_unique<responder_sink>(std::move(reply)); }

api_error error_of(int status, std::string message, std::string type, std::string code) {
  api_error e;
  e.status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  return e;
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out = prefix;
  for (int i = 0; i < 24; ++i) out += alphabet[rng() % (sizeof(alphabet) - 1)];
  return out;
}

reply_stream::reply_stream(std::unique_ptr<reply_sink> sink, const api_request& request, const engine::tokenizer& tok,
                           std::string model, std::uint64_t seed)
    : sink_(std::move(sink)),
      kind_(request.kind),
      stream_(request.stream),
      include_usage_(request.include_usage),
      logprobs_(request.top_logprobs >= 0),
      tok_(tok),
      decoder_(tok, /*skip_added=*/false),  // <tool_call> is an added token the parser must see
      stops_(request.stop),
      model_(std::move(model)),
      id_(random_id(request.kind == endpoint::chat ? "chatcmpl-" : "cmpl-")),
      created_(unix_now()),
      prompt_tokens_(request.prompt.size()) {
  if (!request.tools.empty()) tools_.emplace(request.tools, seed);
}

bool reply_stream::on_token(std::int32_t id) {
  std::string piece;
  if (!decoder_.push(id, piece)) return true;  // an id the tokenizer does not know: no text
  emit(stops_.feed(piece), false);
  return !stops_.stopped() && !gone_;
}

void reply_stream::on_done(result<engine::generation_result> done) {
  if (!done) {
    const bool shutting_down = done.err().code == errc::cancelled;
    const api_error e = error_of(shutting_down ? 503 : 500, done.err().message,
                                 shutting_down ? "service_unavailable" : "server_error");
    if (!started_) return sink_->send(e.status, dump_json(e.body()), {});
    write_event(e.body());
    finish_stream();
    return;
  }
  const engine::generation_result& r = *done;
  if (r.reason == engine::finish_reason::cancelled || gone_) {
    // The client went away (or the server is stopping): nobody to answer.
    if (started_) {
      sink_->end();
    } else {
      const api_error e = error_of(503, "the request was cancelled", "service_unavailable");
      sink_->send(e.status, dump_json(e.body()), {});
    }
    return;
  }
  std::string tail;
  decoder_.finish(tail);
  std::string rest = stops_.feed(tail);
  if (!stops_.stopped()) rest += stops_.finish();
  emit(std::move(rest), true);
  const usage_figures usage{prompt_tokens_, r.tokens.size(), r.prompt_tokens_restored};
  const std::string reason = finish_reason_text(r.reason, stops_.stopped(), called_tools_);
  if (!stream_) return send_whole(usage, reason);
  json last = head();
  json choice = {{"index", 0}, {"finish_reason", reason}, {"logprobs", nullptr}};
  if (kind_ == endpoint::chat) {
    choice["delta"] = role_sent_ ? json::object() : json{{"role", "assistant"}, {"content", ""}};
  } else {
    choice["text"] = "";
  }
  last["choices"] = json::array({choice});
  if (include_usage_) last["usage"] = nullptr;
  write_event(last);
  if (include_usage_) {
    json u = head();
    u["choices"] = json::array();
    u["usage"] = usage_json(usage);
    write_event(u);
  }
  finish_stream();
}

json reply_stream::head() const { return response_head(kind_, stream_, id_, created_, model_); }

void reply_stream::emit(std::string text, bool final) {
  std::vector<service::tool_call> calls;
  if (tools_) {
    service::tool_call_parser::output out = tools_->push(text);
    if (final) {
      service::tool_call_parser::output end = tools_->finish();
      out.content += end.content;
      out.calls.insert(out.calls.end(), end.calls.begin(), end.calls.end());
    }
    text = std::move(out.content);
    calls = std::move(out.calls);
  }
  if (!calls.empty()) called_tools_ = true;
  if (!stream_) {
    text_ += text;
    calls_.insert(calls_.end(), calls.begin(), calls.end());
    all_logprobs_.insert(all_logprobs_.end(), pending_logprobs_.begin(), pending_logprobs_.end());
    pending_logprobs_.clear();
    return;
  }
  if (!text.empty() || (final && logprobs_ && !pending_logprobs_.empty())) {
    json chunk = head();
    json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
    if (logprobs_ && !pending_logprobs_.empty()) {
      choice["logprobs"] = logprobs_json(kind_, tok_, pending_logprobs_, text_bytes_);
      pending_logprobs_.clear();
    }
    if (kind_ == endpoint::chat) {
      choice["delta"] = {{"content", text}};
      if (!role_sent_) choice["delta"]["role"] = "assistant";
      role_sent_ = true;
    } else {
      choice["text"] = text;
    }
    text_bytes_ += text.size();
    chunk["choices"] = json::array({choice});
    if (include_usage_) chunk["usage"] = nullptr;
    write_event(chunk);
  }
  for (const service::tool_call& call : calls) {
    json chunk = head();
    json delta = {{"tool_calls", json::array({tool_call_json(call, tool_index_++)})}};
    if (!role_sent_) delta["role"] = "assistant";
    role_sent_ = true;
    chunk["choices"] = json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}, {"logprobs", nullptr}}});
    if (include_usage_) chunk["usage"] = nullptr;
    write_event(chunk);
  }
}

void reply_stream::send_whole(const usage_figures& usage, const std::string& reason) {
  json body = head();
  json choice = {{"index", 0}, {"finish_reason", reason}, {"logprobs", nullptr}};
  if (logprobs_) choice["logprobs"] = logprobs_json(kind_, tok_, all_logprobs_, 0);
  if (kind_ == endpoint::chat) {
    json message = {{"role", "assistant"}, {"content", text_.empty() && !calls_.empty() ? json(nullptr) : json(text_)}};
    if (!calls_.empty()) {
      message["tool_calls"] = json::array();
      for (const service::tool_call& c : calls_) message["tool_calls"].push_back(tool_call_json(c));
    }
    choice["message"] = message;
  } else {
    choice["text"] = text_;
  }
  body["choices"] = json::array({choice});
  body["usage"] = usage_json(usage);
  sink_->send(200, dump_json(body), {});
}

void reply_stream::write_event(const json& event) {
  if (gone_) return;
  if (!started_) {
    started_ = true;
    if (!sink_->begin_stream()) {
      gone_ = true;
      return;
    }
  }
  if (!sink_->write("data: " + dump_json(event) + "\n\n")) gone_ = true;
}

void reply_stream::finish_stream() {
  if (!gone_) sink_->write("data: [DONE]\n\n");
  sink_->end();
}

}  // namespace qcoder::serve
