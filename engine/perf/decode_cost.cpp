// One decode step through the cost build of the device forward pass (decode_cost.h), and shape-only
// weights for models that are not on this machine.
#include "engine/perf/decode_cost.h"

#include <algorithm>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "engine/memory/sequence_state.h"
#include "engine/model/device_forward.h"

namespace qcoder::engine {

namespace costed {
// device_forward_cost.cpp: device_forward_impl.inc on the cost kernels.
result<std::unique_ptr<device_forward>> make(const model_config& config, const qwen3_next_weights& weights,
                                             std::int64_t max_batch, const device_forward_options& options);
}  // namespace costed

namespace {

// --- shape-only weights ---------------------------------------------------------------------------------

// Hands out host addresses for tensors that do not exist: distinct ranges in a part of the address space
// no process maps (above 2^55 on x86-64's 47-bit user space), so a stray read faults.
struct fake_host {
  std::uintptr_t next = std::uintptr_t{1} << 55;
  const void* take(std::int64_t bytes) {
    const auto at = next;
    next += (static_cast<std::uintptr_t>(std::max<std::int64_t>(bytes, 1)) + 255) / 256 * 256;
    return reinterpret_cast<const void*>(at);
  }
};

// Modules that stay BF16 in the published Qwen3-Next FP8 checkpoints (make_model.cpp writes the same list):
// the router, the shared expert's gate, the DeltaNet's b/a projection and the LM head; vectors are never
// quantised.
bool stays_bf16_by_default(const std::string& module) {
  for (const char* suffix : {".mlp.gate", ".mlp.shared_expert_gate", ".linear_attn.in_proj_ba"}) {
    const std::string_view s(suffix);
    if (module.size() >= s.size() && module.compare(module.size() - s.size(), s.size(), s) == 0) return true;
  }
  return module == "lm_head";
}

// Shapes as a weight source: every tensor exists, at a fake address, FP8 (with BF16 scales per block) where
// the published FP8 checkpoints quantise it, BF16 elsewhere.
class shape_source final : public weight_source {
 public:
  explicit shape_source(const model_config& c)
      : c_(c), not_convert_(c.quant.modules_to_not_convert.begin(), c.quant.modules_to_not_convert.end()) {}

  result<weight_matrix> matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const override {
    const std::string module = module_of(name);
    weight_matrix m;
    m.rows = rows;
    m.cols = cols;
    const bool fp8 = c_.quant.fp8 && module != "model.embed_tokens" &&
                     (not_convert_.empty() ? !stays_bf16_by_default(module) : !not_convert_.contains(module));
    m.type = fp8 ? dtype::f8_e4m3 : dtype::bf16;
    m.block_rows = c_.quant.block[0];
    m.block_cols = c_.quant.block[1];
    m.data = host_.take(rows * cols * static_cast<std::int64_t>(dtype_size(m.type)));
    if (fp8) {
      m.scale_type = dtype::bf16;
      m.scales = host_.take(((rows + m.block_rows - 1) / m.block_rows) * m.scale_cols() * 2);
    }
    return m;
  }
  result<weight_vector> vector(const std::string& /*name*/, std::int64_t size) const override {
    return weight_vector{dtype::bf16, host_.take(size * 2), size};
  }
  result<weight_vector> flat(const std::string& name, std::span<const std::int64_t> shape) const override {
    std::int64_t size = 1;
    for (const std::int64_t d : shape) size *= d;
    return vector(name, size);
  }
  // A model with tied embeddings has no LM head of its own.
  bool contains(const std::string& name) const override { return name != "lm_head.weight" || !c_.tie_word_embeddings; }

 private:
  static std::string module_of(const std::string& name) {
    constexpr std::string_view suffix = ".weight";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return name.substr(0, name.size() - suffix.size());
    }
    return name;
  }

