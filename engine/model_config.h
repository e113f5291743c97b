// The model's hyper-parameters, read from `config.json` (every qwen3_next key) and the end-of-sequence ids
// from `generation_config.json`. Immutable after load; safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::engine {

enum class layer_kind { linear_attention, full_attention };

struct quantization {
  bool fp8 = false;                               // quant_method "fp8", fmt "e4m3"
  std::array<std::int32_t, 2> block{128, 128};    // weight_block_size
  std::vector<std::string> modules_to_not_convert;
};

struct model_config {
  std::string model_type;  // must be "qwen3_next"
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t intermediate_size = 0;  // dense MLP width (only for mlp_only_layers)
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  std::int64_t max_position_embeddings = 0;

  // gated attention
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  double partial_rotary_factor = 1.0;
  double rope_theta = 10000.0;
  bool attention_bias = false;

  // Gated DeltaNet
  std::int64_t linear_num_key_heads = 0;
  std::int64_t linear_num_value_heads = 0;
  std::int64_t linear_key_head_dim = 0;
  std::int64_t linear_value_head_dim = 0;
  std::int64_t linear_conv_kernel_dim = 0;

  // MoE
  std::int64_t num_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;
  std::int64_t shared_expert_intermediate_size = 0;
  bool norm_topk_prob = true;
  std::int64_t decoder_sparse_step = 1;
  std::vector<std::int64_t> mlp_only_layers;

  std::vector<layer_kind> layer_types;  // from `layer_types`, else `full_attention_interval`

  quantization quant;

  std::int64_t bos_token_id = -1;
  std::vector<std::int64_t> eos_token_ids;  // generation_config.json's, else config.json's

  // Derived.
  std::int64_t rotary_dim() const { return static_cast<std::int64_t>(head_dim * partial_rotary_factor); }
  bool is_moe_layer(std::int64_t layer) const;

  // Reads dir/config.json and (if present) dir/generation_config.json. Every missing or mistyped key is an
  // error naming the file and the key; model_type must be qwen3_next.
  static result<model_config> load(const std::filesystem::path& dir);
  // Parses config.json text (generation config optional, may be empty). `source` names the file in errors.
  static result<model_config> parse(std::string_view config_json, std::string_view generation_json,
                                    std::string_view source);
};

}  // namespace qcoder::engine
