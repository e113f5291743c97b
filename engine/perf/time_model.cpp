// The time model (time_model.h): the card table with the sources of its figures, the few constants for
// GPUs with theirs, and the prediction.
#include "engine/perf/time_model.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include "engine/experts/cache_replay.h"

namespace qcoder::engine {
namespace {

constexpr double gib = 1024.0 * 1024.0 * 1024.0;

// --- constants for GPUs, each with where it comes from -------------------------------------------------

// Achieved fraction of peak memory bandwidth for streaming weight reads. Published H100 SXM measurements:
// coalesced matrix loads 2.8 TB/s (84%) and MLP weight loads 2.6 TB/s (78%) of 3.35 TB/s under Nsight
// Compute (mikamirai.com/blog/gpu-memory-bandwidth, 2026); a STREAM triad reaches 3.09 TB/s (92%). 0.80 is
// the weight-load figure rounded; GDDR6/6X cards reach similar fractions in the same kind of test.
constexpr double gpu_bandwidth_efficiency = 0.80;
// Achieved fraction of the PCIe link by pinned host-to-device copies: 25 GB/s measured peak on a PCIe 4.0
// x16 link of 32 GB/s (A100; github.com/ZaidQureshi/bam issue 54, the maintainer: "it is measured peak").
constexpr double pcie_efficiency = 0.78;
// Launch costs, measured on an RTX 5070 Ti laptop, CUDA 13 (github.com/ahrefs/ocannl issue 488): ~6.4 µs
// per kernel launched one by one from the host; a replayed graph ~15 µs fixed plus ~0.58 µs per node.
constexpr double eager_launch_s = 6.4e-6;
constexpr double graph_node_s = 0.58e-6;
constexpr double graph_launch_s = 15e-6;
// Device memory the budget cannot use: the CUDA context, the driver and the display. An assumption (an
// idle CUDA context takes a few hundred MiB under nvidia-smi), not a measurement.
constexpr double cuda_context_reserve_bytes = 0.5 * gib;

// The disk under a bounded host tier: a PCIe 3.0 x4 NVMe drive's sequential read (Samsung 970 EVO Plus spec
// sheet: 3,500 MB/s); the expert reads are 3.1 MB each with 2 in flight, taken to reach it. An assumption for
// the user's machine (`--ssd-gbps`), not a measurement.
constexpr double default_ssd_gbps = 3.5;
// The CPU tier's weight rate: this machine's measured FP8 matmul rate on 2 threads (cpu_card below), for a
// user's CPU that has more cores a low figure (`--host-gbps`).
constexpr double default_host_gbps = 27;

// PCIe one direction, x16: 4.0 is 16 GT/s × 16 lanes × 128/130 / 8 = 31.5 GB/s; 5.0 twice that (PCI-SIG).
constexpr double pcie4_x16_gbps = 31.5;
constexpr double pcie5_x16_gbps = 63.0;

card gpu(std::string name, std::string description, double memory_gbps, double link_gbps, double vram_gib,
         int copy_engines, double peak_tflops, std::string source) {
  card c;
  c.name = std::move(name);
  c.description = std::move(description);
  c.memory_gbps = memory_gbps;
  c.link_gbps = link_gbps;
  c.memory_bytes = static_cast<std::uint64_t>(vram_gib * gib);
  c.copy_engines = copy_engines;
  c.peak_tflops = peak_tflops;
  c.bandwidth_efficiency = gpu_bandwidth_efficiency;
  c.link_efficiency = pcie_efficiency;
  c.launch_eager_s = eager_launch_s;
  c.launch_graph_s = graph_node_s;
  c.graph_launch_s = graph_launch_s;
  c.source = std::move(source);
  return c;
}

// Spec-sheet figures (NVIDIA product pages and the GPU's datasheet): memory bandwidth = data rate × bus
// width; FP32 = CUDA cores × 2 × boost clock. Copy engines as deviceQuery reports them (GeForce: 2); they
// only decide how many copies share the link at once.
const std::array<card, 5> table = {
    gpu("rtx3070ti-8g", "GeForce RTX 3070 Ti Laptop, 8 GB GDDR6, PCIe 4.0 x16", 448, pcie4_x16_gbps, 8, 2, 17.8,
        "NVIDIA RTX 3070 Ti Laptop spec: 14 Gbps GDDR6 × 256-bit = 448 GB/s, 5888 CUDA cores at up to 1.51 GHz"),
    gpu("rtx4070-12g", "GeForce RTX 4070, 12 GB GDDR6X, PCIe 4.0 x16", 504, pcie4_x16_gbps, 12, 2, 29.1,
        "NVIDIA RTX 4070 spec: 21 Gbps GDDR6X × 192-bit = 504 GB/s, 5888 CUDA cores at 2.48 GHz"),
    gpu("rtx4090-24g", "GeForce RTX 4090, 24 GB GDDR6X, PCIe 4.0 x16", 1008, pcie4_x16_gbps, 24, 2, 82.6,
        "NVIDIA RTX 4090 spec: 21 Gbps GDDR6X × 384-bit = 1008 GB/s, 16384 CUDA cores at 2.52 GHz"),
    gpu("h100", "H100 SXM5, 80 GB HBM3, PCIe 5.0 x16 to the host", 3350, pcie5_x16_gbps, 80, 3, 67,
        "NVIDIA H100 datasheet (SXM5): 3.35 TB/s HBM3, 80 GB, 67 TFLOPS FP32, PCIe Gen5"),
    gpu("h200", "H200 SXM, 141 GB HBM3e, PCIe 5.0 x16 to the host", 4800, pcie5_x16_gbps, 141.0 * 1e9 / gib, 3, 67,
        "NVIDIA H200 datasheet (SXM): 4.8 TB/s HBM3e, 141 GB, 67 TFLOPS FP32, PCIe Gen5"),
};

// This machine's CPU, measured on the development machine (2 shared cores, a shared virtual disk) on
// 2026-12-05 with the slice FP8 checkpoint (4 layers, real dimensions):
//   - memory: `bench decode` measures reads at 59 GB/s (2 threads; 26-59 GB/s from run to run);
//   - per-kernel cost: `bench decode --expert-cache-ram 7GiB` (every expert resident) decodes 898 MB of
//     weights per token at 27 GB/s (30.1 tokens/s, best of 3): the CPU dequantises FP8 and BF16 as it
//     multiplies, so its matmuls are bound by compute, not memory, and this rate (which includes the
//     per-op overhead of the thread pool) takes the place of bandwidth × efficiency and launch costs for
//     the weight reads;
//   - disk: random O_DIRECT reads of one expert (3.1 MB) from the checkpoint give 1.5-2.0 GB/s with one or
//     two readers (the shared disk varies: 0.4-0.65 GB/s in earlier sessions, see
//     lsp/cli/bench_expert_cache_command.cpp); the engine reads with 2 loader threads.
// Each figure can be replaced by a flag of `bench gpu-model` when the machine measures otherwise.
card cpu_card() {
  card c;
  c.name = "cpu";
  c.description = "this machine's CPU (figures measured on the development machine)";
  c.memory_gbps = 59;
  c.link_gbps = 1.8;
  c.link_one_gbps = 1.8;
  c.memory_bytes = 0;
  c.copy_engines = 2;
  c.peak_tflops = 0;
  c.cpu = true;
  c.bandwidth_efficiency = 1.0;  // the figures above are already what the CPU achieves
  c.link_efficiency = 1.0;       // likewise for the disk
  c.launch_eager_s = 0;          // inside the measured weight rate
  c.launch_graph_s = 0;
  c.graph_launch_s = 0;
  c.fp8_matmul_gbps = 27;
  c.bf16_matmul_gbps = 27;
  c.source = "measured on the development machine (bench decode all resident, O_DIRECT expert reads)";
  return c;
}

result<double> parse_number(std::string_view key, std::string_view text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || text.empty()) return fail(errc::invalid_argument, "custom card: {}={}: not a number", key, text);
  if (end != text.data() + text.size()) {
    const std::string_view unit = text.substr(static_cast<std::size_t>(end - text.data()));
    if (key != "vram") return fail(errc::invalid_argument, "custom card: {}={}: a number of GB/s, without a unit", key, text);
    if (unit == "GiB" || unit == "G") return v;
    if (unit == "GB") return v * 1e9 / gib;
    if (unit == "MiB") return v / 1024.0;
    return fail(errc::invalid_argument, "custom card: vram={}: the unit must be GiB, GB or MiB", text);
  }
  if (!(v > 0) || !std::isfinite(v)) return fail(errc::invalid_argument, "custom card: {}={}: must be positive", key, text);
  return v;
}

result<card> parse_custom(std::string_view spec) {
  card c = gpu("custom", "", 0, 0, 0, 2, 0, "given on the command line");
  double vram_gib = 0;
  while (!spec.empty()) {
    const std::size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return fail(errc::invalid_argument, "custom card: '{}': expected key=value (bw, pcie, vram, copy-engines, tflops, name)", item);
    }
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "name") {
      c.name = std::string(value);
      continue;
    }
    QCODER_TRY(const double v, parse_number(key, value));
    if (key == "bw") {
      c.memory_gbps = v;
    } else if (key == "pcie") {
      c.link_gbps = v;
    } else if (key == "vram") {
      vram_gib = v;
    } else if (key == "copy-engines") {
      c.copy_engines = std::max(1, static_cast<int>(v));
    } else if (key == "tflops") {
      c.peak_tflops = v;
    } else {
      return fail(errc::invalid_argument, "custom card: unknown key '{}' (bw, pcie, vram, copy-engines, tflops, name)", key);
    }
  }
  if (c.memory_gbps <= 0 || c.link_gbps <= 0 || vram_gib <= 0) {
    return fail(errc::invalid_argument, "custom card: bw=GBPS, pcie=GBPS and vram=SIZE are all required, e.g. "
                                        "custom:bw=448,pcie=31.5,vram=8GiB");
  }
  c.memory_bytes = static_cast<std::uint64_t>(vram_gib * gib);
  c.description = "custom card";
  return c;
}