  const model_config& c_;
  mutable fake_host host_;
  std::set<std::string> not_convert_;
};

// Where each tensor's host bytes lie, and which layer it belongs to (-1: embedding, final norm, head).
struct host_range {
  std::uintptr_t begin = 0, end = 0;
  std::int64_t layer = -1;
};

std::vector<host_range> host_ranges(const qwen3_next_weights& w) {
  std::vector<host_range> out;
  auto add = [&](const void* p, std::int64_t bytes, std::int64_t layer) {
    if (p == nullptr || bytes <= 0) return;
    const auto b = reinterpret_cast<std::uintptr_t>(p);
    out.push_back({b, b + static_cast<std::uintptr_t>(bytes), layer});
  };
  auto matrix = [&](const weight_matrix& m, std::int64_t layer) {
    add(m.data, m.rows * m.cols * static_cast<std::int64_t>(dtype_size(m.type)), layer);
    if (m.quantized()) add(m.scales, m.bytes() - m.rows * m.cols * static_cast<std::int64_t>(dtype_size(m.type)), layer);
  };
  auto vector = [&](const weight_vector& v, std::int64_t layer) {
    add(v.data, v.size * static_cast<std::int64_t>(dtype_size(v.type)), layer);
  };
  auto mlp = [&](const mlp_weights& m, std::int64_t layer) {
    matrix(m.gate_proj, layer);
    matrix(m.up_proj, layer);
    matrix(m.down_proj, layer);
  };
  matrix(w.embed_tokens, -1);
  vector(w.final_norm, -1);
  matrix(w.lm_head, -1);
  for (std::size_t i = 0; i < w.layers.size(); ++i) {
    const layer_weights& l = w.layers[i];
    const auto layer = static_cast<std::int64_t>(i);
    vector(l.input_layernorm, layer);
    vector(l.post_attention_layernorm, layer);
    if (l.kind == layer_kind::full_attention) {
      for (const weight_matrix* m : {&l.attention.q_proj, &l.attention.k_proj, &l.attention.v_proj, &l.attention.o_proj}) {
        matrix(*m, layer);
      }
      vector(l.attention.q_norm, layer);
      vector(l.attention.k_norm, layer);
    } else {
      for (const weight_matrix* m : {&l.deltanet.in_proj_qkvz, &l.deltanet.in_proj_ba, &l.deltanet.out_proj}) matrix(*m, layer);
      for (const weight_vector* v : {&l.deltanet.conv1d, &l.deltanet.a_log, &l.deltanet.dt_bias, &l.deltanet.norm}) {
        vector(*v, layer);
      }
    }
    if (l.sparse) {
      matrix(l.moe.router, layer);
      matrix(l.moe.shared_expert_gate, layer);
      mlp(l.moe.shared_expert, layer);
      for (const mlp_weights& e : l.moe.experts) mlp(e, layer);
    } else {
      mlp(l.dense, layer);
    }
  }
  std::sort(out.begin(), out.end(), [](const host_range& a, const host_range& b) { return a.begin < b.begin; });
  return out;
}

std::int64_t layer_of(const std::vector<host_range>& ranges, const void* host) {
  const auto at = reinterpret_cast<std::uintptr_t>(host);
  auto it = std::upper_bound(ranges.begin(), ranges.end(), at, [](std::uintptr_t p, const host_range& r) { return p < r.begin; });
  if (it == ranges.begin()) return -2;
  --it;
  return at < it->end ? it->layer : -2;
}

std::int64_t mlp_bytes(const mlp_weights& m) { return m.gate_proj.bytes() + m.up_proj.bytes() + m.down_proj.bytes(); }

}  // namespace

qwen3_next_weights shape_only_weights(const model_config& c) {
  // Nothing in a shape source fails.
  return std::move(qwen3_next_weights::assemble(shape_source(c), c)).value();
}

std::int64_t expert_bytes(const qwen3_next_weights& w) {
  for (const layer_weights& l : w.layers) {
    if (l.sparse && !l.moe.experts.empty()) return mlp_bytes(l.moe.experts.front());
  }
  return 0;
}

std::int64_t all_expert_bytes(const qwen3_next_weights& w) {
  std::int64_t total = 0;
  for (const layer_weights& l : w.layers) {
    for (const mlp_weights& e : l.moe.experts) total += mlp_bytes(e);
  }
  return total;
}

