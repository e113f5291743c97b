// Binding of checkpoint tensors to the model's weight views. The names are the Hugging Face ones
// (model.layers.N.linear_attn.in_proj_qkvz.weight, ...), so real checkpoints load as they are.
#include "engine/model/qwen3_next_weights.h"

#include <fmt/format.h>

namespace qcoder::engine {
namespace {

// The checkpoint as a weight source: each tensor checked against its expected shape (FP8 matrices with the
// config's scale blocks).
class checkpoint_source final : public weight_source {
 public:
  checkpoint_source(const checkpoint& ckpt, std::array<std::int32_t, 2> block) : ckpt_(ckpt), block_(block) {}
  result<weight_matrix> matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const override {
    return ckpt_.matrix(name, rows, cols, block_);
  }
  result<weight_vector> vector(const std::string& name, std::int64_t size) const override {
    return ckpt_.vector(name, size);
  }
  result<weight_vector> flat(const std::string& name, std::span<const std::int64_t> shape) const override {
    const std::vector<std::int64_t> dims(shape.begin(), shape.end());
    QCODER_TRY(const tensor_info* t, ckpt_.get(name, dims));
    return weight_vector{t->type, t->bytes.data(), t->elements()};
  }
  bool contains(const std::string& name) const override { return ckpt_.find(name) != nullptr; }

