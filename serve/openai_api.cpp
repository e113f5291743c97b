// Request checks and response shapes of the OpenAI API (see openai_api.h).
#include "serve/openai_api.h"

#include <algorithm>
#include <random>

#include <fmt/core.h>

namespace qcoder::serve {
namespace {
using json = nlohmann::ordered_json;

json null_or(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

api_error bad(std::string param, std::string message) {
  api_error e;
  e.status = 400;
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

// Optional fields of one type. Each returns an error when the field is there with the wrong type or range.
std::optional<api_error> get_number(const json& body, const char* key, double low, double high, double& out) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return bad(key, fmt::format("{}: expected a number", key));
  const double v = it->get<double>();
  if (!(v >= low && v <= high)) return bad(key, fmt::format("{}: {} is outside [{}, {}]", key, v, low, high));
  out = v;
  return std::nullopt;
}

std::optional<api_error> get_integer(const json& body, const char* key, std::int64_t low, std::int64_t high,
                                     std::optional<std::int64_t>& out) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return bad(key, fmt::format("{}: expected an integer", key));
  const std::int64_t v = it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)
                             ? INT64_MAX
                             : it->get<std::int64_t>();
  if (v < low || v > high) return bad(key, fmt::format("{}: {} is outside [{}, {}]", key, v, low, high));
  out = v;
  return std::nullopt;
}

std::optional<api_error> get_bool(const json& body, const char* key, bool& out) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return bad(key, fmt::format("{}: expected true or false", key));
  out = it->get<bool>();
  return std::nullopt;
}

#define QCODER_API_CHECK(expr)                         \
  do {                                                 \
    if (std::optional<api_error> e = (expr)) return e; \
  } while (0)

std::optional<api_error> read_sampling(const json& body, api_request& out) {
  double temperature = 1.0, top_p = 1.0, min_p = 0.0, repetition = 1.0, presence = 0.0, frequency = 0.0;
  QCODER_API_CHECK(get_number(body, "temperature", 0.0, 2.0, temperature));
  QCODER_API_CHECK(get_number(body, "top_p", 0.0, 1.0, top_p));
  QCODER_API_CHECK(get_number(body, "min_p", 0.0, 1.0, min_p));
  QCODER_API_CHECK(get_number(body, "repetition_penalty", 0.01, 10.0, repetition));
  QCODER_API_CHECK(get_number(body, "presence_penalty", -2.0, 2.0, presence));
  QCODER_API_CHECK(get_number(body, "frequency_penalty", -2.0, 2.0, frequency));
  std::optional<std::int64_t> top_k, seed;
  QCODER_API_CHECK(get_integer(body, "top_k", -1, 1 << 20, top_k));
  QCODER_API_CHECK(get_integer(body, "seed", INT64_MIN, INT64_MAX, seed));
  if (top_p <= 0.0) return bad("top_p", "top_p: must be greater than 0");
  engine::sampling_params& s = out.sampling;
  s.greedy = temperature == 0.0;
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p);
  s.top_k = top_k && *top_k > 0 ? static_cast<std::int32_t>(*top_k) : 0;
  s.min_p = static_cast<float>(min_p);
  s.repetition_penalty = static_cast<float>(repetition);
  s.presence_penalty = static_cast<float>(presence);
  s.frequency_penalty = static_cast<float>(frequency);
  s.seed = seed ? static_cast<std::uint64_t>(*seed) : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  return std::nullopt;
}

std::optional<api_error> read_stop(const json& body, api_request& out) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return std::nullopt;
  const auto one = [&](const json& v) -> std::optional<api_error> {
    if (!v.is_string()) return bad("stop", fmt::format("stop: expected a string or an array of up to {} strings", max_stop_strings));
    if (v.get_ref<const std::string&>().empty()) return bad("stop", "stop: a stop string may not be empty");
    out.stop.push_back(v.get<std::string>());
    return std::nullopt;
  };
  if (it->is_array()) {
    if (it->size() > max_stop_strings) return bad("stop", fmt::format("stop: at most {} stop strings", max_stop_strings));
    for (const json& v : *it) QCODER_API_CHECK(one(v));
    return std::nullopt;
  }
  return one(*it);
}

