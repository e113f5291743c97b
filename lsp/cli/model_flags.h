// The flags every command that runs the model accepts (--model, --threads, --mlock, ...) and loading the
// model from them. One place, so every command offers the same set with the same meaning.
// Not thread-safe; used on the main thread at start-up.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/qwen3_next.h"
#include "lsp/cli/arg_parser.h"

namespace qcoder::cli {

struct model_flags {
  std::string model;  // empty: the Hugging Face cache
  // cpu, cuda, cuda-emu, or (commands with remote_flags) a server URL
  std::string backend = "cpu";
  int threads = 0;
  bool mlock = false;
  int batch = 256;
  std::string expert_cache_ram = "none";  // SIZE, "auto" or "none"
  std::string expert_layer_budget;        // SPEC: "0-11=256MiB,40=1GiB", each named layer's share of the above
  std::string expert_policy = "lru";
  std::string expert_cache_vram = "none";  // SIZE or "none" (--backend cuda / cuda-emu)
  std::string expert_vram_layer_budget;    // SPEC, each named layer's share of the above
  std::string expert_cpu_misses = "auto";  // where VRAM misses are computed: auto, never, always
  bool no_prefetch = false;
  bool no_direct_io = false;
  std::string trace_routing;  // FILE: the routing of every token, written at exit
  std::string stats_json;     // FILE: expert cache statistics per layer, written at exit

  void add_to(arg_parser& parser);
  // Whether --backend names a server rather than local kernels.
  bool remote() const;
  result<std::unique_ptr<engine::qwen3_next>> load() const;
  result<std::uint64_t> expert_budget(const std::filesystem::path& model_dir) const;
};

// Parses a per-layer expert budget SPEC: comma-separated items LAYER=SIZE or FIRST-LAST=SIZE (each layer of
// the range gets SIZE), e.g. "0-11=256MiB,40=1GiB"; spaces around items allowed. Checks the syntax only
// (which layers exist is the expert store's to check).
result<std::vector<engine::layer_budget>> parse_layer_budgets(std::string_view spec);

// MemAvailable from /proc/meminfo, in bytes (0 when it cannot be read): what `auto` budgets size from.
std::uint64_t available_memory_bytes();

// Parses "1,2,3" (spaces allowed) into token ids.
result<std::vector<std::int32_t>> parse_ids(std::string_view text);

}  // namespace qcoder::cli