// Which of a launch's bytes take how long.
struct kernel_time {
  double weights = 0, routed = 0, state = 0, activations = 0, launch = 0;
  double total() const { return weights + routed + state + activations + launch; }
};

kernel_time time_of(const cuda_cost::launch_record& r, const card& c, bool graphs) {
  const double bw = c.memory_gbps * 1e9 * c.bandwidth_efficiency;
  double weight_rate = bw;
  if (c.cpu && (r.weight_bytes > 0 || r.routed_bytes > 0)) {
    if (r.weight_type == cuda::element_type::f8_e4m3 && c.fp8_matmul_gbps > 0) weight_rate = c.fp8_matmul_gbps * 1e9;
    if (r.weight_type == cuda::element_type::bf16 && c.bf16_matmul_gbps > 0) weight_rate = c.bf16_matmul_gbps * 1e9;
  }
  kernel_time t;
  t.weights = static_cast<double>(r.weight_bytes) / weight_rate + static_cast<double>(r.vector_bytes) / bw;
  t.routed = static_cast<double>(r.routed_bytes) / weight_rate;
  t.state = static_cast<double>(r.state_bytes) / bw;
  t.activations = static_cast<double>(r.activation_bytes) / bw;
  if (c.peak_tflops > 0) {
    const double compute = r.flops / (c.peak_tflops * 1e12);
    const double moved = t.weights + t.routed + t.state + t.activations;
    if (compute > moved) t.activations += compute - moved;  // FLOP-bound: the excess, counted apart
  }
  t.launch = graphs ? c.launch_graph_s : c.launch_eager_s;
  return t;
}

}  // namespace

