// Streamed completions from a remote OpenAI-compatible server (see remote_completions.h).
#include "service/remote_completions.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "http/sse.h"
#include "service/text_scan.h"

namespace qcoder::service {
namespace {
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// 0.8f as 0.8, not 0.800000011920929: the shortest decimal that reads back as the same float.
double plain_number(float value) {
  const std::string text = fmt::format("{}", value);
  double out = value;
  std::from_chars(text.data(), text.data() + text.size(), out);  // not stod: that one follows the C locale
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// At most `n` bytes of a server's text, for an error message.
std::string excerpt(std::string_view text, std::size_t n = 300) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.size() <= n) return std::string(text);
  return std::string(text.substr(0, n)) + "...";
}

// What a server says went wrong: {"error":{"message":...}} (OpenAI, vLLM, us), {"error":"..."},
// {"detail":"..."} (FastAPI), or the body itself.
std::string server_message(std::string_view body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (const auto e = j.find("error"); e != j.end()) {
      if (e->is_string()) return e->get<std::string>();
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) return (*e)["message"].get<std::string>();
    }
    for (const char* key : {"detail", "message"}) {
      if (const auto m = j.find(key); m != j.end() && m->is_string()) return m->get<std::string>();
    }
  }
  return body.empty() ? std::string("no message") : excerpt(body);
}

// Waits `how_long` unless `stop` fires first; false when it did.
bool wait_unless_stopped(std::chrono::milliseconds how_long, std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any never_notified;
  std::unique_lock lock(mutex);
  return !never_notified.wait_for(lock, stop, how_long, [&] { return stop.stop_requested(); });
}

// One try's stream: SSE bytes in, text to on_text, the figures and the outcome kept.
class stream_reader {
 public:
  stream_reader(const http::endpoint& server, stop_scanner& cutter, const std::function<bool(std::string_view)>& on_text,
                clock_type::time_point started, remote_result& out)
      : server_(server), cutter_(cutter), on_text_(on_text), started_(started), out_(out) {}

  // For http::send's on_data: false ends the stream.
  bool on_data(std::string_view bytes) {
    if (parser_.push(bytes, [this](const http::sse_parser::event& e) { return on_event(e); })) return true;
    if (!parser_.error().empty() && !failure_) {
      failure_ = fail(errc::parse_error, "the stream from {} is unusable: {}", server_.text(), parser_.error());
    }
    return false;
  }

  // Hands out what was held back for a possible stop string; false when on_text said stop.
  bool flush() { return emit(cutter_.finish()); }

  bool delivered() const { return delivered_; }
  bool done() const { return done_; }
  bool user_stopped() const { return user_stopped_; }
  std::optional<error>& failure() { return failure_; }

