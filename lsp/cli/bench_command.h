// `qcoder bench <what>`: the performance modes, one sub-benchmark per file (bench_<what>_command.cpp),
// listed in the table in bench_command.cpp. Each prints a readable table, or with --json one JSON object
// with the same figures.
// Not thread-safe; used on the main thread.
#pragma once

#include <span>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "lsp/cli/command.h"

namespace qcoder::cli {

struct bench_command {
  std::string_view name;
  std::string_view summary;
  int (*run)(args_view args);  // args: what follows `bench <name>`
};

// The p-quantile (0..1) of `values`, interpolated between the nearest ranks; 0 for none.
double percentile(std::vector<double> values, double p);

// A deterministic Python module (dataclasses and functions) of about `target_tokens` tokens, for the
// typing benchmarks when no --file is given.
std::string synthetic_python_source(const engine::tokenizer& tok, std::int64_t target_tokens);
// The text the typing benchmarks type into: `file`'s content, or synthetic_python_source when it is empty.
result<std::string> typing_source(const std::string& file, const engine::tokenizer& tok, std::int64_t target_tokens);

// Every sub-benchmark, in the order `qcoder bench --help` lists them.
std::span<const bench_command> all_bench_commands();

// The sub-benchmarks.
int run_bench_context(args_view args);
int run_bench_decode(args_view args);
int run_bench_matmul(args_view args);
int run_bench_expert_cache(args_view args);
int run_bench_fim_typing(args_view args);
int run_bench_gpu_model(args_view args);
int run_bench_lsp(args_view args);
int run_bench_speculate(args_view args);
int run_bench_batch(args_view args);
int run_bench_serve(args_view args);
int run_bench_tokenize(args_view args);

}  // namespace qcoder::cli
