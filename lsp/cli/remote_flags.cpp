// Remote backend flags.
#include "lsp/cli/remote_flags.h"

#include <cstdlib>

#include <spdlog/spdlog.h>

#include "engine/model_locator.h"
#include "http/client.h"

namespace qcoder::cli {

void remote_flags::add_to(arg_parser& parser) {
  parser.option("api-key-env", "VAR", "with --backend: the environment variable holding the server's API key", &api_key_env)
      .option("remote-model", "NAME", "with --backend: the model name to ask for (default: the first the server lists)",
              &remote_model)
      .option("remote-timeout", "S", "with --backend: longest silence from the server within a request (default 60)",
              &timeout_seconds)
      .option("remote-prompt", "FORM",
              "with --backend: send prompts as 'tokens' (ids: exactly what the local model would see; the\n"
              "                     default) or as 'text' (for a server that takes no ids or has another tokenizer)",
              &prompt_form);
}

result<service::remote_options> remote_flags::options() const {
  if (!enabled()) {
    if (!api_key_env.empty() || !remote_model.empty() || prompt_form != "tokens") {
      return fail(errc::invalid_argument, "--api-key-env, --remote-model and --remote-prompt go with --backend URL");
    }
    return fail(errc::invalid_argument, "no --backend given");
  }
  if (result<http::endpoint> url = http::parse_endpoint(backend()); !url) {
    return fail(errc::invalid_argument, "--backend: {}", url.err().message);
  }
  if (prompt_form != "tokens" && prompt_form != "text") {
    return fail(errc::invalid_argument, "--remote-prompt {}: expected tokens or text", prompt_form);
  }
  if (timeout_seconds < 1 || timeout_seconds > 3600) return fail(errc::invalid_argument, "--remote-timeout: expected 1..3600 seconds");
  service::remote_options out;
  out.url = backend();
  out.model = remote_model;
  out.http.idle_timeout = std::chrono::seconds(timeout_seconds);
  if (!api_key_env.empty()) {
    const char* key = std::getenv(api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return fail(errc::invalid_argument, "--api-key-env {}: the variable is not set or empty", api_key_env);
    }
    out.api_key = key;
  }
  return out;
}

result<void> remote_flags::validate() const {
  if (!enabled() && api_key_env.empty() && remote_model.empty() && prompt_form == "tokens") return ok();
  QCODER_CHECK(options());
  return ok();
}

result<service::loaded_engine> remote_flags::load(const model_flags& model) const {
  QCODER_TRY(service::remote_options remote, options());
  QCODER_TRY(engine::located_model where,
             engine::locate_model(engine::model_search::from_environment(model.model), engine::model_files::tokenizer));
  QCODER_TRY(engine::tokenizer tok, engine::tokenizer::load_model_dir(where.dir));
  auto shared = std::make_shared<const engine::tokenizer>(std::move(tok));
  QCODER_TRY(std::unique_ptr<service::remote_completions> client, service::remote_completions::create(std::move(remote)));
  spdlog::info("remote backend: {} (tokenizer from {}, {})", client->server().text(), where.dir.string(), where.source);
  // A first contact, for the log; a server that is down now may be up by the first request.
  std::stop_source never;
  if (result<std::string> served = client->model(never.get_token())) {
    spdlog::info("remote backend: the server serves {}", *served);
  } else {
    spdlog::warn("remote backend: {} (requests will fail until it answers)", served.err().message);
  }
  service::loaded_engine out;
  out.tokenizer = shared;
  out.remote = std::make_unique<service::remote_backend>(
      shared, std::move(client), prompt_form == "text" ? service::remote_prompt::text : service::remote_prompt::tokens);
  return out;
}

}  // namespace qcoder::cli
