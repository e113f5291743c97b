// Routes, the per-request exchange between the inference thread and the client, and /metrics.
#include "serve/openai_server.h"

#include <chrono>
#include <random>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "serve/reply_stream.h"

namespace qcoder::serve {
namespace {
using json = nlohmann::ordered_json;

void send_json(http::responder& reply, int status, const json& body, http::header_list headers = {}) {
  reply.send(status, "application/json", dump_json(body), std::move(headers));
}

void send_error(http::responder& reply, const api_error& e, http::header_list headers = {}) {
  send_json(reply, e.status, e.body(), std::move(headers));
}

}  // namespace

openai_server::openai_server(service::inference_worker& worker, std::shared_ptr<const engine::tokenizer> tok,
                             std::vector<std::int32_t> stop_ids, serve_options options)
    : worker_(worker),
      tok_(std::move(tok)),
      stop_ids_(std::move(stop_ids)),
      options_(std::move(options)),
      scheduler_(worker, options_.scheduling),
      started_at_(unix_now()) {}

result<std::unique_ptr<openai_server>> openai_server::start(service::inference_worker& worker,
                                                            std::shared_ptr<const engine::tokenizer> tok,
                                                            std::vector<std::int32_t> stop_ids, serve_options options) {
  const std::string& host = options.http.host;
  const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "::1" || host.starts_with("127.");
  if (!loopback && options.api_key.empty()) {
    return fail(errc::invalid_argument,
                "--host {}: listening beyond this machine needs an API key (--api-key-env VAR names the variable "
                "that holds it)",
                host);
  }
  std::unique_ptr<openai_server> server(new openai_server(worker, std::move(tok), std::move(stop_ids), std::move(options)));
  openai_server* self = server.get();
  QCODER_TRY(server->http_, http::server::start(server->options_.http, [self](http::request request, http::responder reply) {
               self->handle(std::move(request), std::move(reply));
             }));
  return server;
}

openai_server::~openai_server() { stop(); }

void openai_server::stop() {
  if (http_) http_->stop();
}

std::uint16_t openai_server::port() const { return http_ ? http_->port() : 0; }

void openai_server::handle(http::request request, http::responder reply) {
  ++requests_;
  const std::string& path = request.path;
  const bool api = path.starts_with("/v1/");
  if (api && !options_.api_key.empty()) {
    const std::optional<std::string> key = http::bearer_token(request);
    if (!key || !http::constant_time_equals(*key, options_.api_key)) {
      ++http_errors_;
      return send_error(reply, error_of(401, "Incorrect or missing API key (send Authorization: Bearer KEY)",
                                        "invalid_request_error", "invalid_api_key"),
                        {{"WWW-Authenticate", "Bearer"}});
    }
  }
  const auto method_is = [&](const char* m) { return request.method == m; };
  const auto wrong_method = [&](const char* allowed) {
    ++http_errors_;
    send_error(reply, error_of(405, fmt::format("{} {}: use {}", request.method, path, allowed), "invalid_request_error",
                               "method_not_allowed"),
               {{"Allow", allowed}});
  };
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (!method_is("POST")) return wrong_method("POST");
    return generate(path == "/v1/completions" ? endpoint::completions : endpoint::chat, request, std::move(reply));
  }
  if (path == "/v1/models" || path.starts_with("/v1/models/")) {
    if (!method_is("GET")) return wrong_method("GET");
    const json model = {{"id", options_.model_name}, {"object", "model"}, {"created", started_at_}, {"owned_by", "qcoder"},
                        {"max_model_len", options_.context_tokens}};
    if (path == "/v1/models") return send_json(reply, 200, {{"object", "list"}, {"data", json::array({model})}});
    if (path.substr(std::string("/v1/models/").size()) == options_.model_name) return send_json(reply, 200, model);
    ++http_errors_;
    return send_error(reply, error_of(404, fmt::format("The model `{}` does not exist", path.substr(11)),
                                      "invalid_request_error", "model_not_found"));
  }
  if (path == "/health") {
    if (!method_is("GET")) return wrong_method("GET");
    switch (worker_.state()) {
      case service::model_state::ready: return send_json(reply, 200, {{"status", "ok"}});
      case service::model_state::loading:
        return send_json(reply, 503, {{"status", "loading"}}, {{"Retry-After", "5"}});
      default: return send_json(reply, 503, {{"status", "unavailable"}});
    }
  }
  if (path == "/metrics") {
    if (!method_is("GET")) return wrong_method("GET");
    return reply.send(200, "text/plain; version=0.0.4", metrics_text());
  }
  ++http_errors_;
  send_error(reply, error_of(404, fmt::format("no route {} {}", request.method, path), "invalid_request_error", "not_found"));
}

