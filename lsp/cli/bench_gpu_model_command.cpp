// `qcoder bench gpu-model`: predicted decode tokens/s of a model on a card, from the time model
// (engine/perf/time_model.h): one decode step costed by the device forward pass itself (engine/perf/
// decode_cost.h), a routing trace replayed through the expert cache the card's memory leaves room for.
// Nothing is run on a GPU: every figure is a prediction.
//
// With --gpu NAME (a card of the table, cpu, or custom:...) one prediction with its breakdown; without
// --gpu (or --gpu all) one table over every card: the prediction at an 8 GiB budget and with every weight
// resident (when that fits), the bandwidth ceiling, the published reference figures, and which policy and
// prefetch setting wins.
//
// Checking the model where it can be measured (issue 15): `--gpu cpu` is this machine's CPU with the figures
// measured on it (time_model.cpp). Record the routing of the measured run and replay it, since a
// randomly initialised checkpoint routes nearly uniformly, unlike the calibrated synthetic trace:
//   qcoder bench decode --model models/slice-fp8 --expert-cache-ram 1610809344 --tokens 32 --trace-routing T
//   (keep the decode tokens of T: per repeat, the 4 warm-up and 32 timed tokens after the 128-token prompt)
//   qcoder bench gpu-model --gpu cpu --model models/slice-fp8 --vram 1585640448 --policy lru --prefetch
//       --context 150 --trace T.decode --warmup 36
// (--vram gives the model the engine's 126 slots per layer: its slots are 3,182,592 bytes, not 3,146,112).
// Not thread-safe; runs on the main thread.
#include <cstdio>
#include <optional>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "engine/experts/cache_policy.h"
#include "engine/experts/routing_trace.h"
#include "engine/make_model.h"
#include "engine/perf/decode_cost.h"
#include "engine/perf/expert_read_probe.h"
#include "engine/perf/time_model.h"
#include "lsp/cli/bench_command.h"

