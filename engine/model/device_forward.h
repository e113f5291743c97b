// The forward pass of qwen3_next on a CUDA device: every weight uploaded once at load, every activation in
// device memory, every op a kernel launch on one stream (kernels/cuda/), and the host only queueing work,
// uploading the chunk's token ids and row layout, and reading back logits. Two builds of one implementation
// (device_forward_impl.inc): on the real CUDA runtime (`--backend cuda`, when built with nvcc) and on the
// emulator (`--backend cuda-emu`), which runs the same kernel sources on the CPU so the whole model can be
// checked against the CPU backend on machines without a GPU.
//
// Sequence memory (K/V rows, conv and delta-rule state) must be reachable by the kernels and by the host (the
// prefix cache and speculative rollback read and write it): states are made with state_memory(), managed
// memory on a GPU. Thread-safety: as qwen3_next (one inference thread).
#pragma once

#include <memory>
#include <memory_resource>
#include <span>
#include <stop_token>
#include <string_view>

#include "engine/model/qwen3_next.h"

namespace qcoder::engine {

result<compute_device> parse_compute_device(std::string_view name);  // "cpu", "cuda", "cuda-emu"
std::string_view compute_device_name(compute_device device);
// Whether this build can run `device` at all (cuda: compiled with nvcc; cuda-emu: built with the emulator).
bool compute_device_built(compute_device device);

class device_forward {
 public:
  using segment = chunk_segment;

  virtual ~device_forward() = default;
  // Where sequence states for this device are allocated.
  virtual std::pmr::memory_resource* state_memory() = 0;
  // One chunk of n rows (≤ the max_batch given at creation) over `segments` in row order; logits as
  // qwen3_next::forward_chunk writes them. Does not advance the states (the caller does on success).
  virtual result<void> forward_chunk(std::span<const segment> segments, std::int64_t n, float* logits,
                                     const std::stop_token& stop) = 0;
  // Bytes of device memory held for weights, expert slots and activations.
  virtual std::int64_t device_bytes() const = 0;
  // The VRAM expert tier's slots and counts; null when every expert is resident.
  virtual const device_expert_slots* expert_slots() const = 0;
  // Bytes of one VRAM expert slot (0 without the tier): a budget of N × this gives N slots.
  virtual std::uint64_t expert_slot_bytes() const = 0;
  // Decode graphs captured (once per shape) and launched so far.
  virtual std::int64_t graph_captures() const = 0;
  virtual std::int64_t graph_launches() const = 0;
};

// How the device forward pass keeps its experts and runs its decode steps.
struct device_forward_options {
  // experts.vram_budget > 0: the routed experts stay in host memory (the host tier) and a bounded pool of
  // VRAM slots per layer caches them (the device tier; see device_forward_impl.inc).
  device_expert_options experts;
  // Decode steps are captured as graphs once per shape and replayed (else every kernel is queued each time).
  // Off with a bounded host tier: a graph step cannot wait for an expert that is only on disk.
  bool decode_graphs = true;
  // The bounded host tier under the VRAM slots: its arena is pinned and mapped for the device, and the
  // experts a layer misses are read from disk into it first. Null: the host tier is the mapped checkpoint,
  // all of it pinned. Needs experts.vram_budget > 0. Not owned; outlives the forward pass.
  expert_store* host_store = nullptr;
  // The CPU tier (experts.cpu_misses): the CPU kernels that may compute misses. Not owned.
  backend* cpu = nullptr;
};

// Uploads the weights and allocates the activations for chunks of up to max_batch rows. `weights` must
// outlive the forward pass (the CPU tier reads experts through it).
result<std::unique_ptr<device_forward>> make_device_forward(compute_device device, const model_config& config,
                                                            const qwen3_next_weights& weights, std::int64_t max_batch,
                                                            const device_forward_options& options);

}  // namespace qcoder::engine
