// `qcoder bench speculate`: what speculative decoding by prompt lookup costs and gives. The same greedy
// generation from a source-code prompt runs three ways:
//   plain      one token per forward pass
//   refused    drafting on, from a source built so that a draft is found at every step and its first token
//              is always wrong (pairs of the answer's tokens, each followed by a wrong one): the worst case,
//              drafts checked and taken back every time the back-off allows (the brief's bound: ~5%)
//   accepted   drafting on, from a source holding the answer (the prompt and the plain run's output): what
//              a rewrite that copies its input gains
// Each is run --runs times; decode tokens/s is the median. The outputs must be identical (checked).
#include <algorithm>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "lsp/cli/bench_command.h"
#include "lsp/cli/model_flags.h"

namespace qcoder::cli {
namespace {

struct mode_figures {
  double tokens_per_second = 0;
  std::int64_t forward_passes = 0;
  std::int64_t drafted = 0;
  std::int64_t accepted = 0;
  std::vector<std::int32_t> tokens;
};

}  // namespace

int run_bench_speculate(args_view args) {
  model_flags flags;
  int tokens = 64;
  int prompt_tokens = 512;
  int runs = 3;
  bool as_json = false;
  arg_parser parser("bench speculate [--model DIR] [--tokens N] [--prompt-tokens N] [--runs R] [--json]",
                    "Greedy decode tokens/s plain, with refused drafts and with accepted drafts (prompt lookup).");
  flags.add_to(parser);
  parser.option("tokens", "N", "tokens generated per run", &tokens)
      .option("prompt-tokens", "N", "prompt length (generated Python source)", &prompt_tokens)
      .option("runs", "R", "runs per mode (the median is reported)", &runs)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (tokens < 2 || prompt_tokens < 8 || runs < 1) {
    return report_failure(fail(errc::invalid_argument, "--tokens ≥ 2, --prompt-tokens ≥ 8 and --runs ≥ 1"));
  }
  result<std::unique_ptr<engine::qwen3_next>> loaded = flags.load();
  if (!loaded) return report_failure(loaded.err());
  engine::qwen3_next& model = **loaded;
  result<engine::tokenizer> tok = engine::tokenizer::load_model_dir(model.weights_file().dir());
  if (!tok) return report_failure(tok.err());
  std::vector<std::int32_t> prompt = tok->encode_text(synthetic_python_source(*tok, prompt_tokens));
  if (prompt.size() > static_cast<std::size_t>(prompt_tokens)) prompt.resize(static_cast<std::size_t>(prompt_tokens));

  engine::sequence_state state = model.new_state(static_cast<std::int64_t>(prompt.size()) + tokens + 2);
  const auto measure = [&](bool speculate, const std::vector<std::int32_t>& lookup) -> result<mode_figures> {
    std::vector<double> rates;
    mode_figures f;
    for (int r = 0; r < runs + 1; ++r) {  // the first run warms up and is not counted
      engine::generation_request request;
      request.prompt = prompt;
      request.max_tokens = tokens;
      request.sampling.greedy = true;
      request.speculate = speculate;
      request.lookup = lookup;
      state.reset();
      QCODER_TRY(engine::generation_result out, engine::generate(model, state, request));
      if (r == 0) continue;
      rates.push_back(out.decode_seconds > 0 ? static_cast<double>(out.tokens.size()) / out.decode_seconds : 0.0);
      f.forward_passes = out.forward_passes;
      f.drafted = out.drafted;
      f.accepted = out.accepted;
      f.tokens = out.tokens;
    }
    f.tokens_per_second = percentile(rates, 0.5);
    return f;
  };
  result<mode_figures> plain = measure(false, {});
  if (!plain) return report_failure(plain.err());
  std::vector<std::int32_t> wrong;
  const std::vector<std::int32_t>& o = plain->tokens;
  for (std::size_t i = 0; i + 2 < o.size(); ++i) {
    wrong.insert(wrong.end(), {o[i], o[i + 1], static_cast<std::int32_t>((o[i + 2] + 1) % model.config().vocab_size)});
  }
  result<mode_figures> refused = measure(true, wrong);
  if (!refused) return report_failure(refused.err());
  std::vector<std::int32_t> answer = prompt;
  answer.insert(answer.end(), plain->tokens.begin(), plain->tokens.end());
  result<mode_figures> accepted = measure(true, answer);
  if (!accepted) return report_failure(accepted.err());
  if (refused->tokens != plain->tokens || accepted->tokens != plain->tokens) {
    return report_failure(fail(errc::internal, "speculative decoding changed the output"));
  }
  const auto row = [](const mode_figures& f) {
    return nlohmann::json{{"tokens_per_second", f.tokens_per_second}, {"forward_passes", f.forward_passes},
                          {"drafted", f.drafted}, {"accepted", f.accepted}};
  };
  const double refused_cost = plain->tokens_per_second / refused->tokens_per_second - 1.0;
  const double accepted_gain = accepted->tokens_per_second / plain->tokens_per_second;
  if (as_json) {
    fmt::print("{}\n", nlohmann::json{{"tokens", tokens},
                                      {"prompt_tokens", prompt.size()},
                                      {"plain", row(*plain)},
                                      {"refused", row(*refused)},
                                      {"accepted", row(*accepted)},
                                      {"refused_cost", refused_cost},
                                      {"accepted_speedup", accepted_gain}}
                           .dump());
    return 0;
  }
  fmt::print("speculate        {} tokens after a {}-token prompt, median of {} runs, identical outputs\n", tokens,
             prompt.size(), runs);
  fmt::print("{:<10} {:>10} {:>8} {:>9} {:>9}\n", "mode", "tok/s", "passes", "drafted", "accepted");
  for (const auto& [name, f] : {std::pair{"plain", &*plain}, {"refused", &*refused}, {"accepted", &*accepted}}) {
    fmt::print("{:<10} {:>10.2f} {:>8} {:>9} {:>9}\n", name, f->tokens_per_second, f->forward_passes, f->drafted, f->accepted);
  }
  fmt::print("refused drafts cost {:+.1f}% against plain; accepted drafts run {:.2f}x plain\n", refused_cost * 100.0,
             accepted_gain);
  return 0;
}

}  // namespace qcoder::cli
