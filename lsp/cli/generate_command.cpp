// `qcoder generate`: continue a prompt (token ids) with greedy decoding or sampling; prints the new ids,
// comma-separated, on stdout, and the speed on stderr.
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "engine/generate.h"
#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"

namespace qcoder::cli {

int run_generate(args_view args) {
  model_flags flags;
  std::string ids_text;
  int max_tokens = 64;
  bool greedy = false;
  bool no_eos = false;
  engine::sampling_params sampling;
  double temperature = sampling.temperature, top_p = sampling.top_p, min_p = sampling.min_p,
         repetition_penalty = sampling.repetition_penalty;
  int top_k = sampling.top_k;
  std::uint64_t seed = 0;
  arg_parser parser("generate --model DIR --ids IDS [--max-tokens N] [--greedy | sampling flags]",
                    "Continue the prompt and print the new token ids, comma-separated, on stdout.\n"
                    "Stops at an end-of-sequence id of generation_config.json (unless --no-eos) or after N tokens.");
  flags.add_to(parser);
  parser.option("ids", "IDS", "prompt token ids, comma-separated", &ids_text)
      .option("max-tokens", "N", "most new tokens", &max_tokens)
      .flag("greedy", "always take the most likely token", &greedy)
      .option("temperature", "T", "sampling temperature", &temperature)
      .option("top-k", "K", "sample among the K most likely tokens (0: all)", &top_k)
      .option("top-p", "P", "nucleus sampling mass (1: off)", &top_p)
      .option("min-p", "P", "drop tokens below P times the best probability (0: off)", &min_p)
      .option("repetition-penalty", "R", "penalise tokens already present (1: off)", &repetition_penalty)
      .option("seed", "S", "random seed for sampling", &seed)
      .flag("no-eos", "do not stop at end-of-sequence tokens", &no_eos)
      .required("ids");
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  result<std::vector<std::int32_t>> ids = parse_ids(ids_text);
  if (!ids) return report_failure(ids.err());
  if (max_tokens < 0) return report_failure(fail(errc::invalid_argument, "--max-tokens must be ≥ 0"));
  sampling.greedy = greedy;
  sampling.temperature = static_cast<float>(temperature);
  sampling.top_k = top_k;
  sampling.top_p = static_cast<float>(top_p);
  sampling.min_p = static_cast<float>(min_p);
  sampling.repetition_penalty = static_cast<float>(repetition_penalty);
  sampling.seed = seed;
  if (result<void> valid = sampling.validate(); !valid) return report_failure(valid.err());

  result<std::unique_ptr<engine::qwen3_next>> model = flags.load();
  if (!model) return report_failure(model.err());
  engine::qwen3_next& m = **model;

  engine::generation_request request;
  request.prompt = *ids;
  request.max_tokens = max_tokens;
  request.sampling = sampling;
  if (!no_eos) {
    for (std::int64_t id : m.config().eos_token_ids) request.stop_ids.push_back(static_cast<std::int32_t>(id));
  }
  engine::sequence_state state = m.new_state(static_cast<std::int64_t>(ids->size()) + max_tokens + 1);
  result<engine::generation_result> out = engine::generate(m, state, request);
  if (!out) return report_failure(out.err());

  fmt::print("{}\n", fmt::join(out->tokens, ","));
  std::fflush(stdout);
  const double decode_rate =
      out->decode_seconds > 0 ? static_cast<double>(out->tokens.size()) / out->decode_seconds : 0.0;
  spdlog::info("{} prompt tokens in {:.3f} s ({:.1f} tok/s), {} new tokens at {:.2f} tok/s, finish: {}", ids->size(),
               out->prefill_seconds, static_cast<double>(ids->size()) / std::max(1e-9, out->prefill_seconds),
               out->tokens.size(), decode_rate, engine::to_string(out->reason));
  return exit_ok;
}

}  // namespace qcoder::cli
