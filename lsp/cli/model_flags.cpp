// Shared model flags and model loading for the commands.
#include "lsp/cli/model_flags.h"

#include <charconv>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "engine/model/device_forward.h"
#include "engine/model_locator.h"

namespace qcoder::cli {

void model_flags::add_to(arg_parser& parser) {
  parser.option("model", "DIR", "model folder; default: the Hugging Face cache (see `qcoder info`)", &model);
  parser.option("backend", "NAME",
                "where the model runs: cpu (default), cuda (an NVIDIA GPU), cuda-emu (the CUDA kernels on\n"
                "                     the CPU emulator: slow, for checking them); for lsp, refactor and bench lsp also\n"
                "                     the URL of an OpenAI-compatible server (vLLM, SGLang, llama-server, qcoder serve),\n"
                "                     e.g. http://gpu-box:8000/v1: only the tokenizer is then needed locally",
                &backend);
  parser.option("threads", "N", "compute threads; 0 = one per hardware thread", &threads);
  parser.flag("mlock", "lock the weights in RAM so the OS never pages them out", &mlock);
  parser.option("batch", "N", "prompt tokens per forward chunk (prefill)", &batch);
  parser.option("expert-cache-ram", "SIZE",
                "RAM for routed experts (e.g. 512MiB, 8GiB), read from the checkpoint on demand; 'auto' sizes it\n"
                "                     from free memory; 'none' uses them straight from the mapped files. On a GPU (with\n"
                "                     --expert-cache-vram) it is the pinned host tier under the VRAM one",
                &expert_cache_ram);
  parser.option("expert-layer-budget", "SPEC",
                "per-layer share of --expert-cache-ram, e.g. 0-11=256MiB,40=1GiB (each layer of a range gets\n"
                "                     the size); the layers not named split the rest equally",
                &expert_layer_budget);
  parser.option("expert-cache-vram", "SIZE",
                "with --backend cuda: GPU memory for routed experts (e.g. 4GiB); the others stay in host memory\n"
                "                     and are copied in on demand or read in place; 'none' uploads every expert",
                &expert_cache_vram);
  parser.option("expert-vram-layer-budget", "SPEC",
                "per-layer share of --expert-cache-vram, in --expert-layer-budget's form", &expert_vram_layer_budget);
  parser.option("expert-cpu-misses", "MODE",
                "with --expert-cache-vram: compute an expert that is in no VRAM slot on the CPU instead of copying\n"
                "                     it: auto (when measured faster: few rows, slow copies), never, always",
                &expert_cpu_misses);
  parser.option("expert-policy", "NAME", "expert cache replacement policy (RAM and VRAM)", &expert_policy);
  parser.flag("no-prefetch", "do not prefetch the next layer's predicted experts (RAM and VRAM)", &no_prefetch);
  parser.flag("no-direct-io", "read experts through the page cache (pread + DONTNEED), not with O_DIRECT", &no_direct_io);
  parser.option("trace-routing", "FILE", "write every token's expert choices (for `bench expert-cache --trace`)",
                &trace_routing);
  parser.option("stats-json", "FILE", "write the expert cache's per-layer statistics at exit", &stats_json);
}

// Bytes of RAM for the expert cache: 0 means none (experts used from the mapped files).
result<std::uint64_t> model_flags::expert_budget(const std::filesystem::path& dir) const {
  if (expert_cache_ram == "none") return std::uint64_t{0};
  if (expert_cache_ram != "auto") {
    QCODER_TRY(std::uint64_t bytes, parse_size(expert_cache_ram));
    if (bytes == 0) return fail(errc::invalid_argument, "--expert-cache-ram 0: use 'none' to read experts from the mapped files");
    return bytes;
  }
  // auto: what the system has available, less room for the resident weights, the prefix cache and the OS.
  const std::uint64_t available = available_memory_bytes();
  std::uint64_t weights = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".safetensors") weights += entry.file_size(ec);
  }
  const std::uint64_t reserve = (3ull << 30) + weights / 8;  // OS, prefix cache, activations; resident ≈ 4% of the model
  if (available <= reserve) return std::uint64_t{1};  // the smallest cache: one expert per layer
  return available - reserve >= weights ? std::uint64_t{0} : available - reserve;
}

bool model_flags::remote() const { return backend != "cpu" && backend != "cuda" && backend != "cuda-emu"; }

