// `qcoder generate`: continue a prompt with greedy decoding or sampling. With --ids the new ids are printed,
// comma-separated; with --prompt the prompt is tokenized with the model's tokenizer and the continuation is
// streamed as text as it is generated. The speed goes to stderr.
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "engine/generate.h"
#include "engine/tokenizer/stream_decoder.h"
#include "engine/tokenizer/tokenizer.h"
#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"

namespace qcoder::cli {

int run_generate(args_view args) {
  model_flags flags;
  prefix_cache_flags cache_flags;
  std::string ids_text, prompt_text;
  std::vector<std::string> stops;
  bool special = false;
  int max_tokens = 64;
  bool greedy = false;
  bool no_eos = false;
  engine::sampling_params sampling;
  double temperature = sampling.temperature, top_p = sampling.top_p, min_p = sampling.min_p,
         repetition_penalty = sampling.repetition_penalty;
  int top_k = sampling.top_k;
  std::uint64_t seed = 0;
  arg_parser parser("generate --model DIR (--ids IDS | --prompt TEXT) [--max-tokens N] [--greedy | sampling flags]",
                    "Continue the prompt. With --ids, print the new token ids, comma-separated, on stdout; with\n"
                    "--prompt, stream the continuation as text. Stops at an end-of-sequence id of\n"
                    "generation_config.json (unless --no-eos), at a --stop string, or after N tokens.");
  flags.add_to(parser);
  cache_flags.add_to(parser);
  parser.option("ids", "IDS", "prompt token ids, comma-separated", &ids_text)
      .option("prompt", "TEXT", "prompt text, tokenized with the model's tokenizer.json", &prompt_text)
      .flag("special", "with --prompt: recognise control tokens such as <|fim_prefix|> in TEXT", &special)
      .repeated("stop", "STRING", "stop when the output contains STRING (not printed)", &stops)
      .option("max-tokens", "N", "most new tokens", &max_tokens)
      .flag("greedy", "always take the most likely token", &greedy)
      .option("temperature", "T", "sampling temperature", &temperature)
      .option("top-k", "K", "sample among the K most likely tokens (0: all)", &top_k)
      .option("top-p", "P", "nucleus sampling mass (1: off)", &top_p)
      .option("min-p", "P", "drop tokens below P times the best probability (0: off)", &min_p)
      .option("repetition-penalty", "R", "penalise tokens already present (1: off)", &repetition_penalty)
      .option("seed", "S", "random seed for sampling", &seed)
      .flag("no-eos", "do not stop at end-of-sequence tokens", &no_eos);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  if (ids_text.empty() == prompt_text.empty()) {
    fmt::print(stderr, "qcoder: give exactly one of --ids and --prompt (see --help)\n");
    return exit_usage;
  }
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
  result<opened_prefix_cache> cache = opened_prefix_cache::open(cache_flags, m);
  if (!cache) return report_failure(cache.err());

  // Text mode needs the model's tokenizer; id mode only needs it for --stop.
  std::optional<engine::tokenizer> tok;
  if (!prompt_text.empty() || !stops.empty()) {
    result<engine::tokenizer> loaded = engine::tokenizer::load_model_dir(m.weights_file().dir());
    if (!loaded) return report_failure(loaded.err());
    tok.emplace(std::move(loaded).value());
  }
  result<std::vector<std::int32_t>> ids =
      prompt_text.empty() ? parse_ids(ids_text) : result<std::vector<std::int32_t>>(tok->encode(prompt_text, special));
  if (!ids) return report_failure(ids.err());
  if (ids->empty()) return report_failure(fail(errc::invalid_argument, "the prompt encodes to no tokens"));

  engine::generation_request request;
  request.prompt = *ids;
  request.max_tokens = max_tokens;
  request.sampling = sampling;
  request.stop_strings = stops;
  request.cache = cache->get();
  if (tok) request.token_bytes = [&tok](std::int32_t id) { return std::string(tok->token_bytes(id)); };
  // Text mode streams whole characters as they complete. Text that could still become the start of a stop
  // string (the last longest-1 bytes) is held back until it is clear that it does not; a complete match
  // can only begin in held-back text, since printed text ends longest-1 bytes before the newest byte.
  std::optional<engine::stream_decoder> stream;
  std::string pending_text;
  bool stopped = false;
  std::size_t hold = 0;
  for (const std::string& stop : stops) hold = std::max(hold, stop.empty() ? 0 : stop.size() - 1);
  if (!prompt_text.empty()) {
    stream.emplace(*tok);
    request.on_token = [&](std::int32_t id) {
      if (stopped || !stream->push(id, pending_text)) return true;
      std::size_t match = std::string::npos;
      for (const std::string& stop : stops) {
        if (!stop.empty()) match = std::min(match, pending_text.find(stop));
      }
      const std::size_t cut = match != std::string::npos ? match
                              : pending_text.size() > hold ? pending_text.size() - hold
                                                           : 0;
      fmt::print("{}", std::string_view(pending_text).substr(0, cut));
      std::fflush(stdout);
      pending_text.erase(0, cut);
      if (match != std::string::npos) {
        stopped = true;
        pending_text.clear();
      }
      return true;
    };
  }
  if (!no_eos) {
    for (std::int64_t id : m.config().eos_token_ids) request.stop_ids.push_back(static_cast<std::int32_t>(id));
  }
  engine::sequence_state state = m.new_state(static_cast<std::int64_t>(ids->size()) + max_tokens + 1);
  result<engine::generation_result> out = engine::generate(m, state, request);
  if (!out) return report_failure(out.err());

  if (stream) {
    if (!stopped) stream->finish(pending_text);
    fmt::print("{}\n", pending_text);
  } else {
    fmt::print("{}\n", fmt::join(out->tokens, ","));
  }
  std::fflush(stdout);
  const double decode_rate =
      out->decode_seconds > 0 ? static_cast<double>(out->tokens.size()) / out->decode_seconds : 0.0;
  spdlog::info("{} prompt tokens ({} from the prefix cache) in {:.3f} s, {} new tokens at {:.2f} tok/s, finish: {}",
               ids->size(), out->prompt_tokens_restored, out->prefill_seconds, out->tokens.size(), decode_rate,
               engine::to_string(out->reason));
  if (result<void> saved = cache->save(); !saved) return report_failure(saved.err());
  return exit_ok;
}

}  // namespace qcoder::cli
