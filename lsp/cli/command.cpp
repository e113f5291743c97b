// The command table and the shared start-up path of every subcommand.
#include "lsp/cli/command.h"

#include <array>
#include <cstdio>

#include <fmt/core.h>

namespace qcoder::cli {

std::span<const command> all_commands() {
  static constexpr command commands[] = {
      {"bench", "performance modes (tokenize, decode, ...); `qcoder bench --help` lists them", run_bench},
      {"context", "assemble the completion prompt for a cursor and show the token budget per block", run_context},
      {"detokenize", "decode lines of token id arrays into {\"text\": ...} lines", run_detokenize},
      {"generate", "continue a prompt of token ids (greedy or sampled) and print the new ids", run_generate},
      {"info", "find the model (--model or the Hugging Face cache) and describe it", run_info},
      {"logits", "write the logits of every prompt position as float32 (prefill or --step)", run_logits},
      {"lsp", "run the language server on stdin/stdout (started by the editor)", run_lsp},
      {"make-model", "write a random qwen3_next checkpoint (tiny or real-size slice, BF16 or FP8) for tests", run_make_model},
      {"refactor", "apply one instruction to every file of a workspace it concerns (a diff, or --apply)", run_refactor},
      {"serve", "serve the model over an OpenAI-compatible HTTP API", run_serve},
      {"tokenize", "encode lines of {\"text\": ...} and print one JSON array of token ids per line", run_tokenize},
      {"version", "print the version, build type, CPU features and CUDA support", run_version},
  };
  return commands;
}

std::optional<int> start_command(arg_parser& parser, log_options& logging, args_view args) {
  parser.option("log-level", "LEVEL", "trace, debug, info, warn, error, critical or off", &logging.level);
  parser.option("log-file", "FILE", "append logs to FILE instead of stderr", &logging.file);
  if (result<void> parsed = parser.parse(args); !parsed) {
    fmt::print(stderr, "qcoder: {}\n", parsed.err().message);
    return exit_usage;
  }
  if (parser.help_requested()) {
    fmt::print(stdout, "{}", parser.help());
    return exit_ok;
  }
  if (result<void> configured = configure_logging(logging); !configured) {
    fmt::print(stderr, "qcoder: {}\n", configured.err().message);
    return exit_usage;
  }
  return std::nullopt;
}

int report_failure(const error& err) {
  fmt::print(stderr, "qcoder: {}\n", err.message);
  return exit_failure;
}

}  // namespace qcoder::cli
