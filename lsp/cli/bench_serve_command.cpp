// `qcoder bench serve`: concurrent streaming clients against an OpenAI-compatible server (`qcoder serve`,
// or any other) on this machine. Each client sends streamed /v1/completions requests back to back for the
// given time; the figures are requests/s, generated tokens/s (from the streams' usage), time to first
// token and inter-token latency p50/p99, and errors. With --verify every stream is also compared with a
// non-streamed run of the same greedy request sent alone afterwards: nothing lost, nothing duplicated.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "lsp/cli/bench_command.h"

namespace qcoder::cli {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using clock_type = std::chrono::steady_clock;
using nlohmann::json;

struct target {
  std::string host;
  std::string port;
  std::string base;  // path prefix, e.g. "/v1"
};

// http://HOST:PORT[/PATH], loopback only: this drives load, and must not be pointed at someone else.
result<target> parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (!url.starts_with(scheme)) return fail(errc::invalid_argument, "--url {}: expected http://HOST:PORT[/v1]", url);
  const std::string rest = url.substr(scheme.size());
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  std::string base = slash == std::string::npos ? "/v1" : rest.substr(slash);
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  const std::size_t colon = authority.rfind(':');
  if (colon == std::string::npos) return fail(errc::invalid_argument, "--url {}: give the port", url);
  target t{authority.substr(0, colon), authority.substr(colon + 1), base};
  if (t.host.size() > 2 && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(t.host == "localhost" ? "127.0.0.1" : t.host, ec);
  if (ec || !address.is_loopback()) {
    return fail(errc::invalid_argument, "--url {}: only a loopback address (127.0.0.1, ::1, localhost) may be driven", url);
  }
  return t;
}

struct stream_result {
  bool ok = false;
  std::string error;
  std::string text;
  std::int64_t completion_tokens = 0;
  double first_token = -1;           // seconds from the request to the first text
  std::vector<double> gaps;          // seconds between text events
};

// A connection of its own to the server, with `method path` sent on it (JSON body when not empty).
class exchange {
 public:
  exchange(const target& t, bhttp::verb method, const std::string& path, const std::string& body, const std::string& api_key)
      : stream_(io_) {
    asio::ip::tcp::resolver resolver(io_);
    stream_.expires_after(std::chrono::seconds(300));
    stream_.connect(resolver.resolve(t.host, t.port));
    bhttp::request<bhttp::string_body> req(method, t.base + path, 11);
    req.set(bhttp::field::host, t.host);
    if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
    if (!api_key.empty()) req.set(bhttp::field::authorization, "Bearer " + api_key);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream_, req);
  }
  beast::tcp_stream& stream() { return stream_; }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
};

// One streamed completion over its own connection; text events are timed as they arrive.
stream_result stream_completion(const target& t, const std::string& body, const std::string& api_key) {
  stream_result out;
  try {
    const auto start = clock_type::now();
    auto last = start;
    exchange call(t, bhttp::verb::post, "/completions", body, api_key);
    beast::tcp_stream& stream = call.stream();
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    std::string pending;
    bool done = false;
    auto on_data = [&](std::uint64_t, beast::string_view data, beast::error_code&) {
      pending.append(data.data(), data.size());
      for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
        const std::string event = pending.substr(0, end);
        pending.erase(0, end + 2);
        if (!event.starts_with("data: ")) continue;
        const std::string payload = event.substr(6);
        if (payload == "[DONE]") {
          done = true;
          continue;
        }
        const json chunk = json::parse(payload, nullptr, false);
        if (chunk.is_discarded()) continue;
        if (chunk.contains("error")) out.error = chunk["error"].value("message", "error event");
        if (chunk.contains("usage") && chunk["usage"].is_object()) out.completion_tokens = chunk["usage"].value("completion_tokens", 0);
        if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
        const std::string text = chunk["choices"][0].value("text", "");
        if (text.empty()) continue;
        const auto now = clock_type::now();
        if (out.first_token < 0) {
          out.first_token = std::chrono::duration<double>(now - start).count();
        } else {
          out.gaps.push_back(std::chrono::duration<double>(now - last).count());
        }
        last = now;
        out.text += text;
      }
      return data.size();
    };
    parser.on_chunk_body(on_data);
    bhttp::read(stream, buffer, parser);
    if (parser.get().result_int() != 200) {
      out.error = fmt::format("HTTP {}: {}", parser.get().result_int(), parser.get().body().substr(0, 200));
      return out;
    }
    out.ok = done && out.error.empty();
    if (!done && out.error.empty()) out.error = "the stream ended without [DONE]";
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

// The same request, not streamed: the reference text.
result<std::string> whole_completion(const target& t, const std::string& body, const std::string& api_key) {
  try {
    exchange call(t, bhttp::verb::post, "/completions", body, api_key);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(call.stream(), buffer, res);
    if (res.result_int() != 200) return fail(errc::io_error, "HTTP {}: {}", res.result_int(), res.body().substr(0, 200));
    const json reply = json::parse(res.body(), nullptr, false);
    if (reply.is_discarded() || !reply.contains("choices")) return fail(errc::parse_error, "not a completion: {}", res.body().substr(0, 200));
    return reply["choices"][0].value("text", "");
  } catch (const std::exception& e) {
    return fail(errc::io_error, "{}", e.what());
  }
}

}  // namespace

