// `qcoder bench expert-cache`: replays a routing trace (a file, or the calibrated synthetic one) through
// every expert-cache policy, with and without prefetch of the predicted experts, at one per-layer slot
// budget, and reports hit rate, misses per token and bytes read from disk per token.
//
// Each row is replayed twice: on a simulated clock (cache_replay.h: a layer computes for --layer-compute-ms,
// loaders read at --read-gbps each and --disk-gbps together, demand reads first), which gives the hit rate
// with late prefetches counted apart, the compute's wait per token and the fraction of that wait prefetch
// hides; and untimed, where every prefetch arrives in time, which gives the upper bound on the hit rate.
//
// The clock's defaults were measured on the development machine (2 shared cores, the slice checkpoint's
// shards on a shared virtual disk): one thread's pread + DONTNEED of 3.1 MB experts at random offsets reads
// 0.16-0.50 GB/s (0.4 typical), two threads 0.29-0.73 GB/s together (0.65 typical), varying from run to
// run with the disk's other tenants; `bench decode` of the FP8 slice model (4 layers, real
// dimensions) with all experts in memory gives the compute per layer: 7.6-7.8 tokens/s, 129-131 ms a
// token for 898 MB of weights, of which one layer reads ~70 MB (39 MB of attention or DeltaNet, router and
// shared expert, 10 × 3.15 MB of routed experts; the rest is the 622 MB lm_head), so a layer is ~7.8% of
// the token's traffic: ~10 ms at the same GB/s.
//
// Bytes per token = (on-demand loads + prefetch loads) · expert bytes / tokens; the default expert size is
// one FP8 expert of Qwen3-Coder-Next: gate, up and down projections of 512 × 2048 e4m3 bytes each plus
// their BF16 scales per 128 × 128 block. MB is 10^6 bytes.
// Not thread-safe; runs on the main thread.
#include <chrono>
#include <cstdio>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "engine/experts/cache_policy.h"
#include "engine/experts/cache_replay.h"
#include "engine/experts/routing_trace.h"
#include "lsp/cli/bench_command.h"