namespace qcoder::cli {
namespace {

constexpr double gib = 1024.0 * 1024.0 * 1024.0;
constexpr std::uint64_t eight_gib = 8ull << 30;

// Published figures to compare with (measurements, not predictions).
std::string reference_for(std::string_view card) {
  if (card == "rtx3070ti-8g") return "FIFO expert cache, 8 GB: 1.21 tok/s (published)";
  if (card == "h200") return "vLLM, all resident FP8: ~210 tok/s (published)";
  return "-";
}

struct setting {
  std::string policy;
  bool prefetch = true;
  bool graphs = true;  // the decode graph (no prefetch inside a step), else eager launches
};

struct best_result {
  engine::prediction p;
  setting s;
};

// The best policy and prefetch setting at one budget (or the one given, when the flags pin it).
result<best_result> best_of(const engine::decode_cost& cost, const engine::card& card, const engine::routing_trace& trace,
                            engine::time_model_options options, const std::vector<setting>& settings) {
  std::optional<best_result> best;
  for (const setting& s : settings) {
    options.policy = s.policy;
    options.prefetch = s.prefetch;
    options.graphs = s.graphs;
    QCODER_TRY(engine::prediction p, engine::predict(cost, card, trace, options));
    if (!p.fits) return best_result{p, s};
    if (!best || p.tokens_per_s > best->p.tokens_per_s) best = best_result{p, s};
    if (p.all_resident) break;  // no cache: the policy does not matter
  }
  return *best;
}

std::string setting_name(const best_result& b) {
  if (b.p.all_resident) return b.p.graphs ? "all resident, graph" : "all resident, eager";
  if (b.p.graphs) return fmt::format("{}, graph", b.s.policy);
  return fmt::format("{}, eager{}", b.s.policy, b.s.prefetch ? " + prefetch" : "");
}

nlohmann::json prediction_json(const engine::prediction& p) {
  nlohmann::json j = {{"fits", p.fits}};
  if (!p.fits) {
    j["why_not"] = p.why_not;
    j["ceiling_tokens_per_s"] = p.ceiling_tokens_per_s;
    return j;
  }
  j.update({{"predicted_tokens_per_s", p.tokens_per_s},
            {"ms_per_token", p.seconds_per_token * 1e3},
            {"ceiling_tokens_per_s", p.ceiling_tokens_per_s},
            {"all_resident", p.all_resident},
            {"slots_per_layer", p.slots_per_layer},
            {"hit_rate", p.hit_rate},
            {"misses_per_token", p.misses_per_token},
            {"copy_bytes_per_token", p.copy_bytes_per_token},
            {"resident_bytes", p.resident_bytes},
            {"state_bytes", p.state_bytes},
            {"expert_cache_bytes", p.expert_cache_bytes},
            {"breakdown_ms", {{"resident_weights", p.parts.resident_s * 1e3},
                              {"expert_hits", p.parts.expert_hit_s * 1e3},
                              {"expert_misses", p.parts.expert_miss_s * 1e3},
                              {"copy_stall", p.parts.copy_stall_s * 1e3},
                              {"state", p.parts.state_s * 1e3},
                              {"activations", p.parts.activation_s * 1e3},
                              {"launches", p.parts.launch_s * 1e3}}}});
  return j;
}

std::string tokens_cell(const engine::prediction& p) {
  return p.fits ? fmt::format("{:.1f}", p.tokens_per_s) : std::string("does not fit");
}

}  // namespace

int run_bench_gpu_model(args_view args) {
  std::string gpu = "all", model_dir, quant, vram_text, ram_text, trace_file;
  std::vector<std::string> policies;
  bool no_prefetch = false, prefetch_only = false, eager = false, graph_only = false, measure_disk = false,
       as_json = false, cpu_misses = false;
  int context_flag = 4096, batch_flag = 1;
  int tokens = 1024, warmup = 256;
  double bw_gbps = 0, disk_gbps = 0, read_gbps = 0, fp8_gbps = 0, bf16_gbps = 0, ssd_gbps = 0, host_gbps = 0;
  arg_parser parser(
      "bench gpu-model [--gpu NAME|cpu|custom:bw=GBPS,pcie=GBPS,vram=SIZE|all] [--model DIR] [--quant fp8|bf16] "
      "[--vram SIZE] [--policy NAME] [--no-prefetch] [--eager] [--trace FILE] [--context N] [--batch N] [--json]",
      "Predicts decode tokens/s on a card with the time model: the decode step's kernels, costed by the device\n"
      "forward pass itself (bytes and FLOPs per launch), at the card's memory bandwidth; the routed experts that do\n"
      "not fit the budget replayed from a routing trace (the calibrated synthetic one unless --trace) through the\n"
      "expert cache, their misses copied over PCIe while the previous layer computes (prefetch) or on demand.\n"
      "Without --gpu, one table over every card at an 8 GiB budget and fully resident. Every figure is a\n"
      "PREDICTION; the constants and their sources are in engine/perf/time_model.cpp. GB = 10^9 bytes.");
  parser.option("gpu", "NAME", "rtx3070ti-8g, rtx4070-12g, rtx4090-24g, h100, h200, cpu, custom:bw=GBPS,pcie=GBPS,vram=SIZE, or all", &gpu)
      .option("model", "DIR", "a model folder (its config.json); default: Qwen3-Coder-Next's dimensions", &model_dir)
      .option("quant", "Q", "fp8 or bf16 (default: fp8, or the model folder's own)", &quant)
      .option("vram", "SIZE", "memory budget (cpu: RAM for routed experts, as --expert-cache-ram); default: the card's", &vram_text)
      .option("ram", "SIZE", "GPU: host RAM for routed experts under the VRAM ones (as --expert-cache-ram; the rest\n"
              "                     read from disk); default: all of them", &ram_text)
      .option("ssd-gbps", "G", "GPU with --ram: the disk's read speed (default 3.5, a PCIe 3 NVMe drive)", &ssd_gbps)
      .flag("cpu-misses", "GPU: misses in RAM computed by the CPU when faster than their copy (eager only)", &cpu_misses)
      .option("host-gbps", "G", "GPU with --cpu-misses: the CPU's weight rate (default 27, measured here)", &host_gbps)
      .repeated("policy", "NAME", "expert cache policy (default: the best of all)", &policies)
      .flag("no-prefetch", "no prefetch of the next layer's predicted experts", &no_prefetch)
      .flag("prefetch", "always prefetch (default: the better of with and without)", &prefetch_only)
      .flag("eager", "only eager launches (default: the best of the decode graph and eager launches)", &eager)
      .flag("graph", "only the decode graph (no prefetch inside a step)", &graph_only)
      .option("trace", "FILE", "a routing trace (JSON Lines) instead of the synthetic one", &trace_file)
      .option("tokens", "N", "synthetic trace: tokens", &tokens)
      .option("warmup", "N", "trace tokens replayed before counting", &warmup)
      .option("context", "N", "tokens each sequence holds (the KV cache attention reads)", &context_flag)
      .option("batch", "N", "sequences decoded together", &batch_flag)
      .option("bw-gbps", "G", "override the card's memory bandwidth", &bw_gbps)
      .option("disk-gbps", "G", "override the link: PCIe one way, or the CPU's disk, all readers together", &disk_gbps)
      .option("read-gbps", "G", "override one copy's (one disk reader's) speed", &read_gbps)
      .flag("measure-disk", "cpu with --model: measure the disk as the expert store reads the model's experts\n"
            "                     (O_DIRECT, 1 and 2 loaders, after a warm pass) instead of the card's figure", &measure_disk)
      .option("fp8-gbps", "G", "cpu: override the FP8 matmul weight rate", &fp8_gbps)
      .option("bf16-gbps", "G", "cpu: override the BF16 matmul weight rate", &bf16_gbps)
      .flag("json", "print one JSON object instead of the table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  const std::int64_t context = context_flag, batch = batch_flag;
  if (context < 0 || batch < 1 || tokens < 2 || warmup < 0) {
    fmt::print(stderr, "qcoder: --context ≥ 0, --batch ≥ 1, --tokens ≥ 2 and --warmup ≥ 0\n");
    return exit_usage;
  }
  if (no_prefetch && prefetch_only) {
    fmt::print(stderr, "qcoder: give --prefetch or --no-prefetch, not both\n");
    return exit_usage;
  }
  if (!quant.empty() && quant != "fp8" && quant != "bf16") {
    fmt::print(stderr, "qcoder: --quant: expected fp8 or bf16, got '{}'\n", quant);
    return exit_usage;
  }
  // --vram and --ram: a positive size, or 0 when not given.
  const auto size_flag = [](std::string_view flag, const std::string& text) -> std::optional<std::uint64_t> {
    if (text.empty()) return std::uint64_t{0};
    const result<std::uint64_t> parsed = parse_size(text);
    if (parsed && *parsed > 0) return *parsed;
    fmt::print(stderr, "qcoder: --{}: {}\n", flag, parsed ? "must be positive" : parsed.err().message);
    return std::nullopt;
  };
  const std::optional<std::uint64_t> budget_flag = size_flag("vram", vram_text), ram_flag = size_flag("ram", ram_text);
  if (!budget_flag || !ram_flag) return exit_usage;
  const std::uint64_t budget = *budget_flag, ram = *ram_flag;
  std::vector<engine::card> cards;
  const bool all = gpu == "all";
  if (all) {
    cards.assign(engine::known_cards().begin(), engine::known_cards().end());
  } else {
    result<engine::card> c = engine::parse_card(gpu);
    if (!c) {
      fmt::print(stderr, "qcoder: --gpu: {}\n", c.err().message);
      return exit_usage;
    }
    cards.push_back(std::move(c).value());
  }
  if (measure_disk) {
    if (all || !cards.front().cpu || model_dir.empty()) {
      fmt::print(stderr, "qcoder: --measure-disk needs --gpu cpu and --model DIR\n");
      return exit_usage;
    }
    result<engine::expert_read_speed> speed = engine::measure_expert_reads(model_dir, cards.front().copy_engines);
    if (!speed) return report_failure(speed.err());
    fmt::print(as_json ? stderr : stdout, "disk (measured) {:.2f} GB/s with one loader, {:.2f} GB/s with {} ({} reads of {:.2f} MB each)\n",
               speed->one_reader_gbps, speed->all_readers_gbps, speed->loaders, speed->reads,
               static_cast<double>(speed->expert_bytes) / 1e6);
    cards.front().link_one_gbps = speed->one_reader_gbps;
    cards.front().link_gbps = speed->all_readers_gbps;
  }
  for (engine::card& c : cards) {
    if (bw_gbps > 0) c.memory_gbps = bw_gbps;
    if (disk_gbps > 0) c.link_gbps = disk_gbps;
    if (read_gbps > 0) c.link_one_gbps = read_gbps;
    if (fp8_gbps > 0) c.fp8_matmul_gbps = fp8_gbps;
    if (bf16_gbps > 0) c.bf16_matmul_gbps = bf16_gbps;
  }

  // The model: its config, FP8 or not, and shape-only weights.
  result<engine::model_config> config =
      model_dir.empty() ? engine::preset_config("slice", 48, 512) : engine::model_config::load(model_dir);
  if (!config) return report_failure(config.err());
  if (model_dir.empty() || !quant.empty()) {
    const bool fp8 = quant.empty() ? true : quant == "fp8";
    if (fp8 != config->quant.fp8) config->quant.modules_to_not_convert.clear();
    config->quant.fp8 = fp8;
  }
  const engine::qwen3_next_weights weights = engine::shape_only_weights(*config);
  result<engine::decode_cost> cost = engine::cost_of_decode(*config, weights, batch, context);
  if (!cost) return report_failure(cost.err());

  result<engine::routing_trace> trace = [&]() -> result<engine::routing_trace> {
    if (!trace_file.empty()) return engine::read_routing_trace_file(trace_file);
    engine::synthetic_trace_options gen;
    gen.layers = static_cast<std::int32_t>(cost->moe_layers);
    gen.experts = static_cast<std::int32_t>(std::max<std::int64_t>(1, cost->experts));
    gen.top_k = static_cast<std::int32_t>(std::max<std::int64_t>(1, cost->top_k));
    gen.tokens = tokens;
    return engine::make_synthetic_trace(gen);
  }();
  if (!trace) return report_failure(trace.err());

  std::vector<setting> settings;
  if (policies.empty()) {
    for (std::string_view name : engine::cache_policy_names()) policies.emplace_back(name);
  }
  // The graph path has no prefetch; the eager one is tried with and without.
  for (const std::string& policy : policies) {
    if (!eager && !prefetch_only) settings.push_back({policy, false, true});
    if (graph_only) continue;
    for (const bool prefetch : {true, false}) {
      if ((prefetch && no_prefetch) || (!prefetch && prefetch_only)) continue;
      settings.push_back({policy, prefetch, false});
    }
  }
  engine::time_model_options options;
  options.graphs = !eager;
  options.host_bytes = ram;
  options.ssd_gbps = ssd_gbps;
  options.cpu_misses = cpu_misses;
  options.host_gbps = host_gbps;
  options.warmup_tokens = static_cast<std::size_t>(warmup);

  const double weight_gb = static_cast<double>(cost->weight_bytes() + cost->vector_bytes()) / 1e9;
  const double routed_gb = static_cast<double>(cost->routed_bytes()) / 1e9;
  const std::string model_name = model_dir.empty() ? "Qwen3-Coder-Next (48 layers, 512 experts, top-10)" : model_dir;
  const std::string quant_name = config->quant.fp8 ? "fp8" : "bf16";

  if (!all) {
    const engine::card& c = cards.front();
    options.budget_bytes = budget;
    result<best_result> b = best_of(*cost, c, *trace, options, settings);
    if (!b) return report_failure(b.err());
    const engine::prediction& p = b->p;
    if (as_json) {
      nlohmann::json out = prediction_json(p);
      out.update({{"card", c.name}, {"model", model_name}, {"quant", quant_name}, {"batch", batch}, {"context", context},
                  {"budget_bytes", budget > 0 ? budget : c.memory_bytes}, {"policy", b->s.policy},
                  {"prefetch", b->s.prefetch && !b->p.graphs}, {"graphs", b->p.graphs}, {"launches", cost->launches.size()},
                  {"weight_bytes_per_token", cost->weight_bytes() + cost->vector_bytes()},
                  {"routed_bytes_per_token", cost->routed_bytes()}, {"ram_bytes", ram},
                  {"host_slots_per_layer", p.host_slots_per_layer}, {"disk_fraction", p.disk_fraction},
                  {"disk_bytes_per_token", p.disk_bytes_per_token}, {"cpu_misses", p.cpu_misses}, {"prediction", true}});
      fmt::print("{}\n", out.dump());
      return exit_ok;
    }
    fmt::print("PREDICTION (time model; nothing was run on a GPU)\n");
    fmt::print("card           {}: {} ({:.0f} GB/s memory, {:.2f} GB/s link)\n", c.name, c.description, c.memory_gbps, c.link_gbps);
    fmt::print("model          {} {}, batch {}, context {} tokens\n", model_name, quant_name, batch, context);
    fmt::print("decode step    {} kernel launches; reads {:.3f} GB of resident weights and {:.3f} GB of routed experts "
               "per step\n",
               cost->launches.size(), weight_gb, routed_gb);
    fmt::print("memory         resident weights + activations {:.2f} GiB, sequence state {:.2f} GiB, budget {:.2f} GiB\n",
               static_cast<double>(p.resident_bytes) / gib, static_cast<double>(p.state_bytes) / gib,
               static_cast<double>(budget > 0 ? budget : c.memory_bytes) / gib);
    if (!p.fits) {
      fmt::print("\ndoes not fit: {}\nbandwidth ceiling {:.1f} tokens/s\n", p.why_not, p.ceiling_tokens_per_s);
      return exit_ok;
    }
    fmt::print("experts        {}\n", p.all_resident ? std::string("all resident")
                                                     : fmt::format("{} slots per layer ({:.2f} GiB), {} ; hit {:.1f}%, "
                                                                   "{:.2f} misses/token, {:.1f} MB copied/token",
                                                                   p.slots_per_layer, static_cast<double>(p.expert_cache_bytes) / gib,
                                                                   setting_name(*b), 100 * p.hit_rate, p.misses_per_token,
                                                                   p.copy_bytes_per_token / 1e6));
    if (ram > 0 && !p.all_resident) {
      fmt::print("host tier      {} slots per layer in RAM; {:.1f}% of VRAM misses read from disk first, {:.1f} MB/token "
                 "from disk\n",
                 p.host_slots_per_layer, 100 * p.disk_fraction, p.disk_bytes_per_token / 1e6);
    }
    if (cpu_misses && !p.all_resident) {
      fmt::print("CPU tier       {}\n", p.cpu_misses ? "misses in RAM computed by the CPU (faster than their copy)"
                                                     : "off: a copy is faster than the CPU");
    }
    fmt::print("\npredicted      {:.2f} tokens/s ({:.2f} ms per step){}\n", p.tokens_per_s, p.seconds_per_token * 1e3,
               batch > 1 ? " over the batch" : "");
    fmt::print("ceiling        {:.1f} tokens/s (every weight byte once at {:.0f} GB/s)\n", p.ceiling_tokens_per_s, c.memory_gbps);
    fmt::print("\nms per step:   resident weights {:.3f}, expert hits {:.3f}, expert misses {:.3f}, copy stall {:.3f}, "
               "KV/recurrent state {:.3f}, activations {:.3f}, launches {:.3f}\n",
               p.parts.resident_s * 1e3, p.parts.expert_hit_s * 1e3, p.parts.expert_miss_s * 1e3, p.parts.copy_stall_s * 1e3,
               p.parts.state_s * 1e3, p.parts.activation_s * 1e3, p.parts.launch_s * 1e3);
    return exit_ok;
  }

  // Every card.
  struct row {
    const engine::card* c;
    best_result at_8g, full_vram;
    engine::prediction resident;
  };
  std::vector<row> rows;
  for (const engine::card& c : cards) {
    row r{&c, {}, {}, {}};
    options.budget_bytes = budget > 0 ? budget : eight_gib;
    result<best_result> at_budget = best_of(*cost, c, *trace, options, settings);
    if (!at_budget) return report_failure(at_budget.err());
    r.at_8g = std::move(at_budget).value();
    options.budget_bytes = c.memory_bytes;
    result<best_result> at_vram = best_of(*cost, c, *trace, options, settings);
    if (!at_vram) return report_failure(at_vram.err());
    r.full_vram = std::move(at_vram).value();
    r.resident = r.full_vram.p;
    if (!r.resident.all_resident && r.resident.fits) {
      r.resident.fits = false;
      r.resident.why_not = "not every expert fits";
    }
    rows.push_back(std::move(r));
  }
  if (as_json) {
    nlohmann::json list = nlohmann::json::array();
    for (const row& r : rows) {
      nlohmann::json a = prediction_json(r.at_8g.p), f = prediction_json(r.full_vram.p);
      a["policy"] = setting_name(r.at_8g);
      f["policy"] = setting_name(r.full_vram);
      list.push_back({{"card", r.c->name},
                      {"memory_gbps", r.c->memory_gbps},
                      {"vram_bytes", r.c->memory_bytes},
                      {"at_budget", a},
                      {"at_card_vram", f},
                      {"all_resident_fits", r.resident.fits},
                      {"ceiling_tokens_per_s", r.at_8g.p.ceiling_tokens_per_s},
                      {"reference", reference_for(r.c->name)}});
    }
    fmt::print("{}\n", nlohmann::json{{"model", model_name},
                                      {"quant", quant_name},
                                      {"batch", batch},
                                      {"context", context},
                                      {"budget_bytes", budget > 0 ? budget : eight_gib},
                                      {"prediction", true},
                                      {"cards", list}}
                           .dump());
    return exit_ok;
  }
  fmt::print("PREDICTIONS of the time model (nothing was run on a GPU): {} {}, batch {}, context {}\n", model_name,
             quant_name, batch, context);
  fmt::print("decode step: {} kernel launches, {:.2f} GB resident weights + {:.3f} GB routed experts per step; "
             "resident part {:.2f} GiB + state {:.2f} GiB\n\n",
             cost->launches.size(), weight_gb, routed_gb, static_cast<double>(cost->resident_device_bytes()) / gib,
             static_cast<double>(cost->state_bytes) / gib);
  const std::string budget_label = budget > 0 ? fmt::format("{:.0f} GiB", static_cast<double>(budget) / gib) : "8 GiB";
  fmt::print("{:<14}{:>8}{:>7}  {:>10} {:>6}  {:<28}{:>11}  {:<28}{:>13}{:>10}  {}\n", "card", "GB/s", "VRAM",
             "@" + budget_label, "hit %", "best setting", "@card VRAM", "best setting", "all resident", "ceiling",
             "published reference");
  for (const row& r : rows) {
    fmt::print("{:<14}{:>8.0f}{:>7.0f}  {:>10} {:>6}  {:<28}{:>11}  {:<28}{:>13}{:>10.1f}  {}\n", r.c->name, r.c->memory_gbps,
               static_cast<double>(r.c->memory_bytes) / gib, tokens_cell(r.at_8g.p),
               r.at_8g.p.fits ? fmt::format("{:.1f}", 100 * r.at_8g.p.hit_rate) : "-",
               r.at_8g.p.fits ? setting_name(r.at_8g) : "-", tokens_cell(r.full_vram.p),
               r.full_vram.p.fits ? setting_name(r.full_vram) : "-", tokens_cell(r.resident), r.at_8g.p.ceiling_tokens_per_s,
               reference_for(r.c->name));
  }
  fmt::print("\nAll tokens/s are predictions for our design (the VRAM expert cache; per card the better of the decode\n"
             "graph, whose misses are read in place over PCIe and copied after the step, and eager launches, whose misses\n"
             "are copied while the shared and resident experts run, with or without prefetch), except the published\n"
             "references. ceiling = every weight byte a token reads, once, at the card's peak memory bandwidth.\n"
             "hit % = routed-expert accesses that found the expert in VRAM or prefetched in time.\n");
  return exit_ok;
}

}  // namespace qcoder::cli