std::span<const card> known_cards() { return table; }

result<card> parse_card(std::string_view spec) {
  if (spec == "cpu") return cpu_card();
  if (spec.starts_with("custom:")) return parse_custom(spec.substr(7));
  for (const card& c : table) {
    if (c.name == spec) return c;
  }
  std::string names;
  for (const card& c : table) names += c.name + ", ";
  return fail(errc::invalid_argument, "unknown card '{}': expected one of {}cpu, or custom:bw=GBPS,pcie=GBPS,vram=SIZE", spec, names);
}

result<prediction> predict(const decode_cost& cost, const card& c, const routing_trace& trace, const time_model_options& o) {
  if (c.memory_gbps <= 0 || c.link_gbps <= 0) return fail(errc::invalid_argument, "card {}: no bandwidth", c.name);
  prediction p;
  const double batch = static_cast<double>(cost.batch);
  // A bounded host tier (GPU cards) holds fewer slots per layer than experts; the engine then runs eager.
  const double per_expert_row = static_cast<double>(std::max<std::int64_t>(1, cost.moe_layers)) *
                                static_cast<double>(std::max<std::int64_t>(1, cost.expert_bytes));
  p.host_slots_per_layer = o.host_bytes > 0 && !c.cpu
                               ? std::min(static_cast<std::int64_t>(static_cast<double>(o.host_bytes) / per_expert_row), cost.experts)
                               : cost.experts;
  const bool bounded_host = p.host_slots_per_layer < cost.experts;
  const bool graphs = o.graphs && !c.cpu && !bounded_host;
  p.graphs = graphs;

  // Kernel times: the head (embedding, final norm, LM head) and each layer.
  kernel_time head, resident_layers;
  double routed_total = 0;
  std::vector<double> layer_s(static_cast<std::size_t>(cost.layers), 0.0);
  for (const cuda_cost::launch_record& r : cost.launches) {
    const kernel_time t = time_of(r, c, graphs);
    if (r.layer < 0 || r.layer >= cost.layers) {
      head.weights += t.weights;
      head.state += t.state;
      head.activations += t.activations;
      head.launch += t.launch;
      continue;
    }
    layer_s[static_cast<std::size_t>(r.layer)] += t.total();
    resident_layers.weights += t.weights;
    resident_layers.state += t.state;
    resident_layers.activations += t.activations;
    resident_layers.launch += t.launch;
    routed_total += t.routed;
  }
  if (graphs) head.launch += c.graph_launch_s;
  double layers_s = 0;
  for (double s : layer_s) layers_s += s;

  // What the budget leaves for routed experts.
  p.resident_bytes = cost.resident_device_bytes();
  p.state_bytes = cost.state_bytes;
  const double budget = o.budget_bytes > 0 ? static_cast<double>(o.budget_bytes) : static_cast<double>(c.memory_bytes);
  if (!c.cpu && budget <= 0) return fail(errc::invalid_argument, "card {}: no memory size and no budget", c.name);
  // The CPU's budget is the expert cache alone (--expert-cache-ram); none means every expert in memory.
  const double for_experts =
      c.cpu ? (budget > 0 ? budget : static_cast<double>(cost.all_expert_bytes))
            : budget - cuda_context_reserve_bytes - static_cast<double>(p.resident_bytes + p.state_bytes);
  const std::int64_t slots = for_experts > 0 ? static_cast<std::int64_t>(for_experts / per_expert_row) : 0;
  p.slots_per_layer = std::min(slots, cost.experts);
  p.all_resident = cost.moe_layers == 0 || p.slots_per_layer >= cost.experts;
  p.expert_cache_bytes = p.slots_per_layer * cost.moe_layers * cost.expert_bytes;
  p.ceiling_tokens_per_s =
      batch * c.memory_gbps * 1e9 / static_cast<double>(cost.weight_bytes() + cost.vector_bytes() + cost.routed_bytes());

  double stall_s = 0;
  double min_token_s = 0;  // with a bounded host tier: the disk's time for a token's reads
  double graph_in_place_s = 0;  // graph path: the misses' in-place reads over the link, per token
  if (!p.all_resident) {
    if (p.slots_per_layer < cost.top_k) {
      p.fits = false;
      p.why_not = for_experts <= 0
                      ? "the resident weights, activations and state alone do not fit"
                      : "room for fewer than top-k experts per layer";
      return p;
    }
    if (p.host_slots_per_layer < cost.top_k) {
      p.fits = false;
      p.why_not = "RAM for fewer than top-k experts per layer";
      return p;
    }
    if (trace.layers() != cost.moe_layers || trace.experts() != cost.experts) {
      return fail(errc::invalid_argument, "the routing trace has {} layers of {} experts; the model {} of {}", trace.layers(),
                  trace.experts(), cost.moe_layers, cost.experts);
    }
    replay_options r;
    r.policy = o.policy;
    r.slots = static_cast<std::int32_t>(p.slots_per_layer);
    r.prefetch = o.prefetch && trace.has_predictions() && !graphs;
    r.warmup_tokens = std::min(o.warmup_tokens, trace.tokens() / 2);
    r.timed = !graphs;
    r.timing.layer_compute_s = layers_s / static_cast<double>(std::max<std::int64_t>(1, cost.moe_layers));
    r.timing.disk_bytes_per_s = c.link_gbps * 1e9 * c.link_efficiency;
    r.timing.read_bytes_per_s = (c.link_one_gbps > 0 ? c.link_one_gbps : c.link_gbps) * 1e9 * c.link_efficiency;
    r.timing.expert_bytes = static_cast<std::uint64_t>(cost.expert_bytes);
    r.timing.loader_threads = c.copy_engines;
    // Below the VRAM: the CPU tier and the bounded host tier make a miss take longer or shorter than its
    // copy; the replay's link runs at the copy's speed scaled by that.
    const double bytes = static_cast<double>(cost.expert_bytes);
    const double copy_s = bytes / (c.link_gbps * 1e9 * c.link_efficiency);
    double miss_s = copy_s;
    if (!c.cpu && !graphs && o.cpu_misses) {
      const double cpu_s = bytes / ((o.host_gbps > 0 ? o.host_gbps : default_host_gbps) * 1e9);
      p.cpu_misses = cpu_s < copy_s;
      miss_s = std::min(copy_s, cpu_s);
    }
    if (bounded_host) {
      replay_options h = r;
      h.slots = static_cast<std::int32_t>(p.host_slots_per_layer);
      h.timed = false;
      replay_options v = r;
      v.timed = false;
      QCODER_TRY(const replay_result in_ram, replay_trace(trace, h));
      QCODER_TRY(const replay_result in_vram, replay_trace(trace, v));
      const double vram_miss_rate = 1.0 - in_vram.total.hit_rate();
      const double ram_miss_rate = 1.0 - in_ram.total.hit_rate();
      p.disk_fraction = vram_miss_rate > 0 ? std::min(1.0, ram_miss_rate / vram_miss_rate) : 0.0;
      const double ssd = (o.ssd_gbps > 0 ? o.ssd_gbps : default_ssd_gbps) * 1e9;
      miss_s += p.disk_fraction * bytes / ssd;
      const double ram_tokens = static_cast<double>(std::max<std::uint64_t>(1, in_ram.tokens));
      p.disk_bytes_per_token = static_cast<double>(in_ram.total.loads()) * bytes / ram_tokens * batch;
      min_token_s = p.disk_bytes_per_token / ssd;
    }
    r.timing.disk_bytes_per_s *= copy_s / miss_s;
    r.timing.read_bytes_per_s *= copy_s / miss_s;
    QCODER_TRY(const replay_result replay, replay_trace(trace, r));
    const double tokens = static_cast<double>(std::max<std::uint64_t>(1, replay.tokens));
    p.hit_rate = replay.total.hit_rate();
    p.misses_per_token = static_cast<double>(replay.total.misses) / tokens * batch;
    p.copy_bytes_per_token = static_cast<double>(replay.total.loads()) * static_cast<double>(cost.expert_bytes) / tokens * batch;
    stall_s = replay.total.wait_s / tokens * batch;
    if (graphs) {
      // The graph path (device_forward_impl.inc) schedules no copy inside a step: a miss is read in place
      // over the link by the expert kernel (on the critical path, instead of its read from VRAM) and copied
      // into its slot after the step for the later ones, so the link carries each miss twice per token.
      // The replay is untimed (a copy issued after a token lands before the next: what the tables assume).
      const double link_bytes_per_s = c.link_gbps * 1e9 * c.link_efficiency;
      const double in_place_s = static_cast<double>(replay.total.misses) * static_cast<double>(cost.expert_bytes) /
                                tokens * batch / link_bytes_per_s;
      graph_in_place_s = in_place_s;
    }
  }
  p.parts.resident_s = head.weights + resident_layers.weights;
  p.parts.expert_hit_s = routed_total * p.hit_rate;
  p.parts.expert_miss_s = routed_total * (1.0 - p.hit_rate);
  p.parts.state_s = head.state + resident_layers.state;
  p.parts.activation_s = head.activations + resident_layers.activations;
  p.parts.launch_s = head.launch + resident_layers.launch;
  if (graph_in_place_s > 0) {
    // In-place reads replace the misses' VRAM reads; and the token cannot take less than the link's time
    // for both passes of its misses.
    const double others = p.parts.resident_s + p.parts.expert_hit_s + p.parts.state_s + p.parts.activation_s +
                          p.parts.launch_s;
    const double with_reads = others + std::max(graph_in_place_s, p.parts.expert_miss_s);
    stall_s = std::max(0.0, std::max(with_reads, 2 * graph_in_place_s) - others - p.parts.expert_miss_s);
  }
  p.parts.copy_stall_s = stall_s;
  if (min_token_s > 0) {  // the disk bounds the token: any excess is time the compute waits for it
    const double sum = p.parts.resident_s + p.parts.expert_hit_s + p.parts.expert_miss_s + p.parts.copy_stall_s +
                       p.parts.state_s + p.parts.activation_s + p.parts.launch_s;
    p.parts.copy_stall_s += std::max(0.0, min_token_s - sum);
  }
  p.seconds_per_token = p.parts.resident_s + p.parts.expert_hit_s + p.parts.expert_miss_s + p.parts.copy_stall_s +
                        p.parts.state_s + p.parts.activation_s + p.parts.launch_s;
  p.tokens_per_s = batch / p.seconds_per_token;
  return p;
}

}  // namespace qcoder::engine
