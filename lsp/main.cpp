// Entry point of the `qcoder` executable: picks the subcommand and hands it the remaining arguments.
// `qcoder lsp` (the editor's language server) and every tool command live in the same binary so that they
// share one engine build and one set of flags.
#include <cstdio>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "lsp/cli/command.h"
#include "lsp/version.h"

namespace {

void print_help() {
  fmt::print("qcoder {}: a local coding assistant (language server + Qwen3-Coder-Next engine)\n\n", qcoder::version_string);
  fmt::print("usage: qcoder <command> [flags]      qcoder <command> --help describes every flag\n\ncommands:\n");
  for (const qcoder::cli::command& c : qcoder::cli::all_commands()) fmt::print("  {:<10}  {}\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? qcoder::cli::exit_usage : qcoder::cli::exit_ok;
  }
  if (args[0] == "--version") args[0] = "version";
  for (const qcoder::cli::command& c : qcoder::cli::all_commands()) {
    if (c.name == args[0]) return c.run(qcoder::cli::args_view(args).subspan(1));
  }
  fmt::print(stderr, "qcoder: unknown command '{}' (run `qcoder --help` for the list)\n", args[0]);
  return qcoder::cli::exit_usage;
}