 private:
  bool on_event(const http::sse_parser::event& e) {
    if (e.data == "[DONE]") {
      done_ = true;
      return false;  // all there is; no need to wait for the server to end the body
    }
    const json chunk = json::parse(e.data, nullptr, /*allow_exceptions=*/false);
    if (!chunk.is_object()) {
      failure_ = fail(errc::parse_error, "the server at {} sent an event that is not a JSON object: {}", server_.text(),
                      excerpt(e.data));
      return false;
    }
    if (const auto err = chunk.find("error"); err != chunk.end() && !err->is_null()) {
      failure_ = stream_error(*err);
      return false;
    }
    read_usage(chunk);
    const auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array() || choices->empty()) return true;  // e.g. the usage chunk
    const json& choice = (*choices)[0];
    if (const auto reason = choice.find("finish_reason"); reason != choice.end() && reason->is_string()) {
      out_.finish_reason = reason->get<std::string>();
    }
    const auto text = choice.find("text");
    if (text == choice.end() || !text->is_string()) return true;
    if (!emit(cutter_.feed(text->get_ref<const std::string&>()))) return false;
    return !cutter_.stopped();  // a stop string: the rest is not wanted, and closing tells the server so
  }

  bool emit(const std::string& text) {
    if (text.empty()) return true;
    if (!delivered_) out_.first_text_seconds = seconds_since(started_);
    delivered_ = true;
    user_stopped_ = !on_text_(text);
    return !user_stopped_;
  }

  void read_usage(const json& chunk) {
    const auto usage = chunk.find("usage");
    if (usage == chunk.end() || !usage->is_object()) return;
    const auto count = [&](const json& object, const char* key) -> std::int64_t {
      const auto it = object.find(key);
      return it != object.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
    };
    out_.prompt_tokens = static_cast<std::size_t>(std::max<std::int64_t>(0, count(*usage, "prompt_tokens")));
    out_.completion_tokens = static_cast<std::size_t>(std::max<std::int64_t>(0, count(*usage, "completion_tokens")));
    if (const auto details = usage->find("prompt_tokens_details"); details != usage->end() && details->is_object()) {
      out_.cached_tokens = count(*details, "cached_tokens");
    }
  }

  // An error object in the stream (a generation that failed after its 200): a client error when its code
  // says so, the server's trouble otherwise.
  error stream_error(const json& err) const {
    std::string message = err.is_string() ? err.get<std::string>() : dump(err);
    int code = 0;
    if (err.is_object()) {
      if (const auto m = err.find("message"); m != err.end() && m->is_string()) message = m->get<std::string>();
      if (const auto c = err.find("code"); c != err.end() && c->is_number_integer()) code = c->get<int>();
    }
    if (code >= 400 && code < 500) {
      return fail(errc::invalid_argument, "the server at {} refused the request: {}", server_.text(), message);
    }
    return fail(errc::unavailable, "the server at {} failed during the stream: {}", server_.text(), message);
  }

  const http::endpoint& server_;
  stop_scanner& cutter_;
  const std::function<bool(std::string_view)>& on_text_;
  clock_type::time_point started_;
  remote_result& out_;
  http::sse_parser parser_;
  std::optional<error> failure_;
  bool delivered_ = false;
  bool done_ = false;
  bool user_stopped_ = false;
};

std::string request_body(const remote_request& request, const std::string& model) {
  json body = {
      {"model", model},
      {"prompt", request.prompt_ids.empty() ? json(request.prompt) : json(request.prompt_ids)},
      {"max_tokens", request.max_tokens},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"temperature", request.greedy ? 0.0 : plain_number(request.temperature)},
      {"top_p", plain_number(request.top_p)},
      // vLLM / SGLang: keep control tokens in the text, so that stop strings can match them.
      {"skip_special_tokens", false},
  };
  if (request.seed) body["seed"] = *request.seed;
  if (!request.greedy && request.top_k > 0) body["top_k"] = request.top_k;
  json stop = json::array();
  for (const std::string& s : request.stop) {
    if (!s.empty() && stop.size() < max_server_stop_strings) stop.push_back(s);
  }
  if (!stop.empty()) body["stop"] = std::move(stop);
  return dump(body);
}

bool is_busy(int status) { return status == 429 || status == 503; }

}  // namespace

result<std::unique_ptr<remote_completions>> remote_completions::create(remote_options options) {
  QCODER_TRY(http::endpoint server, http::parse_endpoint(options.url));
  if (server.base_path.empty()) server.base_path = "/v1";
  if (options.max_attempts < 1) {
    return fail(errc::invalid_argument, "max_attempts is {}; at least one try is needed", options.max_attempts);
  }
  return std::unique_ptr<remote_completions>(new remote_completions(std::move(options), std::move(server)));
}

http::header_list remote_completions::headers() const {
  if (options_.api_key.empty()) return {};
  return {{"Authorization", "Bearer " + options_.api_key}};
}

result<void> remote_completions::ask_models(std::stop_token stop) {
  QCODER_TRY(http::client_reply reply, http::send(server_, "GET", "/models", headers(), "", nullptr, stop, options_.http));
  if (reply.status < 200 || reply.status >= 300) return reply_error(reply, 1);
  const json list = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  const json* data = list.is_object() && list.contains("data") ? &list["data"] : nullptr;
  if (!data || !data->is_array()) {
    return fail(errc::parse_error, "GET {}/models did not answer a model list: {}", server_.text(), excerpt(reply.body));
  }
  std::lock_guard lock(model_mutex_);
  models_asked_ = true;
  for (const json& m : *data) {
    if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
    const std::string id = m["id"].get<std::string>();
    if (first_model_.empty()) first_model_ = id;
    // vLLM and `qcoder serve` say how long a sequence may be; others do not.
    if (const auto len = m.find("max_model_len"); len != m.end() && len->is_number_integer() && len->get<std::int64_t>() > 0) {
      context_tokens_[id] = len->get<std::int64_t>();
    }
  }
  return ok();
}