std::optional<api_error> read_prompt(const json& body, const api_context& context, api_request& out) {
  const auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad("prompt", "prompt: required");
  const engine::tokenizer& tok = *context.tok;
  std::string suffix;
  bool fim = false;
  if (const auto s = body.find("suffix"); s != body.end() && !s->is_null()) {
    if (!s->is_string()) return bad("suffix", "suffix: expected a string");
    suffix = s->get<std::string>();
    fim = true;
  }
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_array() && p->size() > 1 && ((*p)[0].is_string() || (*p)[0].is_array())) {
    return bad("prompt", "prompt: one prompt per request (n = 1); send several requests instead");
  }
  if (p->is_string()) {
    const std::string& text = p->get_ref<const std::string&>();
    if (fim) {
      // The caller's prefix and suffix are text; only our template holds control tokens.
      const auto piece = [&](const char* name) -> std::optional<std::int32_t> { return tok.find_token(name); };
      const auto pre = piece("<|fim_prefix|>"), suf = piece("<|fim_suffix|>"), mid = piece("<|fim_middle|>");
      if (!pre || !suf || !mid) return bad("suffix", "suffix: this model's tokenizer has no FIM tokens");
      out.prompt.push_back(*pre);
      const std::vector<std::int32_t> a = tok.encode_text(text);
      out.prompt.insert(out.prompt.end(), a.begin(), a.end());
      out.prompt.push_back(*suf);
      const std::vector<std::int32_t> b = tok.encode_text(suffix);
      out.prompt.insert(out.prompt.end(), b.begin(), b.end());
      out.prompt.push_back(*mid);
    } else {
      out.prompt = tok.encode_prompt(text);  // raw: control tokens written in the prompt are control tokens
    }
  } else if (p->is_array()) {
    if (fim) return bad("suffix", "suffix: only with a text prompt");
    for (const json& id : *p) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
          id.get<std::int64_t>() >= static_cast<std::int64_t>(tok.id_limit())) {
        return bad("prompt", fmt::format("prompt: token ids must be integers in [0, {})", tok.id_limit()));
      }
      out.prompt.push_back(id.get<std::int32_t>());
    }
  } else {
    return bad("prompt", "prompt: expected a string, or an array of token ids");
  }
  if (out.prompt.empty()) return bad("prompt", "prompt: empty");
  return std::nullopt;
}

std::optional<api_error> read_chat(const json& body, const api_context& context, api_request& out) {
  const auto messages = body.find("messages");
  if (messages == body.end()) return bad("messages", "messages: required");
  result<std::vector<service::chat_message>> parsed = service::parse_messages(*messages);
  if (!parsed) return bad("messages", parsed.err().message);
  if (parsed->empty()) return bad("messages", "messages: at least one message");
  std::vector<service::tool_spec> tools;
  if (const auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    result<std::vector<service::tool_spec>> specs = service::parse_tools(*t);
    if (!specs) return bad("tools", specs.err().message);
    tools = std::move(*specs);
  }
  if (const auto c = body.find("tool_choice"); c != body.end() && !c->is_null()) {
    if (!c->is_string() || (*c != "auto" && *c != "none")) {
      return bad("tool_choice", "tool_choice: only \"auto\" and \"none\" are supported");
    }
    if (*c == "none") tools.clear();
  }
  if (const auto f = body.find("response_format"); f != body.end() && !f->is_null()) {
    if (!f->is_object() || f->value("type", "") != "text") {
      return bad("response_format", "response_format: only {\"type\": \"text\"} is supported");
    }
  }
  out.prompt = service::encode_pieces(*context.tok, service::render_chat(*parsed, tools, true));
  out.tools = std::move(tools);
  return std::nullopt;
}

}  // namespace

json api_error::body() const {
  return {{"error", {{"message", message}, {"type", type}, {"param", null_or(param)}, {"code", null_or(code)}}}};
}

