// `qcoder serve`: the OpenAI-compatible HTTP server (serve/openai_server) on the same engine, caches and
// flags as `qcoder lsp`. Runs until SIGINT or SIGTERM, then stops accepting, lets generations end, and
// saves the prefix cache.
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "engine/model_config.h"
#include "engine/model_locator.h"
#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"
#include "serve/openai_server.h"
#include "service/text_backend.h"

namespace qcoder::cli {
namespace {
namespace fs = std::filesystem;

// The name clients use for the model: the Hugging Face repository id for a hub snapshot
// (…/models--Qwen--Qwen3-Coder-Next/snapshots/<hash> → Qwen/Qwen3-Coder-Next), else the folder's name.
std::string default_model_name(const fs::path& dir) {
  const fs::path canonical = fs::weakly_canonical(dir);
  if (canonical.parent_path().filename() == "snapshots") {
    std::string repo = canonical.parent_path().parent_path().filename().string();
    if (repo.starts_with("models--")) {
      repo = repo.substr(8);
      if (const std::size_t sep = repo.find("--"); sep != std::string::npos) repo.replace(sep, 2, "/");
      return repo;
    }
  }
  return canonical.filename().string();
}

}  // namespace

int run_serve(args_view args) {
  model_flags model;
  prefix_cache_flags cache;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key_env;
  std::string model_name;
  int context = 32768;
  int parallel = 4;
  int queue = 64;
  int prefill_chunk = 128;
  std::string max_body = "8MiB";
  arg_parser parser("serve [--host ADDR] [--port N] [--api-key-env VAR] [model and cache flags]",
                    "Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions,\n"
                    "/v1/models, /health, /metrics) until SIGINT or SIGTERM.");
  parser.option("host", "ADDR", "address to listen on (default 127.0.0.1; another address needs --api-key-env)", &host)
      .option("port", "N", "TCP port (default 8080; 0 picks a free one, printed at start)", &port)
      .option("api-key-env", "VAR", "require `Authorization: Bearer <key>`, the key read from environment variable VAR",
              &api_key_env)
      .option("model-name", "NAME", "the model id clients send (default: the Hugging Face repo id or the folder name)",
              &model_name)
      .option("ctx-size", "N", "most tokens per request, prompt and completion together (default 32768)", &context)
      .option("parallel", "N", "requests decoded together (default 4)", &parallel)
      .option("queue", "N", "requests waiting beyond those; more get 503 (default 64)", &queue)
      .option("prefill-chunk", "N",
              "prompt tokens computed per decode step, so long prompts do not stall running streams (default 128; "
              "0: whole prompts)",
              &prefill_chunk)
      .option("max-body", "SIZE", "largest request body (default 8MiB)", &max_body);
  model.add_to(parser);
  cache.add_to(parser);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (port < 0 || port > 65535) return report_failure(fail(errc::invalid_argument, "--port: expected 0..65535"));
  if (context < 16) return report_failure(fail(errc::invalid_argument, "--ctx-size must be ≥ 16"));
  if (parallel < 1 || parallel > 64) return report_failure(fail(errc::invalid_argument, "--parallel: expected 1..64"));
  if (queue < 0) return report_failure(fail(errc::invalid_argument, "--queue must be ≥ 0"));
  if (prefill_chunk < 0) return report_failure(fail(errc::invalid_argument, "--prefill-chunk must be ≥ 0"));
  result<std::uint64_t> body_limit = parse_size(max_body);
  if (!body_limit || *body_limit < 1024) return report_failure(fail(errc::invalid_argument, "--max-body: expected a size ≥ 1KiB"));

  serve::serve_options options;
  if (!api_key_env.empty()) {
    const char* key = std::getenv(api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return report_failure(fail(errc::invalid_argument, "--api-key-env {}: the variable is not set or empty", api_key_env));
    }
    options.api_key = key;
  }
  result<engine::located_model> where = engine::locate_model(engine::model_search::from_environment(model.model));
  if (!where) return report_failure(where.err());
  result<engine::model_config> config = engine::model_config::load(where->dir);
  if (!config) return report_failure(config.err());
  result<engine::tokenizer> loaded_tok = engine::tokenizer::load_model_dir(where->dir);
  if (!loaded_tok) return report_failure(loaded_tok.err());
  auto tok = std::make_shared<const engine::tokenizer>(std::move(*loaded_tok));
  // Any generation ends at the end of text or where the model starts a new part of the chat or FIM format.
  std::vector<std::int32_t> stop_ids = service::control_stop_ids(*tok);
  for (const std::int64_t id : config->eos_token_ids) stop_ids.push_back(static_cast<std::int32_t>(id));

  options.http.host = host;
  options.http.port = static_cast<std::uint16_t>(port);
  options.http.max_body_bytes = static_cast<std::size_t>(*body_limit);
  const std::string served_name = model_name.empty() ? default_model_name(where->dir) : model_name;
  options.model_name = served_name;
  options.context_tokens = context;
  options.scheduling.max_running = static_cast<std::size_t>(parallel);
  options.scheduling.max_queue = static_cast<std::size_t>(queue);
  options.scheduling.prefill_chunk = prefill_chunk;

  // SIGINT / SIGTERM are waited for below, on this thread; blocked before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  model.model = where->dir.string();
  service::inference_worker worker([&model, &cache] { return load_engine(model, cache); },
                                   [](service::model_state state, const std::string& detail) {
                                     if (state == service::model_state::ready) spdlog::info("serve: the model is ready");
                                     if (state == service::model_state::failed) spdlog::error("serve: {}", detail);
                                   });
  result<std::unique_ptr<serve::openai_server>> server =
      serve::openai_server::start(worker, tok, std::move(stop_ids), std::move(options));
  if (!server) return report_failure(server.err());
  // The one line a script waits for (stderr, like every log).
  fmt::print(stderr, "qcoder serve: listening on http://{}:{} (model `{}`)\n", host, (*server)->port(), served_name);
  std::fflush(stderr);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("serve: {} received, stopping", received == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->stop();
  if (result<void> saved = worker.shutdown(); !saved) spdlog::warn("serve: {}", saved.err().message);
  return 0;
}

}  // namespace qcoder::cli