result<std::string> remote_completions::model(std::stop_token stop) {
  if (!options_.model.empty()) return options_.model;
  {
    std::lock_guard lock(model_mutex_);
    if (!first_model_.empty()) return first_model_;
  }
  QCODER_CHECK(ask_models(stop));
  std::lock_guard lock(model_mutex_);
  if (first_model_.empty()) return fail(errc::parse_error, "the server at {} lists no model; give one", server_.text());
  return first_model_;
}

std::optional<std::int64_t> remote_completions::context_tokens(std::stop_token stop) {
  result<std::string> name = model(stop);
  if (!name) return std::nullopt;
  std::unique_lock lock(model_mutex_);
  if (!models_asked_) {
    lock.unlock();
    if (!ask_models(stop)) return std::nullopt;  // asked again next time
    lock.lock();
  }
  const auto it = context_tokens_.find(*name);
  return it == context_tokens_.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
}

result<remote_result> remote_completions::stream(const remote_request& request,
                                                 const std::function<bool(std::string_view text)>& on_text,
                                                 std::stop_token stop) {
  const auto started = clock_type::now();
  QCODER_TRY(const std::string model_name, model(stop));
  const std::string body = request_body(request, model_name);
  remote_result out;
  std::chrono::milliseconds backoff = options_.backoff;
  for (out.attempts = 1;; ++out.attempts) {
    stop_scanner cutter(request.stop);
    stream_reader reader(server_, cutter, on_text, started, out);
    QCODER_TRY(http::client_reply reply,
               http::send(server_, "POST", "/completions", headers(), body,
                          [&](std::string_view bytes) { return reader.on_data(bytes); }, stop, options_.http));
    if (reply.status >= 200 && reply.status < 300) {
      if (reader.failure()) return std::move(*reader.failure());
      if (reader.user_stopped()) {
        out.finish_reason = "cancelled";
      } else if (cutter.stopped()) {
        out.finish_reason = "stop";
      } else if (!reader.done() && !reply.content_type.starts_with("text/event-stream")) {
        return fail(errc::parse_error, "the server at {} answered {} instead of a stream of events",
                    server_.text(), reply.content_type.empty() ? "without a Content-Type" : reply.content_type);
      } else if (!reader.done()) {
        return fail(errc::unavailable, "the stream from {} was cut off before its end", server_.text());
      } else if (!reader.flush()) {
        out.finish_reason = "cancelled";
      }
      if (out.finish_reason.empty()) out.finish_reason = "stop";
      out.seconds = seconds_since(started);
      return out;
    }
    if (!is_busy(reply.status) || out.attempts >= options_.max_attempts || reader.delivered()) {
      return reply_error(reply, out.attempts);
    }
    const auto wait = std::min(reply.retry_after.value_or(backoff), options_.max_backoff);
    if (!wait_unless_stopped(wait, stop)) {
      return fail(errc::cancelled, "the request to {} was cancelled while waiting to retry", server_.text());
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

error remote_completions::reply_error(const http::client_reply& reply, int attempts) const {
  const std::string server = server_.text();
  const std::string message = server_message(reply.body);
  const int status = reply.status;
  if (status == 401 || status == 403) {
    if (options_.api_key.empty()) {
      return fail(errc::invalid_argument, "the server at {} needs an API key: set --api-key-env (HTTP {}: {})", server,
                  status, message);
    }
    return fail(errc::invalid_argument, "the server at {} rejected the API key (HTTP {}: {})", server, status, message);
  }
  if (is_busy(status)) {
    return fail(errc::unavailable, "the server at {} is busy (HTTP {}) after {} {}: {}", server, status, attempts,
                attempts == 1 ? "try" : "tries", message);
  }
  if (status >= 400 && status < 500) {
    return fail(errc::invalid_argument, "the server at {} refused the request (HTTP {}): {}", server, status, message);
  }
  if (status >= 500) return fail(errc::unavailable, "the server at {} failed (HTTP {}): {}", server, status, message);
  return fail(errc::unsupported, "the server at {} answered HTTP {}, which is not an API reply: {}", server, status, message);
}

}  // namespace qcoder::service
