// `qcoder bench`: dispatches to a sub-benchmark by name. To add one, write bench_<what>_command.cpp,
// declare it in bench_command.h and add a row to the table below (alphabetical).
#include "lsp/cli/bench_command.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include <fmt/core.h>

namespace qcoder::cli {
namespace {

void print_bench_help(std::FILE* to) {
  fmt::print(to, "usage: qcoder bench <what> [flags]      qcoder bench <what> --help describes every flag\n\n");
  fmt::print(to, "Performance measurements; each prints a table, or one JSON object with --json.\n\nbenchmarks:\n");
  for (const bench_command& b : all_bench_commands()) fmt::print(to, "  {:<12}  {}\n", b.name, b.summary);
}

}  // namespace

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(rank);
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

std::span<const bench_command> all_bench_commands() {
  static constexpr bench_command commands[] = {
      {"context", "prompt builder: definition recall on real code at 1,024/2,048 tokens, build time", run_bench_context},
      {"decode", "prefill/decode tokens/s and weight GB/s against measured memory bandwidth", run_bench_decode},
      {"expert-cache", "expert-cache hit rate and disk bytes/token per policy, replaying a routing trace",
       run_bench_expert_cache},
      {"fim-typing", "time to first token while typing, with and without the prefix cache", run_bench_fim_typing},
      {"matmul", "one weight matrix (FP8/BF16/F16/F32): GB/s against measured memory bandwidth", run_bench_matmul},
      {"tokenize", "tokenizer throughput (MB/s) over a corpus of source files", run_bench_tokenize},
  };
  return commands;
}

int run_bench(args_view args) {
  if (args.empty()) {
    print_bench_help(stderr);
    return exit_usage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_bench_help(stdout);
    return exit_ok;
  }
  for (const bench_command& b : all_bench_commands()) {
    if (b.name == args[0]) return b.run(args.subspan(1));
  }
  fmt::print(stderr, "qcoder: unknown benchmark '{}' (run `qcoder bench --help` for the list)\n", args[0]);
  return exit_usage;
}

}  // namespace qcoder::cli