int run_bench_serve(args_view args) {
  std::string url;
  std::string model_name;
  std::string api_key_env;
  int clients = 8;
  double seconds = 30;
  int max_tokens = 64;
  bool verify = false;
  bool as_json = false;
  arg_parser parser("bench serve --url http://127.0.0.1:PORT [--model-name NAME] [--clients N] [--seconds S] [--max-tokens N] [--verify] [--json]",
                    "Drive an OpenAI-compatible server on this machine with N concurrent streaming clients and report\n"
                    "requests/s, tokens/s, time to first token and inter-token latency p50/p99, and errors.");
  parser.option("url", "URL", "the server, e.g. http://127.0.0.1:8080 (loopback only; /v1 is added when no path is given)", &url)
      .option("model-name", "NAME", "the model to ask for (default: the first one /v1/models lists)", &model_name)
      .option("api-key-env", "VAR", "send `Authorization: Bearer` with the key in environment variable VAR", &api_key_env)
      .option("clients", "N", "concurrent clients, each sending streamed requests back to back (default 8)", &clients)
      .option("seconds", "S", "how long to send new requests (default 30; requests in flight then finish)", &seconds)
      .option("max-tokens", "N", "tokens per completion (default 64)", &max_tokens)
      .flag("verify", "check every stream against the same greedy request sent alone afterwards", &verify)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (url.empty()) return report_failure(fail(errc::invalid_argument, "--url is required"));
  if (clients < 1 || clients > 256 || seconds <= 0 || max_tokens < 1) {
    return report_failure(fail(errc::invalid_argument, "--clients 1..256, --seconds > 0 and --max-tokens ≥ 1"));
  }
  result<target> t = parse_url(url);
  if (!t) return report_failure(t.err());
  std::string api_key;
  if (!api_key_env.empty()) {
    const char* key = std::getenv(api_key_env.c_str());
    if (key == nullptr) return report_failure(fail(errc::invalid_argument, "--api-key-env {}: not set", api_key_env));
    api_key = key;
  }
  if (model_name.empty()) {
    // Ask the server which model it serves.
    try {
      exchange call(*t, bhttp::verb::get, "/models", "", api_key);
      beast::flat_buffer buffer;
      bhttp::response<bhttp::string_body> res;
      bhttp::read(call.stream(), buffer, res);
      const json models = json::parse(res.body(), nullptr, false);
      if (models.is_discarded() || !models.contains("data") || models["data"].empty()) {
        return report_failure(fail(errc::io_error, "{}/models: no model listed (HTTP {})", url, res.result_int()));
      }
      model_name = models["data"][0].value("id", "");
    } catch (const std::exception& e) {
      return report_failure(fail(errc::io_error, "{}: {}", url, e.what()));
    }
  }

  // Each client cycles through its own prompts; greedy, so a request's text is a function of its prompt.
  const auto body_of = [&](int client, int n, bool stream) {
    json body = {{"model", model_name},
                 {"prompt", fmt::format("# client {} request {}\ndef handler_{}_{}(request):\n    ", client, n % 4, client, n % 4)},
                 {"max_tokens", max_tokens},
                 {"temperature", 0}};
    if (stream) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
    }
    return body.dump();
  };
  std::mutex mutex;
  std::vector<double> first_tokens, gaps;
  std::map<std::pair<int, int>, std::vector<std::string>> texts;  // (client, prompt) → every stream's text
  std::int64_t requests = 0, errors = 0, tokens = 0;
  std::string first_error;
  const auto start = clock_type::now();
  const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int n = 0; clock_type::now() < deadline; ++n) {
        stream_result r = stream_completion(*t, body_of(c, n, true), api_key);
        std::lock_guard lock(mutex);
        ++requests;
        if (!r.ok) {
          ++errors;
          if (first_error.empty()) first_error = r.error;
          continue;
        }
        tokens += r.completion_tokens;
        if (r.first_token >= 0) first_tokens.push_back(r.first_token);
        gaps.insert(gaps.end(), r.gaps.begin(), r.gaps.end());
        texts[{c, n % 4}].push_back(std::move(r.text));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();

  std::int64_t mismatches = 0;
  std::string first_mismatch;
  if (verify) {
    for (const auto& [key, streams] : texts) {
      result<std::string> solo = whole_completion(*t, body_of(key.first, key.second, false), api_key);
      if (!solo) return report_failure(solo.err());
      for (const std::string& s : streams) {
        if (s == *solo) continue;
        ++mismatches;
        if (first_mismatch.empty()) first_mismatch = fmt::format("client {} prompt {}: streamed {:?}, alone {:?}", key.first, key.second, s, *solo);
      }
    }
  }
  const auto ms = [](double s) { return s * 1e3; };
  const double ttft50 = first_tokens.empty() ? 0 : percentile(first_tokens, 0.5), ttft99 = first_tokens.empty() ? 0 : percentile(first_tokens, 0.99);
  const double itl50 = gaps.empty() ? 0 : percentile(gaps, 0.5), itl99 = gaps.empty() ? 0 : percentile(gaps, 0.99);
  if (as_json) {
    json out = {{"clients", clients}, {"seconds", elapsed}, {"requests", requests}, {"errors", errors},
                {"requests_per_second", static_cast<double>(requests) / elapsed},
                {"tokens_per_second", static_cast<double>(tokens) / elapsed},
                {"ttft_ms", {{"p50", ms(ttft50)}, {"p99", ms(ttft99)}}},
                {"itl_ms", {{"p50", ms(itl50)}, {"p99", ms(itl99)}}}};
    if (verify) out["mismatches"] = mismatches;
    if (!first_error.empty()) out["first_error"] = first_error;
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("serve            {} clients, {:.1f} s, {} tokens per request, model `{}`\n", clients, elapsed, max_tokens, model_name);
    fmt::print("requests         {} ({:.2f}/s), {} errors\n", requests, static_cast<double>(requests) / elapsed, errors);
    fmt::print("tokens/s         {:.1f} (all clients)\n", static_cast<double>(tokens) / elapsed);
    fmt::print("TTFT             p50 {:.1f} ms   p99 {:.1f} ms\n", ms(ttft50), ms(ttft99));
    fmt::print("inter-token      p50 {:.2f} ms   p99 {:.2f} ms\n", ms(itl50), ms(itl99));
    if (verify) fmt::print("verified         {} streams, {} differ from their request run alone\n", requests - errors, mismatches);
    if (!first_error.empty()) fmt::print("first error      {}\n", first_error);
    if (!first_mismatch.empty()) fmt::print("first mismatch   {}\n", first_mismatch);
  }
  return errors > 0 || mismatches > 0 ? 1 : 0;
}

}  // namespace qcoder::cli
