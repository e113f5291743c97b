// The remote backend's flags (--backend URL, --api-key-env VAR, --remote-model NAME, --remote-timeout S,
// --remote-prompt tokens|text)
// of the commands that can send their prompts to an OpenAI-compatible server instead of the local model
// (`lsp`, `refactor`), and the engine they make: the local tokenizer (prompts are built here) and a client
// for the server. Not thread-safe; used on the main thread at start-up.
#pragma once

#include <string>

#include "lsp/cli/arg_parser.h"
#include "lsp/cli/model_flags.h"
#include "service/inference_worker.h"

namespace qcoder::cli {

struct remote_flags {
  // The server's base URL is model_flags' --backend (which also names local backends).
  explicit remote_flags(const model_flags& model) : model_(&model) {}

  std::string api_key_env;  // the variable holding the API key
  std::string remote_model; // empty: the first model the server lists
  int timeout_seconds = 60; // longest silence from the server within a request
  std::string prompt_form = "tokens";  // how prompts go: "tokens" (ids) or "text"

  void add_to(arg_parser& parser);
  bool enabled() const { return model_->remote(); }
  // Checks the flags when any was given (the URL, the key variable), without contacting the server.
  result<void> validate() const;
  // Checks the flags (the URL, the key variable) without contacting the server.
  result<service::remote_options> options() const;
  // The engine for --backend: the tokenizer from `model`'s folder (--model DIR, or the Hugging Face cache;
  // only the tokenizer files are needed) and the server's client. The server is asked for its models once,
  // to log what it serves; one that is down now is not an error (requests say so until it is back).
  result<service::loaded_engine> load(const model_flags& model) const;

 private:
  const std::string& backend() const { return model_->backend; }
  const model_flags* model_;
};

}  // namespace qcoder::cli
