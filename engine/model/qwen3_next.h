// Qwen3-Next (Qwen3-Coder-Next): the model, loaded from a Hugging Face checkpoint, and its forward pass on
// the CPU backend.
//
// A forward call appends tokens to a sequence_state and produces logits. Prompts run in chunks of up to
// `max_batch` tokens (matrix-shaped work); decode is a chunk of one. All activation buffers are allocated
// at load; the forward pass allocates nothing.
// Thread-safety: one inference thread owns the model and calls forward(); the weights are immutable.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <stop_token>

#include "engine/checkpoint.h"
#include "engine/experts/device_expert_slots.h"
#include "engine/experts/expert_store.h"
#include "engine/experts/routing_trace.h"
#include "engine/memory/sequence_state.h"
#include "engine/model/qwen3_next_weights.h"
#include "engine/model_config.h"
#include "kernels/common/weight_arena.h"
#include "kernels/cpu/cpu_backend.h"

namespace qcoder::engine {

// Which kernels a model runs on: the CPU backend, or the CUDA kernels on a GPU or on the emulator.
enum class compute_device { cpu, cuda, cuda_emu };

struct model_options {
  compute_device device = compute_device::cpu;  // where the forward pass runs (see device_forward.h)
  int threads = 0;              // 0: one per hardware thread
  std::int64_t max_batch = 256;  // tokens per prefill chunk (bigger chunks share each expert read among more tokens)
  bool mlock = false;           // keep the mapped weights resident
  // Routed experts: with experts.ram_budget > 0 they are read into a bounded cache instead of being used
  // from the mapped files (see expert_store).
  expert_store_options experts;
  // On a CUDA device: a VRAM budget for the routed experts (see device_expert_slots.h); zero uploads all.
  device_expert_options device_experts;
  // On a CUDA device: decode steps run as graphs captured once per shape (see device_forward_impl.inc).
  bool decode_graphs = true;
  // Files written when the model is destroyed: the routing of every token (for `bench expert-cache
  // --trace`) and the expert cache's per-layer statistics. Empty: not written.
  std::string routing_trace_path;
  std::string stats_json_path;
};

enum class logits_mode {
  none,  // only update the state
  last,  // logits of the last token: [vocab]
  all,   // logits of every token: [n, vocab]
};

// One sequence's part of a batched forward pass (qwen3_next::forward_batch).
struct sequence_step {
  std::span<const std::int32_t> tokens;  // at least one
  sequence_state* state = nullptr;
  logits_mode mode = logits_mode::none;
};

// A chunk's rows, sequence by sequence: a segment owns rows [row, row + step.tokens.size()).
struct chunk_segment {
  std::int64_t row = 0;
  sequence_step step;
};

class device_forward;

class qwen3_next {
 public:
  static result<std::unique_ptr<qwen3_next>> load(const std::filesystem::path& dir, const model_options& options);
  ~qwen3_next();

  const model_config& config() const { return config_; }
  const checkpoint& weights_file() const { return checkpoint_; }
  int threads() const { return backend_.threads(); }
  // Bytes of weights one decoded token reads (chosen experts only).
  std::int64_t weight_bytes_per_token() const { return weights_.bytes_per_token(config_); }

  // A state whose memory this model's compute device can reach.
  sequence_state new_state(std::int64_t capacity_tokens) const;
  compute_device device() const { return options_.device; }
  // The expert cache, or nullptr when the experts are used from the mapped files.
  const expert_store* experts() const { return store_.get(); }
  // The forward pass on a CUDA device (its VRAM expert tier, device memory); null on the CPU.
  const device_forward* device_forward_pass() const { return device_.get(); }
  // Bytes of resident weights copied into process memory (0 without the expert cache).
  std::uint64_t owned_resident_bytes() const { return resident_bytes_; }

  // Runs `tokens` after what `state` holds and writes logits per `mode`. Errors: a token id out of range,
  // the state's capacity exceeded (nothing is changed), or cancellation through `stop` (checked between
  // layers; the state is then reset, since some layers saw the chunk and others did not), or an expert that
  // could not be read (the state is reset too).
  result<void> forward(std::span<const std::int32_t> tokens, sequence_state& state, float* logits, logits_mode mode,
                       std::stop_token stop = {});

  // Several sequences in one pass: every token row goes through the same matmuls, so each weight read
  // serves all of them, and each sequence's rows attend only to its own memory. A row's result is bit for
  // bit what forward() gives it alone. Logits go to `logits` in step order: one row for mode `last`, one
  // per token for `all`, none for `none`. At most max_batch() tokens in all, and no state twice. Errors as
  // forward(): nothing changes when the input is refused; after a cancellation or a failed expert read
  // every state of the batch is reset.
  result<void> forward_batch(std::span<const sequence_step> steps, float* logits, std::stop_token stop = {});
  std::int64_t max_batch() const;

 private:
  struct buffers;
  qwen3_next(checkpoint ckpt, model_config config, qwen3_next_weights weights, const model_options& options);

  using segment = chunk_segment;
  result<void> check_step(const sequence_step& step) const;
  void reserve_scores(std::int64_t capacity);
  result<void> forward_chunk(std::span<const segment> segments, std::int64_t n, float* logits,
                             const std::stop_token& stop);
  void attention_block(const layer_weights& layer, std::int64_t layer_index, std::int64_t n,
                       std::span<const segment> segments);
  void deltanet_block(const layer_weights& layer, std::int64_t layer_index, std::int64_t n,
                      std::span<const segment> segments);
  result<void> moe_block(const moe_weights& moe, std::int64_t layer_index, std::int64_t n);
  // Top-k of layer `layer_index`'s router on the current normalised hidden state: the experts that layer
  // will probably want, for prefetch.
  void predict_experts(std::int64_t layer_index, std::vector<std::int32_t>& out);
  void dense_block(const mlp_weights& mlp, std::int64_t n);

  checkpoint checkpoint_;
  model_config config_;
  qwen3_next_weights weights_;
  model_options options_;
  cpu::cpu_backend backend_;
  // With the expert cache, the resident weights (everything but routed experts) are copied into this
  // arena at load: memory the process owns stays warm when the process idles, and the model files are
  // then only read through the store, so a shard truncated under us is an error, never a SIGBUS.
  result<void> copy_resident_weights(bool lock);

  std::unique_ptr<buffers> buf_;
  // The store before the device pass: the pass pins the store's arena and reads it until it is destroyed.
  std::unique_ptr<expert_store> store_;
  std::unique_ptr<device_forward> device_;  // the forward pass on a CUDA device; null on the CPU
  weight_arena resident_;
  // Routing trace (with options_.routing_trace_path): the chunk's choices per MoE layer are buffered, then
  // appended token by token when the chunk is done.
  void record_routing(std::int64_t n);
  void write_reports() const;
  std::unique_ptr<routing_trace> trace_;
  std::vector<std::int32_t> moe_ordinal_;      // layer → index among MoE layers, -1 for dense layers
  std::vector<std::int32_t> chunk_routes_;     // [moe layers, max_batch, k]
  std::vector<std::int32_t> chunk_predicted_;  // [moe layers, k] (decode only), -1 when none
  std::uint64_t traced_tokens_ = 0;
  std::uint64_t resident_bytes_ = 0;
};

}  // namespace qcoder::engine
