// `qcoder bench`: dispatches to a sub-benchmark by name. To add one, write bench_<what>_command.cpp,
// declare it in bench_command.h and add a row to the table below (alphabetical).
#include "lsp/cli/bench_command.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

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
      {"gpu-model", "predicted decode tokens/s per GPU (time model: kernel bytes, expert cache replay, PCIe copies)",
       run_bench_gpu_model},
      {"lsp", "the language server's own latency per keystroke, excluding the model", run_bench_lsp},
      {"matmul", "one weight matrix (FP8/BF16/F16/F32): GB/s against measured memory bandwidth", run_bench_matmul},
      {"speculate", "speculative decoding by prompt lookup: cost of refused drafts, gain of accepted ones", run_bench_speculate},
      {"batch", "sequences decoded together (refactor --jobs): aggregate tokens/s against one alone", run_bench_batch},
      {"serve", "concurrent streaming clients against an OpenAI-compatible server: requests/s, tokens/s, TTFT, inter-token latency", run_bench_serve},
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

result<std::string> typing_source(const std::string& file, const engine::tokenizer& tok, std::int64_t target_tokens) {
  if (file.empty()) return synthetic_python_source(tok, target_tokens);
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(errc::not_found, "--file {}: cannot read it", file);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string synthetic_python_source(const engine::tokenizer& tok, std::int64_t target_tokens) {
  std::string text = "\"\"\"Inventory bookkeeping: stock levels, reorders and reports.\"\"\"\n\nimport math\nfrom dataclasses import dataclass\n\n";
  const char* nouns[] = {"item", "order", "supplier", "invoice", "shelf", "batch", "report", "price"};
  for (int i = 0; static_cast<std::int64_t>(tok.encode(text, false).size()) < target_tokens; ++i) {
    const std::string noun = nouns[i % 8];
    text += fmt::format(
        "\n@dataclass\nclass {0}_record_{1}:\n    \"\"\"One {0} as stored in ledger {1}.\"\"\"\n\n    name: str\n"
        "    quantity: int = 0\n    unit_cost: float = 0.0\n\n    def total_value(self) -> float:\n"
        "        return self.quantity * self.unit_cost\n\n    def needs_reorder(self, threshold: int = {2}) -> bool:\n"
        "        return self.quantity < threshold\n\n\ndef summarize_{0}s_{1}(records):\n"
        "    \"\"\"Total value and count of the {0}s that need a reorder.\"\"\"\n    total = 0.0\n    count = 0\n"
        "    for record in records:\n        if record.needs_reorder():\n            count += 1\n"
        "        total += record.total_value()\n    return math.floor(total * 100) / 100, count\n",
        noun, i, 5 + i % 7);
  }
  return text;
}

}  // namespace qcoder::cli
