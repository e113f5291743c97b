// What one decode step costs, in bytes and FLOPs per kernel, taken from the device forward pass itself:
// device_forward_impl.inc compiled a third time against the cost kernels (kernels/cuda/cost/), which
// launch nothing and record each launch. So the byte counts come from the code that launches the kernels,
// not from a table of the model's tensors.
//
// The weights need not exist: shape_only_weights() describes a model's tensors (shapes, dtypes, FP8 block
// scales) with host pointers that are never dereferenced, so the real 80 GB model can be costed on a
// laptop. Bound weights of a real checkpoint work as well (their bytes are not read either).
//
// Thread-safety: plain functions; each call uses its own recorder.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/qwen3_next_weights.h"
#include "engine/model_config.h"
#include "kernels/cuda/cost/cost_recorder.h"

namespace qcoder::engine {

// A qwen3_next_weights with every tensor of `config` (FP8 with block scales when config.quant.fp8, the
// modules of quant.modules_to_not_convert, or the published FP8 checkpoint's list when that is empty, in
// BF16; BF16 otherwise) and distinct, non-null host pointers that must never be dereferenced.
qwen3_next_weights shape_only_weights(const model_config& config);

// Bytes of one routed expert (its three projections) and of all routed experts of the model.
std::int64_t expert_bytes(const qwen3_next_weights& weights);
std::int64_t all_expert_bytes(const qwen3_next_weights& weights);

struct decode_cost {
  std::int64_t batch = 1;
  std::int64_t context = 0;                        // tokens each sequence held before the step
  std::vector<cuda_cost::launch_record> launches;  // one decode step, in launch order, layer filled in
  std::int64_t device_bytes = 0;    // allocated at load: every weight (all experts too) and the activations
  std::int64_t state_bytes = 0;     // the sequences' KV and recurrent state (capacity context + 1 each)
  std::int64_t expert_bytes = 0;    // one routed expert
  std::int64_t all_expert_bytes = 0;
  std::int64_t layers = 0;          // decoder layers
  std::int64_t moe_layers = 0;
  std::int64_t experts = 0;         // per MoE layer
  std::int64_t top_k = 0;

  // Device memory that is not routed experts: resident weights and activations.
  std::int64_t resident_device_bytes() const { return device_bytes - all_expert_bytes; }
  // Sums over the launches.
  std::int64_t weight_bytes() const;         // matrices and embedding rows (resident)
  std::int64_t vector_bytes() const;         // small weight vectors
  std::int64_t routed_bytes() const;         // routed experts as the kernels read them
  std::int64_t activation_bytes() const;
  std::int64_t state_traffic_bytes() const;  // KV / recurrent state read and written
};

// Runs one decode step of `batch` sequences, each already `context` tokens long, through the cost build
// of the device forward pass.
result<decode_cost> cost_of_decode(const model_config& config, const qwen3_next_weights& weights, std::int64_t batch,
                                   std::int64_t context);

}  // namespace qcoder::engine
