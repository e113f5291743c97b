// `qcoder bench lsp`: the language server's own latency per keystroke, the part that is not the model.
// A whole server session runs in-process (the same wiring as `qcoder lsp`; messages are framed as the
// transport would) and a person types N characters into a file: each keystroke is a didChange followed by
// an inlineCompletion request (Automatic), answered before the next one. For each request the server's
// timestamps give:
//   edit applied           didChange handled: document update, tree edit, snippet ring, index refresh
//   request → prompt       the request arrived → its prompt is built (checks, snapshot, queue, context)
//   token → partial        the first usable token → its partial notification handed to the writer
//   overhead               request → prompt + token → partial: what the server adds to the model's time
// and, for reference, the model's part (prompt → first usable token) and the whole request.
// The debounce is off here: it is a deliberate wait, not overhead.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "lsp/cli/bench_command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"
#include "lsp/cli/remote_flags.h"
#include "lsp/jsonrpc/framing.h"
#include "lsp/server/server_session.h"

namespace qcoder::cli {
namespace {
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// What the bench plays: the client. Collects what the server sends; wait() blocks for a reply.
class bench_client {
 public:
  void on_sent(std::string body) {
    const std::string framed = jsonrpc::frame(body);  // the transport's work, counted on the sender's thread
    json m = json::parse(body);
    const std::string method = m.value("method", "");
    std::lock_guard lock(mutex_);
    bytes_ += framed.size();
    if (method == "qcoder/status") {
      const std::string state = m["params"].value("state", "");
      if (state == "idle") ready_ = true;
      if (state == "error") failed_ = m["params"].value("message", "the model failed to load");
    }
    if (m.contains("id") && method.empty()) {
      std::string key = m["id"].dump();  // before m is moved from: json's operator= takes its argument by value
      replies_[std::move(key)] = std::move(m);
    }
    changed_.notify_all();
  }
  json wait_reply(int id) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return replies_.count(json(id).dump()) > 0; });
    return replies_[json(id).dump()];
  }
  std::size_t bytes_sent() {
    std::lock_guard lock(mutex_);
    return bytes_;
  }
  result<void> wait_ready() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return ready_ || !failed_.empty(); });
    if (!failed_.empty()) return fail(errc::not_found, "{}", failed_);
    return ok();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, json> replies_;
  bool ready_ = false;
  std::string failed_;
  std::size_t bytes_ = 0;
};

json message(int id, const char* method, json params) {
  json m = {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
  if (id >= 0) m["id"] = id;
  return m;
}

}  // namespace

