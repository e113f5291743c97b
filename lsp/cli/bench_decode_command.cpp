// `qcoder bench decode`: prefill and decode speed of the model on this machine, the weight traffic per
// decoded token, and that traffic as a fraction of the memory bandwidth measured by the same run.
//
// Steps: measure read bandwidth (threads summing a 1 GiB buffer); load the model; warm up (touch every
// used weight page, then one short prefill and a few decode steps); time a prefill of --prompt-tokens random ids;
// time --tokens greedy decode steps; report page faults during the timed part and the process's memory
// split into file-backed (the mapped weights) and anonymous (our own allocations).
#include <sys/resource.h>

#include <chrono>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/model/device_forward.h"
#include "engine/sampler.h"
#include "kernels/common/cpu_features.h"
#include "kernels/cpu/bandwidth.h"
#include "lsp/cli/bench_command.h"
#include "lsp/cli/model_flags.h"

namespace qcoder::cli {
namespace {

struct memory_usage {
  std::int64_t rss_file = 0;  // bytes
  std::int64_t rss_anon = 0;
};

memory_usage read_memory_usage() {
  memory_usage m;
  std::ifstream status("/proc/self/status");
  std::string key;
  std::int64_t kb = 0;
  std::string unit;
  while (status >> key) {
    if (key == "RssFile:" && status >> kb >> unit) m.rss_file = kb * 1024;
    if (key == "RssAnon:" && status >> kb >> unit) m.rss_anon = kb * 1024;
  }
  return m;
}

long major_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_majflt;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int run_bench_decode(args_view args) {
  model_flags flags;
  int tokens = 32;
  int prompt_tokens = 128;
  int warmup = 4;
  int repeat = 3;
  bool json = false;
  std::string bandwidth_size = "1GiB";
  arg_parser parser("bench decode --model DIR [--threads N] [--tokens N] [--prompt-tokens N] [--json]",
                    "Prefill and decode tokens/s, weight bytes read per decoded token, the GB/s that implies, and\n"
                    "that figure against this machine's memory read bandwidth measured by the same command.");
  flags.add_to(parser);
  parser.option("tokens", "N", "decode steps timed", &tokens)
      .option("prompt-tokens", "N", "prompt length for the prefill timing", &prompt_tokens)
      .option("warmup", "N", "decode steps before timing (pages the weights in)", &warmup)
      .option("repeat", "N", "timed prefill + decode runs; figures are of the best run (and the mean)", &repeat)
      .option("bandwidth-buffer", "SIZE", "buffer size for the bandwidth measurement", &bandwidth_size)
      .flag("json", "print one JSON object instead of the table", &json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (tokens < 1 || prompt_tokens < 1 || warmup < 0 || repeat < 1) {
    return report_failure(
        fail(errc::invalid_argument, "--tokens, --prompt-tokens and --repeat must be ≥ 1, --warmup ≥ 0"));
  }
  result<std::uint64_t> buffer = parse_size(bandwidth_size);
  if (!buffer) return report_failure(buffer.err());

  cpu::bandwidth_result bandwidth;
  {
    cpu::thread_pool pool(flags.threads);
    bandwidth = cpu::measure_bandwidth(pool, static_cast<std::int64_t>(*buffer));
  }

  result<std::unique_ptr<engine::qwen3_next>> loaded = flags.load();
  if (!loaded) return report_failure(loaded.err());
  engine::qwen3_next& model = **loaded;
  const engine::model_config& c = model.config();

  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::int32_t> any_token(0, static_cast<std::int32_t>(c.vocab_size - 1));
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_tokens));
  for (std::int32_t& id : prompt) id = any_token(rng);
  std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));
  auto fail_with = [](const result<void>& r) { return report_failure(r.err()); };

  // Warm-up: page in every weight the forward pass can touch (the routed experts too, which a short run
  // would not reach), then a short prefill and a few decode steps to settle caches and threads.
  std::uint64_t touched = 0;
  // (With the expert cache nothing is read through the mapping: the resident weights were copied at load.)
  for (std::string_view name : model.weights_file().names()) {
    if (model.experts() != nullptr) break;
    if (name.starts_with("mtp.")) continue;  // the multi-token-prediction head is not used
    const std::span<const std::byte> bytes = model.weights_file().find(name)->bytes;
    for (std::size_t i = 0; i < bytes.size(); i += 4096) touched += static_cast<std::uint8_t>(bytes[i]);
  }
  spdlog::debug("warm-up touched weights (checksum {})", touched);
  {
    engine::sequence_state state = model.new_state(8 + warmup + 1);
    const std::vector<std::int32_t> head(prompt.begin(), prompt.begin() + std::min(prompt_tokens, 8));
    if (result<void> r = model.forward(head, state, logits.data(), engine::logits_mode::last); !r) return fail_with(r);
    for (int i = 0; i < warmup; ++i) {
      const std::int32_t next[] = {engine::argmax(logits.data(), c.vocab_size)};
      if (result<void> r = model.forward(next, state, logits.data(), engine::logits_mode::last); !r) return fail_with(r);
    }
  }

  // Timed runs: prefill then decode on a fresh state, `repeat` times. The machine's other tenants make single
  // runs noisy, so the table gives the best run (and the mean); expert-cache figures sum over all runs.
  const long faults_before = major_faults();
  engine::sequence_state state = model.new_state(prompt_tokens + tokens + 1);
  engine::expert_layer_stats ex{};
  // The VRAM expert tier (a device pass with --expert-cache-vram), summed over the timed decode runs.
  const engine::device_forward* pass = model.device_forward_pass();
  const engine::device_expert_slots* vram_slots = pass != nullptr ? pass->expert_slots() : nullptr;
  engine::device_slot_stats vram{};
  double prefill_s = 1e30, decode_s = 1e30, decode_total_s = 0.0;
  for (int rep = 0; rep < repeat; ++rep) {
    state.reset();
    auto t0 = std::chrono::steady_clock::now();
    if (result<void> r = model.forward(prompt, state, logits.data(), engine::logits_mode::last); !r) return fail_with(r);
    prefill_s = std::min(prefill_s, seconds_since(t0));

    const engine::expert_layer_stats before =
        model.experts() != nullptr ? model.experts()->totals() : engine::expert_layer_stats{};
    const engine::device_slot_stats vram_before = vram_slots != nullptr ? vram_slots->totals() : engine::device_slot_stats{};
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < tokens; ++i) {
      const std::int32_t next[] = {engine::argmax(logits.data(), c.vocab_size)};
      if (result<void> r = model.forward(next, state, logits.data(), engine::logits_mode::last); !r) return fail_with(r);
    }
    const double run_s = seconds_since(t0);
    decode_s = std::min(decode_s, run_s);
    decode_total_s += run_s;
    if (model.experts() != nullptr) ex += model.experts()->totals() - before;
    if (vram_slots != nullptr) vram += vram_slots->totals() - vram_before;
  }
  const double decoded = static_cast<double>(tokens) * repeat;
  const double decode_mean_tps = decoded / decode_total_s;
  const double hit_rate = ex.hits + ex.misses > 0 ? static_cast<double>(ex.hits) / static_cast<double>(ex.hits + ex.misses) : 1.0;
  const long page_ins = major_faults() - faults_before;
  const memory_usage memory = read_memory_usage();

  const double prefill_tps = prompt_tokens / prefill_s;
  const double decode_tps = tokens / decode_s;
  const double bytes_per_token = static_cast<double>(model.weight_bytes_per_token());
  const double weight_gbps = bytes_per_token * decode_tps / 1e9;
  const double ratio = weight_gbps / bandwidth.read_gbps;

  if (json) {
    const nlohmann::json out = {
        {"model", model.weights_file().dir().string()},
        {"threads", model.threads()},
        {"kernels", kernel_family()},
        {"layers", c.num_hidden_layers},
        {"checkpoint_bytes", model.weights_file().total_bytes()},
        {"prompt_tokens", prompt_tokens},
        {"prefill_tokens_per_s", prefill_tps},
        {"decode_tokens", tokens},
        {"decode_tokens_per_s", decode_tps},
        {"decode_tokens_per_s_mean", decode_mean_tps},
        {"repeat", repeat},
        {"weight_bytes_per_token", bytes_per_token},
        {"weight_gbps", weight_gbps},
        {"memory_read_gbps", bandwidth.read_gbps},
        {"memory_copy_gbps", bandwidth.copy_gbps},
        {"bandwidth_fraction", ratio},
        {"major_page_faults", page_ins},
        {"rss_file_bytes", memory.rss_file},
        {"rss_anon_bytes", memory.rss_anon},
        {"expert_cache_bytes", model.experts() != nullptr ? model.experts()->allocated_bytes() : 0},
        {"expert_slots_per_layer", model.experts() != nullptr ? model.experts()->layer_slots() : std::vector<std::int32_t>{}},
        {"expert_hit_rate", hit_rate},
        {"expert_misses", ex.misses},
        {"expert_prefetches", ex.prefetches},
        {"expert_prefetch_used", ex.prefetch_used},
        {"expert_disk_bytes_per_token", static_cast<double>(ex.bytes_read) / decoded},
        {"expert_wait_seconds", ex.wait_seconds},
        {"vram_expert_slots", vram_slots != nullptr ? vram_slots->total_slots() : 0},
        {"vram_hits", vram.hits},
        {"vram_prefetch_hits", vram.prefetch_hits},
        {"vram_misses", vram.misses},
        {"vram_direct", vram.direct},
        {"vram_cpu", vram.cpu},
        {"vram_copies", vram.copies},
    };
    fmt::print("{}\n", out.dump());
    return exit_ok;
  }
  const double gib = 1024.0 * 1024.0 * 1024.0;
  fmt::print("model            {} ({} layers, {:.2f} GiB of tensors)\n", model.weights_file().dir().string(),
             c.num_hidden_layers, static_cast<double>(model.weights_file().total_bytes()) / gib);
  fmt::print("threads          {} ({} kernels)\n", model.threads(), kernel_family());
  fmt::print("prefill          {:>10.1f} tokens/s   ({} tokens in {:.3f} s)\n", prefill_tps, prompt_tokens, prefill_s);
  fmt::print("decode           {:>10.2f} tokens/s   ({} tokens in {:.3f} s; mean of {} runs {:.2f} tokens/s)\n",
             decode_tps, tokens, decode_s, repeat, decode_mean_tps);
  fmt::print("weights/token    {:>10.1f} MB\n", bytes_per_token / 1e6);
  fmt::print("weight traffic   {:>10.2f} GB/s\n", weight_gbps);
  fmt::print("memory read      {:>10.2f} GB/s      (copy {:.2f} GB/s, {} MiB buffer)\n", bandwidth.read_gbps,
             bandwidth.copy_gbps, bandwidth.buffer_bytes >> 20);
  fmt::print("of bandwidth     {:>10.1f} %\n", 100.0 * ratio);
  fmt::print("page-ins         {:>10}        (major faults while timed)\n", page_ins);
  fmt::print("memory           {:>10.2f} GiB file-backed (mapped weights), {:.2f} GiB anonymous\n",
             static_cast<double>(memory.rss_file) / gib, static_cast<double>(memory.rss_anon) / gib);
  if (const engine::expert_store* store = model.experts()) {
    fmt::print("expert cache     {:>10.2f} GiB      ({} policy, prefetch {})\n",
               static_cast<double>(store->allocated_bytes()) / gib, store->options().policy,
               store->options().prefetch ? "on" : "off");
    fmt::print("slots per layer  {:>10}        (layer:slots; {:.2f} MB each)\n", engine::describe_slots(store->layer_slots()),
               static_cast<double>(store->expert_bytes()) / 1e6);
    fmt::print("expert hits      {:>10.1f} %        ({} hits, {} misses)\n", 100.0 * hit_rate, ex.hits, ex.misses);
    fmt::print("prefetch         {:>10}        issued, {} used before eviction\n", ex.prefetches, ex.prefetch_used);
    fmt::print("disk per token   {:>10.1f} MB\n", static_cast<double>(ex.bytes_read) / decoded / 1e6);
    fmt::print("compute waited   {:>10.3f} s        for expert reads ({:.0f}% of decode, all runs)\n", ex.wait_seconds,
               100.0 * ex.wait_seconds / decode_total_s);
  }
  if (vram_slots != nullptr) {
    const std::uint64_t uses = vram.hits + vram.misses + vram.direct;
    fmt::print("VRAM experts     {:>10}        slots of {:.2f} MB\n", vram_slots->total_slots(),
               static_cast<double>(pass->expert_slot_bytes()) / 1e6);
    fmt::print("VRAM hits        {:>10.1f} %        ({} hits, {} of them prefetched; misses: {} given a slot, {} with none free)\n",
               uses > 0 ? 100.0 * static_cast<double>(vram.hits) / static_cast<double>(uses) : 0.0, vram.hits,
               vram.prefetch_hits, vram.misses, vram.direct);
    fmt::print("CPU tier         {:>10}        misses computed on the CPU ({} copies issued)\n", vram.cpu, vram.copies);
  }
  return exit_ok;
}

}  // namespace qcoder::cli