namespace {
template <typename F>
std::int64_t sum(const std::vector<cuda_cost::launch_record>& launches, F field) {
  std::int64_t total = 0;
  for (const cuda_cost::launch_record& r : launches) total += field(r);
  return total;
}
}  // namespace

std::int64_t decode_cost::weight_bytes() const { return sum(launches, [](const auto& r) { return r.weight_bytes; }); }
std::int64_t decode_cost::vector_bytes() const { return sum(launches, [](const auto& r) { return r.vector_bytes; }); }
std::int64_t decode_cost::routed_bytes() const { return sum(launches, [](const auto& r) { return r.routed_bytes; }); }
std::int64_t decode_cost::activation_bytes() const { return sum(launches, [](const auto& r) { return r.activation_bytes; }); }
std::int64_t decode_cost::state_traffic_bytes() const { return sum(launches, [](const auto& r) { return r.state_bytes; }); }

result<decode_cost> cost_of_decode(const model_config& config, const qwen3_next_weights& weights, std::int64_t batch,
                                   std::int64_t context) {
  if (batch < 1) return fail(errc::invalid_argument, "cost_of_decode: batch {} (at least 1)", batch);
  if (context < 0) return fail(errc::invalid_argument, "cost_of_decode: context {} (not negative)", context);
  if (static_cast<std::int64_t>(weights.layers.size()) != config.num_hidden_layers) {
    return fail(errc::invalid_argument, "cost_of_decode: {} layers of weights for a config of {}", weights.layers.size(),
                config.num_hidden_layers);
  }
  // Declared first so that it outlives the forward pass and the states (their memory is its scratch).
  cuda_cost::cost_recorder recorder(context);
  const cuda_cost::cost_scope scope(recorder);
  decode_cost out;
  out.batch = batch;
  out.context = context;
  out.expert_bytes = expert_bytes(weights);
  out.all_expert_bytes = all_expert_bytes(weights);
  out.layers = config.num_hidden_layers;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) out.moe_layers += weights.layers[static_cast<std::size_t>(l)].sparse;
  out.experts = config.num_experts;
  out.top_k = config.num_experts_per_tok;

  QCODER_TRY(std::unique_ptr<device_forward> forward, costed::make(config, weights, batch, device_forward_options{.decode_graphs = false}));
  out.device_bytes = recorder.device_bytes();
  std::vector<sequence_state> states;
  states.reserve(static_cast<std::size_t>(batch));
  const std::int64_t managed_before = recorder.managed_bytes();
  for (std::int64_t s = 0; s < batch; ++s) {
    states.emplace_back(config, context + 1, forward->state_memory());
    states.back().advance(context);
  }
  out.state_bytes = recorder.managed_bytes() - managed_before;

  const std::vector<std::int32_t> token(static_cast<std::size_t>(batch), 0);
  std::vector<device_forward::segment> segments;
  for (std::int64_t s = 0; s < batch; ++s) {
    segments.push_back({s, sequence_step{std::span<const std::int32_t>(token.data() + s, 1), &states[static_cast<std::size_t>(s)],
                                         logits_mode::last}});
  }
  std::vector<float> logits(static_cast<std::size_t>(batch * config.vocab_size));
  recorder.clear_launches();
  QCODER_CHECK(forward->forward_chunk(segments, batch, logits.data(), std::stop_token{}));

  // Each launch's layer: that of the tensor its weights were copied from; launches without weights (the
  // pointwise ops, attention, the routed experts, whose tables hold pointers) belong to the layer of the
  // launch before them.
  const std::vector<host_range> ranges = host_ranges(weights);
  out.launches = recorder.launches();
  std::int64_t current = -1;
  for (cuda_cost::launch_record& r : out.launches) {
    if (r.weights != nullptr) {
      const void* host = recorder.host_source(r.weights);
      const std::int64_t layer = host != nullptr ? layer_of(ranges, host) : -2;
      if (layer == -2) {
        return fail(errc::internal, "cost_of_decode: the weights of a {} launch were not copied from any tensor", r.kernel);
      }
      current = layer;
    }
    r.layer = current;
  }
  return out;
}

}  // namespace qcoder::engine