int run_bench_lsp(args_view args) {
  model_flags flags;
  prefix_cache_flags cache_flags;
  std::string file, workspace;
  int chars = 40;
  int max_tokens = 8;
  int file_tokens = 3000;
  bool as_json = false;
  remote_flags remote(flags);
  arg_parser parser("bench lsp --model DIR [--file F] [--workspace DIR] [--chars N] [--backend URL] [--json]",
                    "Type N characters into a file through an in-process language server, one inline completion\n"
                    "per keystroke, and print the server's own latency (p50/p99), excluding the model's compute.");
  flags.add_to(parser);
  cache_flags.add_to(parser);
  remote.add_to(parser);
  parser.option("file", "F", "source file to type into; default: a generated Python module", &file)
      .option("file-tokens", "N", "size of the generated module in tokens", &file_tokens)
      .option("workspace", "DIR", "workspace folder to index (its definitions go into prompts)", &workspace)
      .option("chars", "N", "characters typed", &chars)
      .option("max-tokens", "N", "tokens generated per completion", &max_tokens)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (chars < 1 || max_tokens < 1) return report_failure(fail(errc::invalid_argument, "--chars and --max-tokens must be ≥ 1"));
  if (result<void> checked = remote.validate(); !checked) return report_failure(checked.err());

  // Load first, so the load is not what is measured; the session's loader hands the engine over.
  // With --backend the model's part is the server's (and the network's).
  result<service::loaded_engine> loaded = remote.enabled() ? remote.load(flags) : load_engine(flags, cache_flags);
  if (!loaded) return report_failure(loaded.err());
  std::shared_ptr<const engine::tokenizer> tok = loaded->tokenizer;
  if (!tok) {
    result<engine::tokenizer> from_model = engine::tokenizer::load_model_dir(loaded->model->weights_file().dir());
    if (!from_model) return report_failure(from_model.err());
    tok = std::make_shared<const engine::tokenizer>(std::move(*from_model));
  }
  result<std::string> source = typing_source(file, *tok, file_tokens);
  if (!source) return report_failure(source.err());
  std::string text = std::move(*source);
  const std::string path = file.empty() ? (workspace.empty() ? std::string("/bench/inventory.py") : workspace + "/bench_inventory.py")
                                        : std::filesystem::absolute(file).string();

  bench_client client;
  lsp::session_options options;
  options.settings.debounce = std::chrono::milliseconds(0);
  options.settings.max_tokens = max_tokens;
  std::optional<service::loaded_engine> engine_once(std::move(*loaded));
  lsp::server_session session([&](std::string body) { client.on_sent(std::move(body)); },
                              [&](const lsp::server_settings&) -> result<service::loaded_engine> {
                                if (!engine_once) return fail(errc::internal, "loaded twice");
                                service::loaded_engine e = std::move(*engine_once);
                                engine_once.reset();
                                return e;
                              },
                              options);
  std::mutex timings_mutex;
  std::vector<lsp::completion_timing> timings;
  session.completions().set_on_timing([&](const lsp::completion_timing& t) {
    std::lock_guard lock(timings_mutex);
    timings.push_back(t);
  });
  json init = {{"capabilities", json::object()}};
  if (!workspace.empty()) init["rootUri"] = "file://" + std::filesystem::absolute(workspace).string();
  session.receive(message(0, "initialize", init).dump());
  client.wait_reply(0);
  session.receive(message(-1, "initialized", json::object()).dump());
  if (result<void> ready = client.wait_ready(); !ready) return report_failure(ready.err());
  session.workspace().wait_indexed();  // typing starts in the steady state, not during the first build

  // The cursor: a new line opened in the middle of the file, where the typing happens.
  std::size_t cursor = text.find('\n', text.size() / 2);
  cursor = cursor == std::string::npos ? text.size() : cursor + 1;
  text.insert(cursor, "    \n");
  std::size_t line = static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(cursor), '\n'));
  const std::string uri = "file://" + path;
  session.receive(message(-1, "textDocument/didOpen",
                          {{"textDocument", {{"uri", uri}, {"languageId", "python"}, {"version", 1}, {"text", text}}}})
                      .dump());
  std::string typed = "total = sum(r.total_value() for r in rs)  # recompute after the reorder pass";
  while (typed.size() < static_cast<std::size_t>(chars)) typed += "; " + typed;

  std::vector<double> edit_us;
  for (int i = 0; i <= chars; ++i) {
    const std::size_t column = 4 + static_cast<std::size_t>(i);
    if (i > 0) {
      const std::string change =
          message(-1, "textDocument/didChange",
                  {{"textDocument", {{"uri", uri}, {"version", i + 1}}},
                   {"contentChanges", {{{"range", {{"start", {{"line", line}, {"character", column - 1}}}, {"end", {{"line", line}, {"character", column - 1}}}}},
                                        {"text", std::string(1, typed[static_cast<std::size_t>(i - 1)])}}}}})
              .dump();
      const auto t0 = clock_type::now();
      session.receive(change);
      edit_us.push_back(ms(clock_type::now() - t0) * 1000.0);
    }
    session.receive(message(i + 1, "textDocument/inlineCompletion",
                            {{"textDocument", {{"uri", uri}}},
                             {"position", {{"line", line}, {"character", column}}},
                             {"context", {{"triggerKind", 2}}}})
                        .dump());
    const json reply = client.wait_reply(i + 1);
    if (reply.contains("error")) return report_failure(fail(errc::internal, "completion {} failed: {}", i + 1, reply["error"].dump()));
  }
  session.receive(message(1000000, "shutdown", nullptr).dump());
  client.wait_reply(1000000);
  session.stop();

  // The first request opened the file (a cold prompt); the keystrokes are what is reported.
  std::vector<double> to_prompt, to_partial, overhead, model_part, total;
  std::size_t partials = 0;
  {
    std::lock_guard lock(timings_mutex);
    for (std::size_t i = 1; i < timings.size(); ++i) {
      const lsp::completion_timing& t = timings[i];
      to_prompt.push_back(ms(t.prompt_ready - t.received));
      total.push_back(ms(t.replied - t.received));
      double o = ms(t.prompt_ready - t.received);
      if (t.first_partial.time_since_epoch().count() != 0) {
        ++partials;
        to_partial.push_back(ms(t.first_partial - t.first_token));
        model_part.push_back(ms(t.first_token - t.prompt_ready));
        o += ms(t.first_partial - t.first_token);
      }
      overhead.push_back(o);
    }
  }
  const double per_keystroke_bytes = static_cast<double>(client.bytes_sent()) / static_cast<double>(chars + 1);
  const auto row = [](const std::vector<double>& v) { return json{{"p50", percentile(v, 0.5)}, {"p99", percentile(v, 0.99)}}; };
  if (as_json) {
    fmt::print("{}\n", json{{"keystrokes", chars},
                            {"requests_with_partial", partials},
                            {"edit_applied_us", row(edit_us)},
                            {"request_to_prompt_ms", row(to_prompt)},
                            {"token_to_partial_ms", row(to_partial)},
                            {"overhead_ms", row(overhead)},
                            {"model_to_first_token_ms", row(model_part)},
                            {"request_total_ms", row(total)},
                            {"bytes_sent_per_keystroke", per_keystroke_bytes}}
                           .dump());
    return 0;
  }
  fmt::print("lsp              {} keystrokes into {} ({} bytes), {} with a partial, workspace {}\n", chars, path, text.size(),
             partials, workspace.empty() ? "none" : workspace);
  fmt::print("{:<26} {:>10} {:>10}\n", "stage", "p50", "p99");
  const auto print = [](const char* name, const std::vector<double>& v, const char* unit) {
    fmt::print("{:<26} {:>8.3f}{} {:>8.3f}{}\n", name, percentile(v, 0.5), unit, percentile(v, 0.99), unit);
  };
  print("edit applied", edit_us, "us");
  print("request -> prompt", to_prompt, "ms");
  print("token -> partial sent", to_partial, "ms");
  print("server overhead", overhead, "ms");
  print("model: prompt -> token", model_part, "ms");
  print("whole request", total, "ms");
  fmt::print("sent to the client  {:.0f} bytes per keystroke (reply, partials, status)\n", per_keystroke_bytes);
  return 0;
}

}  // namespace qcoder::cli
