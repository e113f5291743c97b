// `qcoder bench fim-typing`: what the prefix cache buys an editor. A person types N characters in the
// middle of a source file; every keystroke sends a fill-in-the-middle request, then the cursor jumps to an
// earlier line and one more character is typed. Each request is timed to its first token, served from the
// prefix cache (warm), and a few of them again from nothing (cold).
//
// The prompt is Qwen's FIM format with the cursor's line moved into the middle part:
//   <|fim_prefix|> text before the cursor's line <|fim_suffix|> text after the cursor <|fim_middle|> the
//   cursor's line up to the cursor
// so the prefix and suffix stay byte-identical while a line is typed and every keystroke only appends to
// the prompt; a snapshot at the start of the middle part is where the next keystroke resumes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "lsp/cli/bench_command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"

namespace qcoder::cli {
namespace {
using clock_type = std::chrono::steady_clock;

struct fim_prompt {
  std::vector<std::int32_t> tokens;
  std::int64_t prefix_end = 0;    // tokens through the text before the cursor's line (a snapshot position)
  std::int64_t middle_start = 0;  // tokens before the cursor's line text (a snapshot position)
};

// Text [0, line_start) is the prefix, [cursor, end) the suffix, [line_start, cursor) the middle so far.
fim_prompt build_prompt(const engine::tokenizer& tok, const std::string& text, std::size_t line_start,
                        std::size_t cursor, const std::int32_t specials[3]) {
  fim_prompt p;
  auto append = [&](std::string_view s) {
    const std::vector<std::int32_t> ids = tok.encode(s, false);
    p.tokens.insert(p.tokens.end(), ids.begin(), ids.end());
  };
  p.tokens.push_back(specials[0]);
  append(std::string_view(text).substr(0, line_start));
  p.prefix_end = static_cast<std::int64_t>(p.tokens.size());
  p.tokens.push_back(specials[1]);
  append(std::string_view(text).substr(cursor));
  p.tokens.push_back(specials[2]);
  p.middle_start = static_cast<std::int64_t>(p.tokens.size());
  append(std::string_view(text).substr(line_start, cursor - line_start));
  return p;
}

struct request_timing {
  double ttft = 0.0;  // seconds to the first new token
  std::int64_t prompt_tokens = 0;
  std::int64_t recomputed = 0;
};

result<request_timing> run_request(engine::qwen3_next& model, engine::prefix_cache* cache, const fim_prompt& prompt,
                                   int max_tokens) {
  engine::generation_request request;
  request.prompt = prompt.tokens;
  request.max_tokens = max_tokens;
  request.cache = cache;
  request.plan.snapshot_at = {prompt.prefix_end, prompt.middle_start};
  const auto t0 = clock_type::now();
  double first = -1.0;
  request.on_token = [&](std::int32_t) {
    if (first < 0) first = std::chrono::duration<double>(clock_type::now() - t0).count();
    return true;
  };
  engine::sequence_state state = model.new_state(static_cast<std::int64_t>(prompt.tokens.size()) + max_tokens + 1);
  QCODER_TRY(const engine::generation_result out, engine::generate(model, state, request));
  request_timing t;
  t.ttft = first >= 0 ? first : out.prefill_seconds;
  t.prompt_tokens = static_cast<std::int64_t>(prompt.tokens.size());
  t.recomputed = t.prompt_tokens - out.prompt_tokens_restored;
  return t;
}

}  // namespace

int run_bench_fim_typing(args_view args) {
  model_flags flags;
  prefix_cache_flags cache_flags;
  std::string file;
  int file_tokens = 3000;
  int chars = 40;
  int cold_runs = 3;
  int max_tokens = 4;
  bool json = false;
  arg_parser parser("bench fim-typing --model DIR [--file F] [--chars N] [--cold-runs K] [--json]",
                    "Type N characters in the middle of a file, one fill-in-the-middle request per keystroke, then\n"
                    "jump to an earlier line and type one more; print time to first token (p50/p95) served from\n"
                    "the prefix cache (warm) and from nothing (cold, K of the requests), and the prompt tokens each\n"
                    "request recomputed.");
  flags.add_to(parser);
  cache_flags.add_to(parser);
  parser.option("file", "F", "source file to type into; default: a generated Python module", &file)
      .option("file-tokens", "N", "size of the generated module in tokens", &file_tokens)
      .option("chars", "N", "characters typed in the middle of the file", &chars)
      .option("cold-runs", "K", "requests also timed without the cache (each is a full prefill)", &cold_runs)
      .option("max-tokens", "N", "tokens generated per request", &max_tokens)
      .flag("json", "print one JSON object instead of the table", &json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (chars < 1 || cold_runs < 0 || max_tokens < 1) {
    return report_failure(fail(errc::invalid_argument, "--chars and --max-tokens must be ≥ 1, --cold-runs ≥ 0"));
  }
  if (cache_flags.size == "none") return report_failure(fail(errc::invalid_argument, "this benchmark needs a prefix cache"));

  result<std::unique_ptr<engine::qwen3_next>> loaded = flags.load();
  if (!loaded) return report_failure(loaded.err());
  engine::qwen3_next& model = **loaded;
  result<engine::tokenizer> tok = engine::tokenizer::load_model_dir(model.weights_file().dir());
  if (!tok) return report_failure(tok.err());
  std::int32_t specials[3];
  const char* names[3] = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"};
  for (int i = 0; i < 3; ++i) {
    result<std::int32_t> id = tok->require_token(names[i]);
    if (!id) return report_failure(id.err());
    specials[i] = id.value();
  }
  result<std::string> source = typing_source(file, *tok, file_tokens);
  if (!source) return report_failure(source.err());
  std::string text = std::move(*source);
  result<opened_prefix_cache> cache = opened_prefix_cache::open(cache_flags, model);
  if (!cache) return report_failure(cache.err());

  // The cursor: a new line opened in the middle of the file, where the typing happens.
  std::string typed = "total = sum(r.total_value() for r in rs)  # recompute after the reorder pass";
  while (typed.size() < static_cast<std::size_t>(chars)) typed += "; " + typed;
  std::size_t cursor = text.find('\n', text.size() / 2);
  cursor = cursor == std::string::npos ? text.size() : cursor + 1;
  text.insert(cursor, "    \n");
  cursor += 4;
  const std::size_t line_start = cursor - 4;

  std::vector<fim_prompt> prompts;
  for (int i = 0; i <= chars; ++i) {
    std::string doc = text;
    doc.insert(cursor, typed.substr(0, static_cast<std::size_t>(i)));
    prompts.push_back(build_prompt(*tok, doc, line_start, cursor + static_cast<std::size_t>(i), specials));
  }
  {  // the jump: an earlier line (a quarter into the file), one character typed at its end
    std::string doc = text;
    doc.insert(cursor, typed.substr(0, static_cast<std::size_t>(chars)));
    std::size_t jump = doc.find('\n', doc.size() / 4);
    jump = jump == std::string::npos ? doc.size() : jump;
    const std::size_t jump_line = doc.rfind('\n', jump == 0 ? 0 : jump - 1);
    doc.insert(jump, "x");
    prompts.push_back(build_prompt(*tok, doc, jump_line == std::string::npos ? 0 : jump_line + 1, jump + 1, specials));
  }

  // prompts[0] opens the file (primes the cache); 1..chars are keystrokes; the last is the jump.
  std::vector<double> warm, cold;
  std::vector<double> recomputed;
  double jump_ttft = 0.0;
  std::int64_t jump_recomputed = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    result<request_timing> t = run_request(model, cache->get(), prompts[i], max_tokens);
    if (!t) return report_failure(t.err());
    if (i == 0) continue;
    warm.push_back(t->ttft);
    recomputed.push_back(static_cast<double>(t->recomputed));
    if (i + 1 == prompts.size()) {
      jump_ttft = t->ttft;
      jump_recomputed = t->recomputed;
    }
  }
  for (int k = 0; k < cold_runs; ++k) {
    const std::size_t i = 1 + static_cast<std::size_t>(k) * static_cast<std::size_t>(chars) / static_cast<std::size_t>(std::max(1, cold_runs));
    result<request_timing> t = run_request(model, nullptr, prompts[std::min(i, prompts.size() - 1)], max_tokens);
    if (!t) return report_failure(t.err());
    cold.push_back(t->ttft);
  }
  if (result<void> saved = cache->save(); !saved) return report_failure(saved.err());

  const engine::prefix_cache& pc = *cache->get();
  const double warm_p50 = percentile(warm, 0.5), cold_p50 = percentile(cold, 0.5);
  const std::int64_t prompt_tokens = static_cast<std::int64_t>(prompts[1].tokens.size());
  if (json) {
    nlohmann::json j = {{"prompt_tokens", prompt_tokens},
                        {"keystrokes", chars},
                        {"warm_ttft_p50_ms", warm_p50 * 1e3},
                        {"warm_ttft_p95_ms", percentile(warm, 0.95) * 1e3},
                        {"cold_ttft_p50_ms", cold_p50 * 1e3},
                        {"cold_ttft_p95_ms", percentile(cold, 0.95) * 1e3},
                        {"cold_runs", cold_runs},
                        {"warm_over_cold_p50", cold_p50 > 0 ? warm_p50 / cold_p50 : 0.0},
                        {"recomputed_tokens_p50", percentile(recomputed, 0.5)},
                        {"recomputed_tokens_max", percentile(recomputed, 1.0)},
                        {"jump_ttft_ms", jump_ttft * 1e3},
                        {"jump_recomputed_tokens", jump_recomputed},
                        {"cache_bytes", pc.bytes()},
                        {"cache_budget", pc.budget()},
                        {"snapshots", pc.snapshot_count()}};
    fmt::print("{}\n", j.dump());
    return exit_ok;
  }
  fmt::print("fim-typing       {} keystrokes + 1 jump, prompt ~{} tokens, {} threads\n", chars, prompt_tokens,
             model.threads());
  fmt::print("cold TTFT        p50 {:9.1f} ms   p95 {:9.1f} ms   ({} requests without the cache)\n", cold_p50 * 1e3,
             percentile(cold, 0.95) * 1e3, cold.size());
  fmt::print("warm TTFT        p50 {:9.1f} ms   p95 {:9.1f} ms   ({} requests)\n", warm_p50 * 1e3,
             percentile(warm, 0.95) * 1e3, warm.size());
  if (cold_p50 > 0) fmt::print("warm / cold      {:9.1f} %        (p50)\n", 100.0 * warm_p50 / cold_p50);
  fmt::print("recomputed       p50 {:6.0f} tokens, max {:6.0f} tokens per request\n", percentile(recomputed, 0.5),
             percentile(recomputed, 1.0));
  fmt::print("jump             {:9.1f} ms TTFT, {} tokens recomputed\n", jump_ttft * 1e3, jump_recomputed);
  fmt::print("prefix cache     {:.1f} of {:.1f} MiB, {} snapshots, {} hits of {} lookups\n",
             static_cast<double>(pc.bytes()) / (1 << 20), static_cast<double>(pc.budget()) / (1 << 20),
             pc.snapshot_count(), pc.stats().hits, pc.stats().lookups);
  return exit_ok;
}

}  // namespace qcoder::cli