namespace qcoder::cli {
namespace {

// One FP8 expert of the real model: 3 matrices of 512 × 2048 bytes, and per matrix (512/128)·(2048/128)
// BF16 block scales.
constexpr std::uint64_t qwen3_next_fp8_expert_bytes = 3 * (512ull * 2048) + 3 * (4 * 16) * 2;  // 3,146,112

// Defaults of the simulated clock: see the file comment.
constexpr double default_layer_compute_ms = 10.0;
constexpr double default_read_gbps = 0.4;
constexpr double default_disk_gbps = 0.65;
constexpr int default_loader_threads = 2;

struct row {
  engine::replay_result result;  // timed
  engine::replay_result bound;   // untimed: prefetches in time
  double hidden = 0;             // prefetch rows: fraction of the no-prefetch row's wait hidden
  double seconds = 0;            // the untimed replay's run time (accesses per second)
};

nlohmann::json counts_json(const engine::replay_counts& c, double tokens, std::uint64_t expert_bytes) {
  return {{"hit_rate", c.hit_rate()},
          {"cache_hit_rate", c.cache_hit_rate()},
          {"misses_per_token", static_cast<double>(c.misses) / tokens},
          {"prefetches_per_token", static_cast<double>(c.prefetches) / tokens},
          {"useless_prefetches_per_token", static_cast<double>(c.useless_prefetches) / tokens},
          {"prefetch_accuracy", c.prefetch_accuracy()},
          {"late_rate", c.late_rate()},
          {"late_prefetch_hits", c.late_prefetch_hits},
          {"wait_ms_per_token", c.wait_s * 1e3 / tokens},
          {"bytes_per_token", static_cast<double>(c.loads()) * static_cast<double>(expert_bytes) / tokens},
          {"accesses", c.accesses},
          {"hits", c.hits},
          {"prefetch_hits", c.prefetch_hits},
          {"misses", c.misses},
          {"prefetches", c.prefetches}};
}

}  // namespace

int run_bench_expert_cache(args_view args) {
  std::string trace_file, write_trace, budget_text, expert_bytes_text = std::to_string(qwen3_next_fp8_expert_bytes);
  bool synthetic = false, as_json = false;
  int slots = 0, warmup = 0;
  std::vector<std::string> policies;
  engine::synthetic_trace_options gen;
  double layer_compute_ms = default_layer_compute_ms, read_gbps = default_read_gbps, disk_gbps = default_disk_gbps;
  int loader_threads = default_loader_threads;
  int layers = gen.layers, experts = gen.experts, top_k = gen.top_k, tokens = gen.tokens;
  std::uint64_t seed = gen.seed;
  arg_parser parser(
      "bench expert-cache [--trace FILE | --synthetic] [--budget SIZE | --slots N] [--expert-bytes B] "
      "[--layers N --experts N --top-k N --tokens N --seed S] [--layer-compute-ms T --read-gbps G --disk-gbps G "
      "--loader-threads N] [--write-trace FILE] [--json]",
      "Replays a routing trace through every expert-cache policy, with and without prefetch of the predicted\n"
      "experts, and reports hit rate, misses per token and bytes read from disk per token. Without --trace the\n"
      "synthetic trace is used (calibrated: LRU hits ~67% at 64 slots, ~81% at 128). Time is simulated: a\n"
      "prefetch issued one layer early may arrive late (a partial hit); the compute's wait for reads and the\n"
      "share of it that prefetch hides are reported, and the hit rate if every prefetch arrived in time (an\n"
      "upper bound). Clock defaults measured on the development machine. MB = 10^6 bytes.");
  parser.option("trace", "FILE", "a routing trace (JSON Lines, see engine/experts/routing_trace.h)", &trace_file)
      .flag("synthetic", "use the synthetic trace (the default when --trace is not given)", &synthetic)
      .option("budget", "SIZE", "expert cache size for all layers together, e.g. 24GiB (split evenly)", &budget_text)
      .option("slots", "N", "expert slots per layer (default 64 unless --budget)", &slots)
      .option("expert-bytes", "B", "bytes of one expert (default: one FP8 expert of Qwen3-Coder-Next)", &expert_bytes_text)
      .option("layers", "N", "synthetic: MoE layers", &layers)
      .option("experts", "N", "synthetic: experts per layer", &experts)
      .option("top-k", "N", "synthetic: experts per token and layer", &top_k)
      .option("tokens", "N", "synthetic: tokens", &tokens)
      .option("seed", "S", "synthetic: random seed", &seed)
      .option("skew", "X", "synthetic: popularity exponent", &gen.skew)
      .option("locality", "P", "synthetic: probability a pick repeats a recent token's expert", &gen.locality)
      .option("window", "N", "synthetic: how many recent tokens the repeats come from", &gen.window)
      .option("prediction-accuracy", "P", "synthetic: fraction of a layer's experts predicted right", &gen.prediction_accuracy)
      .option("warmup", "N", "tokens replayed before counting starts", &warmup)
      .option("layer-compute-ms", "T", "simulated compute of one MoE layer once its experts are there", &layer_compute_ms)
      .option("read-gbps", "G", "simulated read speed of one loader thread (GB/s)", &read_gbps)
      .option("disk-gbps", "G", "simulated read speed of all loader threads together (GB/s)", &disk_gbps)
      .option("loader-threads", "N", "simulated loader threads (reads in progress at once)", &loader_threads)
      .repeated("policy", "NAME", "replay only these policies (e.g. lru, lfu-decay:0.9); default: all", &policies)
      .option("write-trace", "FILE", "also save the trace that was replayed", &write_trace)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (!trace_file.empty() && synthetic) {
    fmt::print(stderr, "qcoder: give --trace or --synthetic, not both\n");
    return exit_usage;
  }
  if (!budget_text.empty() && slots != 0) {
    fmt::print(stderr, "qcoder: give --budget or --slots, not both\n");
    return exit_usage;
  }
  if (slots < 0 || warmup < 0) {
    fmt::print(stderr, "qcoder: --slots and --warmup must not be negative\n");
    return exit_usage;
  }
  if (!(layer_compute_ms >= 0) || !(read_gbps > 0) || !(disk_gbps > 0) || loader_threads < 1) {
    fmt::print(stderr, "qcoder: --layer-compute-ms must be ≥ 0, --read-gbps and --disk-gbps > 0, --loader-threads ≥ 1\n");
    return exit_usage;
  }
  const result<std::uint64_t> expert_bytes = parse_size(expert_bytes_text);
  if (!expert_bytes || *expert_bytes == 0) {
    fmt::print(stderr, "qcoder: --expert-bytes: {}\n", expert_bytes ? "must be positive" : expert_bytes.err().message);
    return exit_usage;
  }
  std::uint64_t budget = 0;
  if (!budget_text.empty()) {
    const result<std::uint64_t> parsed = parse_size(budget_text);
    if (!parsed) {
      fmt::print(stderr, "qcoder: --budget: {}\n", parsed.err().message);
      return exit_usage;
    }
    budget = *parsed;
  }
  if (policies.empty()) {
    for (std::string_view name : engine::cache_policy_names()) policies.emplace_back(name);
  }

  const auto start = std::chrono::steady_clock::now();
  result<engine::routing_trace> trace = [&]() -> result<engine::routing_trace> {
    if (!trace_file.empty()) return engine::read_routing_trace_file(trace_file);
    gen.layers = layers;
    gen.experts = experts;
    gen.top_k = top_k;
    gen.tokens = tokens;
    gen.seed = seed;
    return engine::make_synthetic_trace(gen);
  }();
  if (!trace) return report_failure(trace.err());
  const double trace_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!write_trace.empty()) {
    if (auto written = engine::write_routing_trace_file(*trace, write_trace); !written) return report_failure(written.err());
  }
  if (!budget_text.empty()) {
    const std::uint64_t per_layer = budget / (*expert_bytes * static_cast<std::uint64_t>(trace->layers()));
    slots = static_cast<int>(std::min<std::uint64_t>(per_layer, static_cast<std::uint64_t>(trace->experts())));
  } else if (slots == 0) {
    slots = 64;
  }
  if (trace->tokens() <= static_cast<std::size_t>(warmup)) {
    return report_failure(fail(errc::invalid_argument, "the trace has {} tokens, not more than --warmup {}", trace->tokens(), warmup));
  }

