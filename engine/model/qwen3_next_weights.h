// The weights of a Qwen3-Next model as views into the checkpoint's mappings (nothing is copied), bound
// by name from one table and checked against the config's shapes.
// Shapes in comments are [rows, cols] as stored (nn.Linear: [out, in]). H = hidden_size.
// Immutable after bind(); safe to share between threads. Valid while the checkpoint lives.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/model_config.h"
#include "kernels/common/tensor.h"

namespace qcoder::engine {

struct attention_weights {
  weight_matrix q_proj;  // [n_heads * head_dim * 2, H]: per head [q | gate]
  weight_matrix k_proj;  // [n_kv_heads * head_dim, H]
  weight_matrix v_proj;  // [n_kv_heads * head_dim, H]
  weight_matrix o_proj;  // [H, n_heads * head_dim]
  weight_vector q_norm;  // [head_dim], zero-centred
  weight_vector k_norm;  // [head_dim], zero-centred
};

struct deltanet_weights {
  weight_matrix in_proj_qkvz;  // [n_k * (2 d_k + 2 r d_v), H], r = n_v / n_k; per key head [q, k, v, z]
  weight_matrix in_proj_ba;    // [n_k * 2 r, H]; per key head [b, a]
  weight_vector conv1d;        // [conv_dim, 1, K] flattened; conv_dim = 2 n_k d_k + n_v d_v
  weight_vector a_log;         // [n_v]
  weight_vector dt_bias;       // [n_v]
  weight_vector norm;          // [d_v], used as is (not 1 + w)
  weight_matrix out_proj;      // [H, n_v d_v]
};

struct mlp_weights {
  weight_matrix gate_proj;  // [I, H]
  weight_matrix up_proj;    // [I, H]
  weight_matrix down_proj;  // [H, I]
};

struct moe_weights {
  weight_matrix router;              // [n_experts, H] (mlp.gate)
  std::vector<mlp_weights> experts;  // n_experts of [I_moe, H] / [H, I_moe]
  mlp_weights shared_expert;         // [I_shared, H] / [H, I_shared]
  weight_matrix shared_expert_gate;  // [1, H]
};

struct layer_weights {
  layer_kind kind = layer_kind::linear_attention;
  weight_vector input_layernorm;           // [H], zero-centred
  weight_vector post_attention_layernorm;  // [H], zero-centred
  attention_weights attention;             // full_attention layers
  deltanet_weights deltanet;               // linear_attention layers
  bool sparse = true;                      // MoE, else the dense `mlp`
  moe_weights moe;
  mlp_weights dense;
};

// Where qwen3_next_weights::assemble takes each tensor from, by its Hugging Face name: the checkpoint (bind),
// or shapes alone (the time model's weights of a model that is not on this machine).
class weight_source {
 public:
  virtual ~weight_source() = default;
  virtual result<weight_matrix> matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const = 0;
  virtual result<weight_vector> vector(const std::string& name, std::int64_t size) const = 0;
  // A tensor of any rank whose elements are used as one flat vector (conv1d weights [c, 1, k]).
  virtual result<weight_vector> flat(const std::string& name, std::span<const std::int64_t> shape) const = 0;
  // Whether the source holds `name` (the LM head of a model with tied embeddings may be absent).
  virtual bool contains(const std::string& name) const = 0;
};

struct qwen3_next_weights {
  weight_matrix embed_tokens;  // [vocab, H]
  std::vector<layer_weights> layers;
  weight_vector final_norm;    // [H], zero-centred
  weight_matrix lm_head;       // [vocab, H] (embed_tokens when tied)

  // Binds every tensor the forward pass uses; the first missing or misshapen tensor is the error.
  static result<qwen3_next_weights> bind(const checkpoint& ckpt, const model_config& config);
  // The same from any source: every tensor by name and shape, in one place for both.
  static result<qwen3_next_weights> assemble(const weight_source& source, const model_config& config);
  // Bytes of weights read for one decoded token: everything but the experts not chosen.
  std::int64_t bytes_per_token(const model_config& config) const;
};

}  // namespace qcoder::engine