result<std::unique_ptr<engine::qwen3_next>> model_flags::load() const {
  if (batch < 1) return fail(errc::invalid_argument, "--batch must be ≥ 1 (got {})", batch);
  if (remote()) {
    if (backend.find("://") == std::string::npos) QCODER_CHECK(engine::parse_compute_device(backend));
    return fail(errc::invalid_argument, "--backend {}: this command runs the model here (cpu, cuda or cuda-emu)", backend);
  }
  QCODER_TRY(engine::located_model where, engine::locate_model(engine::model_search::from_environment(model)));
  spdlog::info("loading model from {} ({})", where.dir.string(), where.source);
  engine::model_options options;
  QCODER_TRY(options.device, engine::parse_compute_device(backend));
  QCODER_TRY(options.experts.ram_budget, expert_budget(where.dir));
  if (!expert_layer_budget.empty()) {
    if (options.experts.ram_budget == 0) {
      return fail(errc::invalid_argument, "--expert-layer-budget needs --expert-cache-ram SIZE or auto");
    }
    QCODER_TRY(options.experts.layer_budgets, parse_layer_budgets(expert_layer_budget));
  }
  if (expert_cache_vram != "none") {
    QCODER_TRY(options.device_experts.vram_budget, parse_size(expert_cache_vram));
    if (options.device_experts.vram_budget == 0) {
      return fail(errc::invalid_argument, "--expert-cache-vram 0: use 'none' to upload every expert");
    }
  }
  if (!expert_vram_layer_budget.empty()) {
    if (options.device_experts.vram_budget == 0) {
      return fail(errc::invalid_argument, "--expert-vram-layer-budget needs --expert-cache-vram SIZE");
    }
    QCODER_TRY(options.device_experts.layer_budgets, parse_layer_budgets(expert_vram_layer_budget));
  }
  QCODER_TRY(options.device_experts.cpu_misses, engine::parse_cpu_misses(expert_cpu_misses));
  options.device_experts.policy = expert_policy;
  options.device_experts.prefetch = !no_prefetch;
  options.experts.policy = expert_policy;
  options.experts.prefetch = !no_prefetch;
  options.experts.direct_io = !no_direct_io;
  options.routing_trace_path = trace_routing;
  options.stats_json_path = stats_json;
  options.threads = threads;
  options.mlock = mlock;
  options.max_batch = batch;
  return engine::qwen3_next::load(where.dir, options);
}

result<std::vector<engine::layer_budget>> parse_layer_budgets(std::string_view spec) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
  };
  auto layer_number = [](std::string_view s, std::int64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size() && out >= 0;
  };
  std::vector<engine::layer_budget> out;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string_view item = trim(spec.substr(start, comma - start));
    start = comma + 1;
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return fail(errc::invalid_argument, "--expert-layer-budget: '{}' is not LAYER=SIZE or FIRST-LAST=SIZE (e.g. 0-11=256MiB)",
                  item);
    }
    const std::string_view layers = trim(item.substr(0, eq));
    const std::size_t dash = layers.find('-');
    engine::layer_budget b;
    const bool ok = dash == std::string_view::npos
                        ? layer_number(layers, b.first) && layer_number(layers, b.last)
                        : layer_number(trim(layers.substr(0, dash)), b.first) && layer_number(trim(layers.substr(dash + 1)), b.last);
    if (!ok) return fail(errc::invalid_argument, "--expert-layer-budget: '{}' is not a layer or a range of layers", layers);
    if (b.first > b.last) return fail(errc::invalid_argument, "--expert-layer-budget: the range '{}' is backwards", layers);
    result<std::uint64_t> bytes = parse_size(trim(item.substr(eq + 1)));
    if (!bytes) return fail(errc::invalid_argument, "--expert-layer-budget: layer {}: {}", layers, bytes.err().message);
    b.bytes = *bytes;
    out.push_back(b);
  }
  return out;
}

std::uint64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kb = 0;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

result<std::vector<std::int32_t>> parse_ids(std::string_view text) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i == text.size()) break;
    std::int32_t id = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), id);
    if (ec != std::errc() || id < 0) {
      return fail(errc::invalid_argument, "--ids: '{}' is not a list of token ids (expected e.g. 1,2,3)", text);
    }
    ids.push_back(id);
    i = static_cast<std::size_t>(end - text.data());
    if (i < text.size() && text[i] != ',' && text[i] != ' ') {
      return fail(errc::invalid_argument, "--ids: unexpected '{}' in '{}'", text[i], text);
    }
  }
  if (ids.empty()) return fail(errc::invalid_argument, "--ids: no token ids given");
  return ids;
}

}  // namespace qcoder::cli
