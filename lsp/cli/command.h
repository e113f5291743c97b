// The subcommands of the `qcoder` executable and the start-up steps they share (flags for logging,
// `--help`, turning a usage error into exit code 2).
// Not thread-safe; used on the main thread at start-up.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "kernels/common/log.h"
#include "lsp/cli/arg_parser.h"

namespace qcoder::cli {

using args_view = std::span<const std::string_view>;

struct command {
  std::string_view name;
  std::string_view summary;
  int (*run)(args_view args);  // args: what follows the command name; returns the exit code
};

// Every subcommand, in the order `qcoder --help` lists them.
std::span<const command> all_commands();

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;  // the command ran and failed (missing model, bad checkpoint, ...)
inline constexpr int exit_usage = 2;    // bad flags

// Adds --log-level and --log-file, parses `args`, prints help or a usage error, and configures logging.
// Returns an exit code when the command should stop now (help printed, or an error), nullopt to go on.
std::optional<int> start_command(arg_parser& parser, log_options& logging, args_view args);

// Prints "qcoder: <message>" to stderr and returns exit_failure.
int report_failure(const error& err);

// The subcommands (one file each).
int run_version(args_view args);
int run_bench(args_view args);
int run_context(args_view args);
int run_detokenize(args_view args);
int run_tokenize(args_view args);
int run_generate(args_view args);
int run_info(args_view args);
int run_logits(args_view args);
int run_lsp(args_view args);
int run_make_model(args_view args);
int run_refactor(args_view args);
int run_serve(args_view args);

}  // namespace qcoder::cli