 private:
  const checkpoint& ckpt_;
  std::array<std::int32_t, 2> block_;
};

result<mlp_weights> mlp(const weight_source& b, const std::string& prefix, std::int64_t hidden, std::int64_t inner) {
  mlp_weights m;
  QCODER_TRY(m.gate_proj, b.matrix(prefix + ".gate_proj.weight", inner, hidden));
  QCODER_TRY(m.up_proj, b.matrix(prefix + ".up_proj.weight", inner, hidden));
  QCODER_TRY(m.down_proj, b.matrix(prefix + ".down_proj.weight", hidden, inner));
  return m;
}

}  // namespace

result<qwen3_next_weights> qwen3_next_weights::bind(const checkpoint& ckpt, const model_config& c) {
  return assemble(checkpoint_source(ckpt, c.quant.block), c);
}

result<qwen3_next_weights> qwen3_next_weights::assemble(const weight_source& b, const model_config& c) {
  const std::int64_t h = c.hidden_size;
  qwen3_next_weights w;
  QCODER_TRY(w.embed_tokens, b.matrix("model.embed_tokens.weight", c.vocab_size, h));
  QCODER_TRY(w.final_norm, b.vector("model.norm.weight", h));
  if (c.tie_word_embeddings && !b.contains("lm_head.weight")) {
    w.lm_head = w.embed_tokens;
  } else {
    QCODER_TRY(w.lm_head, b.matrix("lm_head.weight", c.vocab_size, h));
  }

  const std::int64_t r = c.linear_num_key_heads > 0 ? c.linear_num_value_heads / c.linear_num_key_heads : 0;
  const std::int64_t qkvz_rows = c.linear_num_key_heads * (2 * c.linear_key_head_dim + 2 * r * c.linear_value_head_dim);
  const std::int64_t conv_dim =
      2 * c.linear_num_key_heads * c.linear_key_head_dim + c.linear_num_value_heads * c.linear_value_head_dim;
  const std::int64_t value_dim = c.linear_num_value_heads * c.linear_value_head_dim;

  w.layers.resize(static_cast<std::size_t>(c.num_hidden_layers));
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layer_weights& l = w.layers[static_cast<std::size_t>(i)];
    const std::string p = fmt::format("model.layers.{}", i);
    l.kind = c.layer_types[static_cast<std::size_t>(i)];
    QCODER_TRY(l.input_layernorm, b.vector(p + ".input_layernorm.weight", h));
    QCODER_TRY(l.post_attention_layernorm, b.vector(p + ".post_attention_layernorm.weight", h));
    if (l.kind == layer_kind::full_attention) {
      attention_weights& a = l.attention;
      const std::int64_t q_dim = c.num_attention_heads * c.head_dim;
      const std::int64_t kv_dim = c.num_key_value_heads * c.head_dim;
      QCODER_TRY(a.q_proj, b.matrix(p + ".self_attn.q_proj.weight", 2 * q_dim, h));
      QCODER_TRY(a.k_proj, b.matrix(p + ".self_attn.k_proj.weight", kv_dim, h));
      QCODER_TRY(a.v_proj, b.matrix(p + ".self_attn.v_proj.weight", kv_dim, h));
      QCODER_TRY(a.o_proj, b.matrix(p + ".self_attn.o_proj.weight", h, q_dim));
      QCODER_TRY(a.q_norm, b.vector(p + ".self_attn.q_norm.weight", c.head_dim));
      QCODER_TRY(a.k_norm, b.vector(p + ".self_attn.k_norm.weight", c.head_dim));
    } else {
      deltanet_weights& d = l.deltanet;
      const std::int64_t conv_shape[] = {conv_dim, 1, c.linear_conv_kernel_dim};
      QCODER_TRY(d.in_proj_qkvz, b.matrix(p + ".linear_attn.in_proj_qkvz.weight", qkvz_rows, h));
      QCODER_TRY(d.in_proj_ba, b.matrix(p + ".linear_attn.in_proj_ba.weight", 2 * c.linear_num_value_heads, h));
      QCODER_TRY(d.conv1d, b.flat(p + ".linear_attn.conv1d.weight", conv_shape));
      QCODER_TRY(d.a_log, b.vector(p + ".linear_attn.A_log", c.linear_num_value_heads));
      QCODER_TRY(d.dt_bias, b.vector(p + ".linear_attn.dt_bias", c.linear_num_value_heads));
      QCODER_TRY(d.norm, b.vector(p + ".linear_attn.norm.weight", c.linear_value_head_dim));
      QCODER_TRY(d.out_proj, b.matrix(p + ".linear_attn.out_proj.weight", h, value_dim));
    }
    l.sparse = c.is_moe_layer(i);
    if (l.sparse) {
      moe_weights& m = l.moe;
      QCODER_TRY(m.router, b.matrix(p + ".mlp.gate.weight", c.num_experts, h));
      m.experts.resize(static_cast<std::size_t>(c.num_experts));
      for (std::int64_t e = 0; e < c.num_experts; ++e) {
        QCODER_TRY(m.experts[static_cast<std::size_t>(e)],
                   mlp(b, fmt::format("{}.mlp.experts.{}", p, e), h, c.moe_intermediate_size));
      }
      QCODER_TRY(m.shared_expert, mlp(b, p + ".mlp.shared_expert", h, c.shared_expert_intermediate_size));
      QCODER_TRY(m.shared_expert_gate, b.matrix(p + ".mlp.shared_expert_gate.weight", 1, h));
    } else {
      QCODER_TRY(l.dense, mlp(b, p + ".mlp", h, c.intermediate_size));
    }
  }
  return w;
}

std::int64_t qwen3_next_weights::bytes_per_token(const model_config& c) const {
  auto mlp_bytes = [](const mlp_weights& m) { return m.gate_proj.bytes() + m.up_proj.bytes() + m.down_proj.bytes(); };
  std::int64_t total = embed_tokens.bytes() / std::max<std::int64_t>(1, embed_tokens.rows) + lm_head.bytes();
  for (const layer_weights& l : layers) {
    if (l.kind == layer_kind::full_attention) {
      total += l.attention.q_proj.bytes() + l.attention.k_proj.bytes() + l.attention.v_proj.bytes() +
               l.attention.o_proj.bytes();
    } else {
      total += l.deltanet.in_proj_qkvz.bytes() + l.deltanet.in_proj_ba.bytes() + l.deltanet.out_proj.bytes();
    }
    if (l.sparse) {
      total += l.moe.router.bytes() + mlp_bytes(l.moe.shared_expert) + l.moe.shared_expert_gate.bytes();
      if (!l.moe.experts.empty()) total += c.num_experts_per_tok * mlp_bytes(l.moe.experts.front());
    } else {
      total += mlp_bytes(l.dense);
    }
  }
  return total;
}

}  // namespace qcoder::engine