std::optional<api_error> parse_request(endpoint kind, const json& body, const api_context& context, api_request& out) {
  out = api_request{};
  out.kind = kind;
  if (!body.is_object()) return bad("", "the request body must be a JSON object");
  const auto model = body.find("model");
  if (model == body.end() || !model->is_string()) return bad("model", "model: required (a string)");
  if (model->get_ref<const std::string&>() != context.model_name) {
    api_error e;
    e.status = 404;
    e.code = "model_not_found";
    e.param = "model";
    e.message = fmt::format("The model `{}` does not exist; this server serves `{}`", model->get<std::string>(),
                            context.model_name);
    return e;
  }
  std::optional<std::int64_t> n, best_of;
  QCODER_API_CHECK(get_integer(body, "n", 1, 1, n));
  QCODER_API_CHECK(get_integer(body, "best_of", 1, 1, best_of));
  QCODER_API_CHECK(get_bool(body, "stream", out.stream));
  if (const auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
    if (!out.stream) return bad("stream_options", "stream_options: only with stream: true");
    if (!so->is_object()) return bad("stream_options", "stream_options: expected an object");
    QCODER_API_CHECK(get_bool(*so, "include_usage", out.include_usage));
  }
  bool echo = false;
  QCODER_API_CHECK(get_bool(body, "echo", echo));
  if (echo) return bad("echo", "echo: not supported");
  QCODER_API_CHECK(read_sampling(body, out));
  QCODER_API_CHECK(read_stop(body, out));

  std::optional<std::int64_t> max_tokens;
  QCODER_API_CHECK(get_integer(body, "max_tokens", 1, INT32_MAX, max_tokens));
  if (kind == endpoint::chat) {
    std::optional<std::int64_t> completion;
    QCODER_API_CHECK(get_integer(body, "max_completion_tokens", 1, INT32_MAX, completion));
    if (completion) max_tokens = completion;
    bool logprobs = false;
    QCODER_API_CHECK(get_bool(body, "logprobs", logprobs));
    std::optional<std::int64_t> top;
    QCODER_API_CHECK(get_integer(body, "top_logprobs", 0, 20, top));
    if (top && !logprobs) return bad("top_logprobs", "top_logprobs: only with logprobs: true");
    if (logprobs) out.top_logprobs = static_cast<int>(top.value_or(0));
    QCODER_API_CHECK(read_chat(body, context, out));
  } else {
    std::optional<std::int64_t> logprobs;
    QCODER_API_CHECK(get_integer(body, "logprobs", 0, 20, logprobs));
    if (logprobs) out.top_logprobs = static_cast<int>(*logprobs);
    QCODER_API_CHECK(read_prompt(body, context, out));
  }

  const std::int64_t prompt = static_cast<std::int64_t>(out.prompt.size());
  const std::int64_t room = context.context_tokens - prompt;
  out.max_tokens = max_tokens.value_or(kind == endpoint::chat ? std::min(context.default_chat_max_tokens, room) : 16);
  if (room < 1 || out.max_tokens > room) {
    api_error e = bad(max_tokens ? "max_tokens" : "messages", "");
    e.code = "context_length_exceeded";
    e.message = fmt::format(
        "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the prompt, {} for "
        "the completion). Please reduce the prompt or the completion length.",
        context.context_tokens, prompt + std::max<std::int64_t>(out.max_tokens, 1), prompt,
        std::max<std::int64_t>(out.max_tokens, 1));
    return e;
  }
  return std::nullopt;
}

json usage_json(const usage_figures& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json logprobs_json(endpoint kind, const engine::tokenizer& tok, const std::vector<engine::token_logprob>& records,
                   std::size_t text_offset) {
  // A token's text may be part of a character: shown with U+FFFD, its raw bytes given separately (chat).
  const auto text_of = [&](std::int32_t id) {
    const std::int32_t one[] = {id};
    result<std::string> t = tok.decode(one);
    return t ? *t : std::string();
  };
  const auto bytes_of = [&](std::int32_t id) {
    json out = json::array();
    for (const unsigned char c : tok.token_bytes(id)) out.push_back(static_cast<int>(c));
    return out;
  };
  if (kind == endpoint::chat) {
    json content = json::array();
    for (const engine::token_logprob& r : records) {
      json top = json::array();
      for (const auto& [id, lp] : r.top) top.push_back({{"token", text_of(id)}, {"logprob", lp}, {"bytes", bytes_of(id)}});
      content.push_back({{"token", text_of(r.id)}, {"logprob", r.logprob}, {"bytes", bytes_of(r.id)}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
  std::size_t offset = text_offset;
  for (const engine::token_logprob& r : records) {
    const std::string text = text_of(r.id);
    tokens.push_back(text);
    token_logprobs.push_back(r.logprob);
    json top = json::object();
    for (const auto& [id, lp] : r.top) top[text_of(id)] = lp;
    top_logprobs.push_back(top);
    offsets.push_back(offset);
    offset += tok.token_bytes(r.id).size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
}

std::string finish_reason_text(engine::finish_reason reason, bool stopped_by_string, bool called_tools) {
  if (called_tools) return "tool_calls";
  if (stopped_by_string) return "stop";
  return reason == engine::finish_reason::length ? "length" : "stop";
}

json response_head(endpoint kind, bool chunk, const std::string& id, std::int64_t created, const std::string& model) {
  const char* object = kind == endpoint::chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

json tool_call_json(const service::tool_call& call, std::optional<std::size_t> index) {
  json out = {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments.dump()}}}};
  if (index) out["index"] = *index;
  return out;
}

}  // namespace qcoder::serve