  engine::replay_timing timing;
  timing.layer_compute_s = layer_compute_ms / 1e3;
  timing.read_bytes_per_s = read_gbps * 1e9;
  timing.disk_bytes_per_s = disk_gbps * 1e9;
  timing.expert_bytes = *expert_bytes;
  timing.loader_threads = loader_threads;
  std::vector<row> rows;
  for (const std::string& policy : policies) {
    for (const bool prefetch : {false, true}) {
      if (prefetch && !trace->has_predictions()) continue;
      engine::replay_options options;
      options.policy = policy;
      options.slots = slots;
      options.prefetch = prefetch;
      options.warmup_tokens = static_cast<std::size_t>(warmup);
      row r;
      const auto t0 = std::chrono::steady_clock::now();
      result<engine::replay_result> bound = engine::replay_trace(*trace, options);
      if (!bound) return report_failure(bound.err());
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.bound = std::move(bound).value();
      options.timed = true;
      options.timing = timing;
      result<engine::replay_result> timed = engine::replay_trace(*trace, options);
      if (!timed) return report_failure(timed.err());
      r.result = std::move(timed).value();
      if (prefetch && !rows.empty() && !rows.back().result.prefetch) {
        r.hidden = engine::hidden_wait_fraction(rows.back().result, r.result);
      }
      rows.push_back(std::move(r));
    }
  }

