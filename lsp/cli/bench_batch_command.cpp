// `qcoder bench batch`: what decoding several sequences together gives (engine::generation_batch, used by
// `refactor --jobs`). For each batch size, that many greedy generations from different source-code prompts
// are prefilled, then decoded together; the figure is the aggregate decode tokens/s (all sequences' new
// tokens over the decode time) and its ratio to one sequence alone. Every sequence's output is checked
// against the same prompt decoded alone.
#include <algorithm>
#include <chrono>
#include <map>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "lsp/cli/bench_command.h"
#include "lsp/cli/model_flags.h"

namespace qcoder::cli {
namespace {

struct batch_figures {
  int sequences = 0;
  double tokens_per_second = 0;   // all sequences together
  double seconds_per_step = 0;    // one forward pass over the batch
  std::int64_t tokens = 0;
};

result<std::vector<int>> parse_sizes(const std::string& text) {
  std::vector<int> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string piece = text.substr(at, comma - at);
    char* end = nullptr;
    const long v = std::strtol(piece.c_str(), &end, 10);
    if (piece.empty() || end == nullptr || *end != '\0' || v < 1 || v > 64) {
      return fail(errc::invalid_argument, "--sizes {}: expected numbers in 1..64 separated by commas", text);
    }
    out.push_back(static_cast<int>(v));
    at = comma + 1;
  }
  return out;
}

}  // namespace

int run_bench_batch(args_view args) {
  model_flags flags;
  int tokens = 32;
  int prompt_tokens = 256;
  std::string sizes_text = "1,2,4,8";
  bool as_json = false;
  arg_parser parser("bench batch [--model DIR] [--sizes 1,2,4,8] [--tokens N] [--prompt-tokens N] [--json]",
                    "Aggregate greedy decode tokens/s with 1, 2, 4, 8 sequences decoded together.");
  flags.add_to(parser);
  parser.option("sizes", "LIST", "batch sizes to measure, comma-separated (1 is always measured first)", &sizes_text)
      .option("tokens", "N", "tokens generated per sequence", &tokens)
      .option("prompt-tokens", "N", "prompt length of each sequence (generated Python source)", &prompt_tokens)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (tokens < 2 || prompt_tokens < 8) return report_failure(fail(errc::invalid_argument, "--tokens ≥ 2 and --prompt-tokens ≥ 8"));
  result<std::vector<int>> sizes = parse_sizes(sizes_text);
  if (!sizes) return report_failure(sizes.err());
  sizes->erase(std::remove(sizes->begin(), sizes->end(), 1), sizes->end());
  sizes->insert(sizes->begin(), 1);
  result<std::unique_ptr<engine::qwen3_next>> loaded = flags.load();
  if (!loaded) return report_failure(loaded.err());
  engine::qwen3_next& model = **loaded;
  result<engine::tokenizer> tok = engine::tokenizer::load_model_dir(model.weights_file().dir());
  if (!tok) return report_failure(tok.err());
  const int most = *std::max_element(sizes->begin(), sizes->end());
  // Different prompts: consecutive windows of one long generated source.
  const std::vector<std::int32_t> source = tok->encode_text(synthetic_python_source(*tok, prompt_tokens * (most + 1)));
  std::vector<std::vector<std::int32_t>> prompts;
  for (int i = 0; i < most; ++i) {
    const std::size_t from = std::min(source.size() - 1, static_cast<std::size_t>(i) * static_cast<std::size_t>(prompt_tokens) / 2);
    const std::size_t to = std::min(source.size(), from + static_cast<std::size_t>(prompt_tokens));
    prompts.emplace_back(source.begin() + static_cast<std::ptrdiff_t>(from), source.begin() + static_cast<std::ptrdiff_t>(to));
  }
  const auto request = [&](int i) {
    engine::generation_request r;
    r.prompt = prompts[static_cast<std::size_t>(i)];
    r.max_tokens = tokens;
    r.sampling.greedy = true;
    return r;
  };

  engine::generation_batch batch(model);
  std::map<int, std::vector<std::int32_t>> alone;  // outputs of the size-1 runs, by prompt
  const auto measure = [&](int n) -> result<batch_figures> {
    for (int i = 0; i < n; ++i) QCODER_CHECK(batch.add(request(i)));
    batch_figures f;
    f.sequences = n;
    int steps = 0;
    std::vector<engine::generation_batch::finished> done;
    const auto t0 = std::chrono::steady_clock::now();
    while (batch.size() > 0) {
      QCODER_TRY(std::vector<engine::generation_batch::finished> finished, batch.step());
      ++steps;
      for (auto& x : finished) done.push_back(std::move(x));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& d : done) f.tokens += static_cast<std::int64_t>(d.result.tokens.size());
    f.tokens_per_second = seconds > 0 ? static_cast<double>(f.tokens) / seconds : 0.0;
    f.seconds_per_step = steps > 0 ? seconds / steps : 0.0;
    // Tickets count up from 0 across runs: ticket - first is the prompt index.
    std::size_t first = done.empty() ? 0 : done.front().ticket;
    for (const auto& d : done) first = std::min(first, d.ticket);
    for (const auto& d : done) {
      const int prompt = static_cast<int>(d.ticket - first);
      if (n == 1) continue;
      if (!alone.count(prompt)) {
        // The prompt was not measured alone yet: decode it alone now (not timed).
        engine::generation_batch single(model);
        QCODER_CHECK(single.add(request(prompt)));
        while (single.size() > 0) {
          QCODER_TRY(std::vector<engine::generation_batch::finished> s, single.step());
          for (auto& x : s) alone[prompt] = x.result.tokens;
        }
      }
      if (alone[prompt] != d.result.tokens) {
        return fail(errc::internal, "sequence {} of a batch of {} differs from the same prompt decoded alone", prompt, n);
      }
    }
    if (n == 1 && !done.empty()) alone[0] = done.front().result.tokens;
    return f;
  };
  if (result<batch_figures> warm = measure(1); !warm) return report_failure(warm.err());  // warm-up, not counted
  std::vector<batch_figures> rows;
  for (const int n : *sizes) {
    result<batch_figures> f = measure(n);
    if (!f) return report_failure(f.err());
    rows.push_back(*f);
  }
  const double single = rows.front().tokens_per_second;
  if (as_json) {
    nlohmann::json out = {{"tokens", tokens}, {"prompt_tokens", prompt_tokens}, {"sizes", nlohmann::json::array()}};
    for (const batch_figures& f : rows) {
      out["sizes"].push_back({{"sequences", f.sequences}, {"tokens_per_second", f.tokens_per_second},
                              {"seconds_per_step", f.seconds_per_step}, {"speedup", single > 0 ? f.tokens_per_second / single : 0.0}});
    }
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("batch            {} tokens per sequence after {}-token prompts; outputs checked against each alone\n", tokens,
             prompt_tokens);
  fmt::print("{:<10} {:>14} {:>12} {:>9}\n", "sequences", "tok/s (all)", "ms/step", "vs one");
  for (const batch_figures& f : rows) {
    fmt::print("{:<10} {:>14.2f} {:>12.1f} {:>8.2f}x\n", f.sequences, f.tokens_per_second, f.seconds_per_step * 1e3,
               single > 0 ? f.tokens_per_second / single : 0.0);
  }
  return 0;
}

}  // namespace qcoder::cli