void openai_server::generate(endpoint kind, const http::request& request, http::responder reply) {
  json body;
  try {
    body = json::parse(request.body);
  } catch (const json::parse_error& e) {
    ++http_errors_;
    return send_error(reply, error_of(400, fmt::format("the body is not valid JSON: {}", e.what()), "invalid_request_error"));
  }
  const api_context context{tok_.get(), options_.model_name, options_.context_tokens, 4096};
  api_request parsed;
  if (std::optional<api_error> e = parse_request(kind, body, context, parsed)) {
    ++http_errors_;
    return send_error(reply, *e);
  }
  auto ex = std::make_shared<reply_stream>(http_sink(reply), parsed, *tok_, options_.model_name, std::random_device{}());
  generation_job job;
  engine::generation_request& g = job.request;
  g.prompt = std::move(parsed.prompt);
  g.max_tokens = parsed.max_tokens;
  g.sampling = parsed.sampling;
  g.stop_ids = stop_ids_;
  g.top_logprobs = parsed.top_logprobs;
  g.stop = reply.disconnected();
  g.on_token = [ex](std::int32_t id) { return ex->on_token(id); };
  if (parsed.top_logprobs >= 0) g.on_logprob = [ex](const engine::token_logprob& r) { ex->on_logprob(r); };
  job.on_done = [ex](result<engine::generation_result> r) { ex->on_done(std::move(r)); };
  if (!scheduler_.submit(std::move(job))) {
    ++http_errors_;
    return send_error(reply,
                      error_of(503, "the server is busy: too many requests are waiting; retry shortly", "server_busy"),
                      {{"Retry-After", "1"}});
  }
}

std::string openai_server::metrics_text() const {
  const scheduler_stats s = scheduler_.stats();
  std::string out;
  const auto metric = [&](const char* name, const char* type, const char* help, double value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  metric("qcoder_requests_total", "counter", "HTTP requests received", static_cast<double>(requests_.load()));
  metric("qcoder_request_errors_total", "counter", "HTTP requests answered with an error status before generation",
         static_cast<double>(http_errors_.load()));
  metric("qcoder_generations_submitted_total", "counter", "generations queued", static_cast<double>(s.submitted));
  metric("qcoder_generations_refused_total", "counter", "generations refused because the queue was full (503)",
         static_cast<double>(s.refused));
  metric("qcoder_generations_finished_total", "counter", "generations completed", static_cast<double>(s.finished));
  metric("qcoder_generations_cancelled_total", "counter", "generations stopped because the client went away",
         static_cast<double>(s.cancelled));
  metric("qcoder_generations_failed_total", "counter", "generations that ended in an error", static_cast<double>(s.failed));
  metric("qcoder_queue_length", "gauge", "generations waiting for a place in the batch", static_cast<double>(s.queued));
  metric("qcoder_running_generations", "gauge", "generations being decoded now", static_cast<double>(s.running));
  metric("qcoder_prompt_tokens_total", "counter", "prompt tokens of admitted generations", static_cast<double>(s.prompt_tokens));
  metric("qcoder_prompt_tokens_cached_total", "counter", "prompt tokens restored from the prefix cache",
         static_cast<double>(s.cached_prompt_tokens));
  metric("qcoder_generated_tokens_total", "counter", "tokens generated", static_cast<double>(s.generated_tokens));
  metric("qcoder_prefill_seconds_total", "counter", "inference time spent on prompts", s.prefill_seconds);
  metric("qcoder_decode_seconds_total", "counter", "inference time spent in decode steps", s.decode_seconds);
  metric("qcoder_decode_steps_total", "counter", "decode steps (one forward pass over the batch)", static_cast<double>(s.steps));
  metric("qcoder_decode_tokens_per_second", "gauge", "generated tokens per second of decode time since start",
         s.decode_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.decode_seconds : 0.0);
  metric("qcoder_prefix_cache_hit_ratio", "gauge", "share of prompt tokens restored from the prefix cache",
         s.prompt_tokens > 0 ? static_cast<double>(s.cached_prompt_tokens) / static_cast<double>(s.prompt_tokens) : 0.0);
  const std::uint64_t lookups = s.expert_hits + s.expert_misses;
  metric("qcoder_expert_cache_hit_ratio", "gauge", "share of routed-expert lookups served from the expert cache (0 without one)",
         lookups > 0 ? static_cast<double>(s.expert_hits) / static_cast<double>(lookups) : 0.0);
  metric("qcoder_model_ready", "gauge", "1 when the model is loaded", worker_.state() == service::model_state::ready ? 1.0 : 0.0);
  return out;
}

}  // namespace qcoder::serve