  const std::string source = trace_file.empty() ? std::string("synthetic") : trace_file;
  const double resident_gb = static_cast<double>(slots) * static_cast<double>(trace->layers()) *
                             static_cast<double>(*expert_bytes) / 1e9;
  if (as_json) {
    nlohmann::json results = nlohmann::json::array();
    for (const row& r : rows) {
      const double n = static_cast<double>(r.result.tokens);
      nlohmann::json item = counts_json(r.result.total, n, *expert_bytes);
      item["policy"] = r.result.policy;
      item["prefetch"] = r.result.prefetch;
      item["in_time_hit_rate"] = r.bound.total.hit_rate();
      if (r.result.prefetch) item["hidden_wait_fraction"] = r.hidden;
      item["accesses_per_second"] = r.seconds > 0 ? static_cast<double>(trace->accesses()) / r.seconds : 0.0;
      nlohmann::json per_layer = nlohmann::json::array();
      for (const engine::replay_counts& c : r.result.layers) per_layer.push_back(c.hit_rate());
      item["layer_hit_rates"] = std::move(per_layer);
      results.push_back(std::move(item));
    }
    nlohmann::json out = {{"trace", source},
                          {"layers", trace->layers()},
                          {"experts", trace->experts()},
                          {"top_k", trace->top_k()},
                          {"tokens", trace->tokens()},
                          {"warmup_tokens", warmup},
                          {"slots_per_layer", slots},
                          {"expert_bytes", *expert_bytes},
                          {"cache_bytes", static_cast<double>(slots) * trace->layers() * static_cast<double>(*expert_bytes)},
                          {"timing", {{"layer_compute_ms", layer_compute_ms}, {"read_gbps", read_gbps},
                                      {"disk_gbps", disk_gbps}, {"loader_threads", loader_threads}}},
                          {"results", std::move(results)}};
    if (trace_file.empty()) {
      out["synthetic"] = {{"seed", gen.seed}, {"skew", gen.skew}, {"locality", gen.locality}, {"window", gen.window},
                          {"prediction_accuracy", gen.prediction_accuracy}};
    }
    fmt::print("{}\n", out.dump());
    return exit_ok;
  }
  fmt::print("trace          {} ({} tokens, {} layers, {} experts, top-{}; {:.2f} s to {})\n", source, trace->tokens(),
             trace->layers(), trace->experts(), trace->top_k(), trace_s, trace_file.empty() ? "generate" : "read");
  if (trace_file.empty()) {
    fmt::print("synthetic      seed {}, skew {}, locality {} over {} tokens, prediction accuracy {}\n", gen.seed, gen.skew,
               gen.locality, gen.window, gen.prediction_accuracy);
  }
  fmt::print("cache          {} slots per layer, {:.2f} GB in all ({:.3f} MB per expert)\n", slots, resident_gb,
             static_cast<double>(*expert_bytes) / 1e6);
  fmt::print("clock          a layer computes {:.2f} ms; {} loaders read {:.2f} GB/s each, {:.2f} GB/s together: one "
             "expert {:.1f} ms alone\n",
             layer_compute_ms, loader_threads, read_gbps, disk_gbps,
             static_cast<double>(*expert_bytes) / (std::min(read_gbps, disk_gbps) * 1e9) * 1e3);
  fmt::print("\n{:<18}{:<10}{:>8}{:>8}{:>11}{:>13}{:>10}{:>14}{:>14}{:>12}\n", "policy", "prefetch", "hit %", "late %",
             "in-time %", "wait ms/tok", "hidden %", "misses/token", "MB read/token", "prefetch %");
  for (const row& r : rows) {
    const engine::replay_counts& c = r.result.total;
    const double n = static_cast<double>(r.result.tokens);
    const bool pf = r.result.prefetch;
    fmt::print("{:<18}{:<10}{:>8.1f}{:>8}{:>11.1f}{:>13.2f}{:>10}{:>14.1f}{:>14.1f}{:>12}\n", r.result.policy, pf ? "on" : "off",
               100.0 * c.hit_rate(), pf ? fmt::format("{:.1f}", 100.0 * c.late_rate()) : "-", 100.0 * r.bound.total.hit_rate(),
               c.wait_s * 1e3 / n, pf ? fmt::format("{:.1f}", 100.0 * r.hidden) : "-", static_cast<double>(c.misses) / n,
               static_cast<double>(c.loads()) * static_cast<double>(*expert_bytes) / n / 1e6,
               pf ? fmt::format("{:.1f}", 100.0 * c.prefetch_accuracy()) : "-");
  }
  fmt::print("\nOn the simulated clock: hit % = resident or prefetched in time; late % = prefetched but still being read\n"
             "(the compute waits for the rest); wait = the compute's wait for reads per token; hidden % = the share of\n"
             "the same policy's wait without prefetch that prefetch removes. in-time % = hit % if every prefetch\n"
             "arrived in time (the upper bound). MB read/token counts on-demand and prefetch loads; prefetch % = prefetch\n"
             "loads that were used.\n");
  return exit_ok;
}

}  // namespace qcoder::cli
