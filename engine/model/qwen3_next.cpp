// The Qwen3-Next forward pass. Reads top-down like the model card:
//
//   x = embed(tokens)
//   for each layer:  x += mixer(rms_norm(x))      mixer: Gated DeltaNet (3 of 4 layers) or gated attention
//                    x += moe(rms_norm(x))        512 experts top-10 + sigmoid-gated shared expert
//   logits = lm_head(rms_norm(x))
//
// All norms but the DeltaNet output norm are zero-centred (scale 1 + w). Matmuls go through the backend;
// per-head work is split over its threads.
#include "engine/model/qwen3_next.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/model/device_forward.h"
#include "kernels/cpu/ops.h"
#include "kernels/reference/ops.h"

namespace qcoder::engine {

namespace {
std::vector<float> floats(std::int64_t n) { return std::vector<float>(static_cast<std::size_t>(n), 0.0f); }
// Tokens per chunk of the chunked delta rule (prefill), as in the reference implementations.
}  // namespace

// Activation buffers for one chunk of up to B = max_batch tokens, allocated once.
struct qwen3_next::buffers {
  std::int64_t batch = 0;
  std::vector<float> x, xn, mixer_out;  // [B, H]
  // gated attention
  std::vector<float> q_gate, k, v, attn;  // [B, 2 n_h d], [B, n_kv d] ×2, [B, n_h d]
  std::vector<float> scores;              // [threads, scores_stride]: grown when a longer state comes
  std::int64_t scores_stride = 0;         // the longest capacity among the chunk's states
  std::vector<segment> segments;          // the chunk's sequences (reserved: B)
  std::vector<std::int32_t> row_segment;  // [B]: the segment of each row
  // Gated DeltaNet
  std::vector<float> qkvz, ba, mixed, conv_out, z, core, normed;  // see deltanet_block
  std::vector<float> beta, g;                                     // [B, n_v]
  std::vector<float> delta_scratch;                                // [threads, per_thread]
  std::int64_t delta_scratch_per_thread = 0;
  // MoE
  std::vector<float> router;                        // [B, E]
  std::vector<std::int32_t> top_ids;                // [B, k]
  std::vector<float> top_weights;                   // [B, k]
  std::vector<std::int32_t> order;                  // [B k]: assignment indices sorted by expert
  std::vector<std::int64_t> expert_offsets;         // [E + 1]
  std::vector<float> xs, gate, up, down;            // [B k, H], [B k, I] ×2, [B k, H]
  std::vector<float> shared_gate, shared_up, shared_down, shared_scale;  // [B, Is] ×2, [B, H], [B]
  std::vector<matmul_job> jobs;
  std::vector<std::int32_t> active;             // experts with tokens in this chunk, by id
  std::vector<const mlp_weights*> views;        // weights of the experts being computed
  std::vector<std::int32_t> pending;            // expert cache: the group's experts not computed yet
  std::vector<std::int32_t> ready_experts;      // ... those acquired by the last acquire_ready
  std::vector<std::pair<std::size_t, const mlp_weights*>> ready;
  std::vector<std::int32_t> predicted;          // prefetch: the next layer's likely experts
  std::vector<float> prediction;                // [E] router logits for the prediction
  // output
  std::vector<float> final_norm;  // [B, H]
};

qwen3_next::qwen3_next(checkpoint ckpt, model_config config, qwen3_next_weights weights, const model_options& options)
    : checkpoint_(std::move(ckpt)),
      config_(std::move(config)),
      weights_(std::move(weights)),
      options_(options),
      backend_(options.threads),
      buf_(std::make_unique<buffers>()) {
  const model_config& c = config_;
  const std::int64_t b = std::max<std::int64_t>(1, options.max_batch);
  const std::int64_t h = c.hidden_size;
  const std::int64_t r = c.linear_num_value_heads / std::max<std::int64_t>(1, c.linear_num_key_heads);
  const std::int64_t value_dim = c.linear_num_value_heads * c.linear_value_head_dim;
  const std::int64_t conv_dim = 2 * c.linear_num_key_heads * c.linear_key_head_dim + value_dim;
  const std::int64_t k = std::max<std::int64_t>(1, c.num_experts_per_tok);
  const std::int64_t inner = std::max(c.moe_intermediate_size, c.intermediate_size);
  buffers& f = *buf_;
  f.batch = b;
  f.x = floats(b * h);
  f.xn = floats(b * h);
  f.mixer_out = floats(b * h);
  f.q_gate = floats(b * 2 * c.num_attention_heads * c.head_dim);
  f.k = floats(b * c.num_key_value_heads * c.head_dim);
  f.v = floats(b * c.num_key_value_heads * c.head_dim);
  f.attn = floats(b * c.num_attention_heads * c.head_dim);
  f.qkvz = floats(b * c.linear_num_key_heads * (2 * c.linear_key_head_dim + 2 * r * c.linear_value_head_dim));
  f.ba = floats(b * 2 * c.linear_num_value_heads);
  f.mixed = floats(b * conv_dim);
  f.conv_out = floats(b * conv_dim);
  f.z = floats(b * value_dim);
  f.core = floats(b * value_dim);
  f.normed = floats(b * value_dim);
  f.beta = floats(b * c.linear_num_value_heads);
  f.g = floats(b * c.linear_num_value_heads);
  f.delta_scratch_per_thread = c.linear_value_head_dim;  // gated_delta_step's scratch
  f.delta_scratch = floats(backend_.threads() * f.delta_scratch_per_thread);
  f.router = floats(b * c.num_experts);
  f.top_ids.assign(static_cast<std::size_t>(b * k), 0);
  f.top_weights = floats(b * k);
  f.order.assign(static_cast<std::size_t>(b * k), 0);
  f.expert_offsets.assign(static_cast<std::size_t>(c.num_experts + 1), 0);
  f.xs = floats(b * k * h);
  f.gate = floats(b * k * inner);
  f.up = floats(b * k * inner);
  f.down = floats(b * k * h);
  f.shared_gate = floats(b * c.shared_expert_intermediate_size);
  f.shared_up = floats(b * c.shared_expert_intermediate_size);
  f.shared_down = floats(b * h);
  f.shared_scale = floats(b);
  f.jobs.reserve(static_cast<std::size_t>(2 * c.num_experts + 8));
  f.active.reserve(static_cast<std::size_t>(c.num_experts));
  f.pending.reserve(static_cast<std::size_t>(c.num_experts));
  f.ready_experts.reserve(static_cast<std::size_t>(c.num_experts));
  f.ready.reserve(static_cast<std::size_t>(c.num_experts));
  f.views.assign(static_cast<std::size_t>(std::max<std::int64_t>(1, c.num_experts)), nullptr);
  f.predicted.reserve(static_cast<std::size_t>(k));
  f.prediction = floats(c.num_experts);
  f.final_norm = floats(b * h);
  f.segments.reserve(static_cast<std::size_t>(b));
  f.row_segment.assign(static_cast<std::size_t>(b), 0);

  if (!options.routing_trace_path.empty() && c.num_experts > 0) {
    std::int32_t moe_layers = 0;
    moe_ordinal_.assign(static_cast<std::size_t>(c.num_hidden_layers), -1);
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (weights_.layers[static_cast<std::size_t>(l)].sparse) moe_ordinal_[static_cast<std::size_t>(l)] = moe_layers++;
    }
    trace_ = std::make_unique<routing_trace>(moe_layers, static_cast<std::int32_t>(c.num_experts),
                                             static_cast<std::int32_t>(k));
    chunk_routes_.assign(static_cast<std::size_t>(moe_layers * b * k), 0);
    chunk_predicted_.assign(static_cast<std::size_t>(moe_layers * k), -1);
  }
}

qwen3_next::~qwen3_next() { write_reports(); }

void qwen3_next::write_reports() const {
  if (trace_ && !options_.routing_trace_path.empty()) {
    if (result<void> r = write_routing_trace_file(*trace_, options_.routing_trace_path); !r) {
      spdlog::error("routing trace: {}", r.err().message);
    } else {
      spdlog::info("routing trace of {} tokens written to {}", trace_->tokens(), options_.routing_trace_path);
    }
  }
  if (!options_.stats_json_path.empty()) {
    nlohmann::json layers = nlohmann::json::array();
    if (store_) {
      for (std::size_t l = 0; l < store_->stats().size(); ++l) {
        const expert_layer_stats& s = store_->stats()[l];
        if (!weights_.layers[l].sparse) continue;
        layers.push_back({{"layer", l}, {"slots", store_->slots(static_cast<std::int64_t>(l))}, {"hits", s.hits},
                          {"misses", s.misses}, {"prefetches", s.prefetches}, {"prefetch_used", s.prefetch_used},
                          {"reads", s.reads}, {"bytes_read", s.bytes_read}, {"wait_seconds", s.wait_seconds}});
      }
    }
    const nlohmann::json out = {{"expert_cache", store_ != nullptr},
                                {"policy", store_ ? store_->options().policy : ""},
                                {"slot_bytes", store_ ? store_->expert_bytes() : 0},
                                {"layers", layers}};
    std::ofstream file(options_.stats_json_path, std::ios::trunc);
    file << out.dump(1) << "\n";
    if (!file) spdlog::error("cannot write statistics to {}", options_.stats_json_path);
  }
}

void qwen3_next::record_routing(std::int64_t n) {
  const std::int64_t k = config_.num_experts_per_tok;
  const std::int64_t moe_layers = trace_->layers();
  for (std::int64_t t = 0; t < n; ++t) {
    if (result<void> r = trace_->begin_token(traced_tokens_++); !r) return;
    for (std::int64_t m = 0; m < moe_layers; ++m) {
      const std::int32_t* chosen = chunk_routes_.data() + (m * buf_->batch + t) * k;
      const std::int32_t* predicted = chunk_predicted_.data() + m * k;
      const bool has_prediction = n == 1 && predicted[0] >= 0;
      (void)trace_->add_layer(std::span(chosen, static_cast<std::size_t>(k)),
                              has_prediction ? std::span(predicted, static_cast<std::size_t>(k))
                                             : std::span<const std::int32_t>());
    }
  }
}

result<std::unique_ptr<qwen3_next>> qwen3_next::load(const std::filesystem::path& dir, const model_options& options) {
  QCODER_TRY(model_config config, model_config::load(dir));
  if (config.linear_conv_kernel_dim < 1 || config.linear_conv_kernel_dim > 8) {
    return fail(errc::unsupported, "{}: linear_conv_kernel_dim {} is outside 1..8", (dir / "config.json").string(),
                config.linear_conv_kernel_dim);
  }
  QCODER_TRY(checkpoint ckpt, checkpoint::open(dir));
  QCODER_TRY(qwen3_next_weights weights, qwen3_next_weights::bind(ckpt, config));
  const bool cached_experts = options.experts.ram_budget > 0 && config.num_experts > 0;
  if (options.device == compute_device::cpu && options.device_experts.vram_budget > 0) {
    return fail(errc::invalid_argument, "a VRAM expert budget needs a CUDA backend (--backend cuda or cuda-emu)");
  }
  if (options.device != compute_device::cpu) {
    // The RAM expert cache becomes the host tier under the VRAM one; without a VRAM budget every expert is
    // uploaded and it would hold nothing. The routing trace is not recorded (the routing stays on the device).
    if (cached_experts && options.device_experts.vram_budget == 0) {
      return fail(errc::invalid_argument,
                  "--expert-cache-ram on {} is the host tier under the VRAM one: it needs --expert-cache-vram SIZE",
                  compute_device_name(options.device));
    }
    if (!options.routing_trace_path.empty()) {
      return fail(errc::unsupported, "the routing trace is recorded on the cpu backend only (not on {})",
                  compute_device_name(options.device));
    }
    std::unique_ptr<qwen3_next> model(new qwen3_next(std::move(ckpt), std::move(config), std::move(weights), options));
    if (cached_experts) {
      QCODER_TRY(model->store_, expert_store::create(model->checkpoint_, model->config_, model->weights_, options.experts));
    }
    device_forward_options device;
    device.experts = options.device_experts;
    device.decode_graphs = options.decode_graphs;
    device.host_store = model->store_.get();
    device.cpu = &model->backend_;
    QCODER_TRY(model->device_, make_device_forward(options.device, model->config_, model->weights_, model->buf_->batch, device));
    spdlog::info("forward pass on {}: {:.1f} MiB of device memory", compute_device_name(options.device),
                 static_cast<double>(model->device_->device_bytes()) / (1 << 20));
    return model;
  }
  if (options.mlock && !cached_experts) QCODER_CHECK(ckpt.lock_in_memory());
  std::unique_ptr<qwen3_next> model(new qwen3_next(std::move(ckpt), std::move(config), std::move(weights), options));
  if (cached_experts) {
    QCODER_CHECK(model->copy_resident_weights(options.mlock));
    QCODER_TRY(model->store_, expert_store::create(model->checkpoint_, model->config_, model->weights_, options.experts));
  }
  return model;
}

result<void> qwen3_next::copy_resident_weights(bool lock) {
  // Two passes over every resident view: size the arena, then copy and repoint.
  constexpr std::uint64_t align = 64;
  std::uint64_t total = 0;
  std::byte* next = nullptr;
  auto place = [&](const void*& data, std::uint64_t bytes) {
    if (data == nullptr || bytes == 0) return;
    if (next == nullptr) {
      total += (bytes + align - 1) / align * align;
      return;
    }
    std::memcpy(next, data, bytes);
    data = next;
    next += (bytes + align - 1) / align * align;
  };
  auto matrix = [&](weight_matrix& w) {
    place(w.data, static_cast<std::uint64_t>(w.rows * w.cols) * dtype_size(w.type));
    if (w.quantized()) {
      place(w.scales, static_cast<std::uint64_t>(((w.rows + w.block_rows - 1) / w.block_rows) * w.scale_cols()) *
                          dtype_size(w.scale_type));
    }
  };
  auto vector = [&](weight_vector& v) { place(v.data, static_cast<std::uint64_t>(v.size) * dtype_size(v.type)); };
  auto mlp = [&](mlp_weights& m) {
    matrix(m.gate_proj);
    matrix(m.up_proj);
    matrix(m.down_proj);
  };
  const bool tied = weights_.lm_head.data == weights_.embed_tokens.data;
  auto visit = [&] {
    matrix(weights_.embed_tokens);
    if (!tied) matrix(weights_.lm_head);
    vector(weights_.final_norm);
    for (layer_weights& l : weights_.layers) {
      vector(l.input_layernorm);
      vector(l.post_attention_layernorm);
      if (l.kind == layer_kind::full_attention) {
        matrix(l.attention.q_proj);
        matrix(l.attention.k_proj);
        matrix(l.attention.v_proj);
        matrix(l.attention.o_proj);
        vector(l.attention.q_norm);
        vector(l.attention.k_norm);
      } else {
        matrix(l.deltanet.in_proj_qkvz);
        matrix(l.deltanet.in_proj_ba);
        vector(l.deltanet.conv1d);
        vector(l.deltanet.a_log);
        vector(l.deltanet.dt_bias);
        vector(l.deltanet.norm);
        matrix(l.deltanet.out_proj);
      }
      if (l.sparse) {
        matrix(l.moe.router);
        mlp(l.moe.shared_expert);
        matrix(l.moe.shared_expert_gate);
      } else {
        mlp(l.dense);
      }
    }
  };
  visit();
  resident_ = allocate_weight_arena(total);
  if (!resident_) return fail(errc::io_error, "cannot allocate {} bytes for the resident weights", total);
  next = resident_.get();
  visit();
  if (tied) weights_.lm_head = weights_.embed_tokens;
  resident_bytes_ = total;
  checkpoint_.release_pages();  // the copy is what we use now
  if (lock && ::mlock(resident_.get(), total) != 0) {
    return fail(errc::io_error, "cannot lock the {} bytes of resident weights in memory: {} (raise `ulimit -l`)", total,
                std::strerror(errno));
  }
  spdlog::info("resident weights: {:.2f} GB copied into process memory{}", static_cast<double>(total) / 1e9,
               lock ? " and locked" : "");
  return ok();
}

std::int64_t qwen3_next::max_batch() const { return buf_->batch; }

result<void> qwen3_next::check_step(const sequence_step& step) const {
  const std::int64_t n = static_cast<std::int64_t>(step.tokens.size());
  const sequence_state& state = *step.state;
  if (state.length() + n > state.capacity()) {
    return fail(errc::invalid_argument, "sequence of {} tokens exceeds the state's capacity of {}",
                state.length() + n, state.capacity());
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t id = step.tokens[static_cast<std::size_t>(i)];
    if (id < 0 || id >= config_.vocab_size) {
      return fail(errc::invalid_argument, "token id {} at position {} is outside the vocabulary (0..{})", id, i,
                  config_.vocab_size - 1);
    }
  }
  return ok();
}

sequence_state qwen3_next::new_state(std::int64_t capacity_tokens) const {
  if (device_) return sequence_state(config_, capacity_tokens, device_->state_memory());
  return sequence_state(config_, capacity_tokens);
}

// The attention scores scratch: one row per thread, as long as the longest state of the chunk.
void qwen3_next::reserve_scores(std::int64_t capacity) {
  buffers& f = *buf_;
  f.scores_stride = capacity;
  const std::size_t needed = static_cast<std::size_t>(backend_.threads() * capacity);
  if (f.scores.size() < needed) f.scores.resize(needed);  // once per longer state
}

result<void> qwen3_next::forward(std::span<const std::int32_t> tokens, sequence_state& state, float* logits,
                                 logits_mode mode, std::stop_token stop) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  QCODER_CHECK(check_step({tokens, &state, mode}));
  reserve_scores(state.capacity());

  for (std::int64_t begin = 0; begin < n; begin += buf_->batch) {
    const std::int64_t count = std::min(buf_->batch, n - begin);
    const bool last_chunk = begin + count == n;
    float* chunk_logits = nullptr;
    logits_mode chunk_mode = logits_mode::none;
    if (mode == logits_mode::all) {
      chunk_logits = logits + begin * config_.vocab_size;
      chunk_mode = logits_mode::all;
    } else if (mode == logits_mode::last && last_chunk) {
      chunk_logits = logits;
      chunk_mode = logits_mode::last;
    }
    const segment one{0, {tokens.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(count)), &state, chunk_mode}};
    if (result<void> r = forward_chunk(std::span(&one, 1), count, chunk_logits, stop); !r) {
      state.reset();
      return r;
    }
  }
  return ok();
}

result<void> qwen3_next::forward_batch(std::span<const sequence_step> steps, float* logits, std::stop_token stop) {
  buffers& f = *buf_;
  std::int64_t total = 0;
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const sequence_step& step = steps[i];
    if (step.state == nullptr || step.tokens.empty()) {
      return fail(errc::invalid_argument, "step {} of the batch has no state or no tokens", i);
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (steps[j].state == step.state) return fail(errc::invalid_argument, "steps {} and {} share a state", j, i);
    }
    QCODER_CHECK(check_step(step));
    total += static_cast<std::int64_t>(step.tokens.size());
    longest = std::max(longest, step.state->capacity());
  }
  if (total > f.batch) {
    return fail(errc::invalid_argument, "a batch of {} tokens is more than the {} one pass takes", total, f.batch);
  }
  if (total == 0) return ok();
  reserve_scores(longest);
  f.segments.clear();
  std::int64_t row = 0;
  for (const sequence_step& step : steps) {
    f.segments.push_back({row, step});
    row += static_cast<std::int64_t>(step.tokens.size());
  }
  if (result<void> r = forward_chunk(f.segments, total, logits, stop); !r) {
    for (const sequence_step& step : steps) step.state->reset();
    return r;
  }
  return ok();
}

result<void> qwen3_next::forward_chunk(std::span<const segment> segments, std::int64_t n, float* logits,
                                       const std::stop_token& stop) {
  const model_config& c = config_;
  const std::int64_t h = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  buffers& f = *buf_;
  if (device_) {
    QCODER_CHECK(device_->forward_chunk(segments, n, logits, stop));
    for (const segment& seg : segments) seg.step.state->advance(static_cast<std::int64_t>(seg.step.tokens.size()));
    return ok();
  }

  if (trace_) std::fill(chunk_predicted_.begin(), chunk_predicted_.end(), -1);
  for (std::size_t s = 0; s < segments.size(); ++s) {  // embedding lookup, dequantised
    const segment& seg = segments[s];
    for (std::size_t t = 0; t < seg.step.tokens.size(); ++t) {
      const std::int64_t r = seg.row + static_cast<std::int64_t>(t);
      const std::int64_t id = seg.step.tokens[t];
      f.row_segment[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(s);
      for (std::int64_t i = 0; i < h; ++i) f.x[static_cast<std::size_t>(r * h + i)] = weights_.embed_tokens.at(id, i);
    }
  }

  for (std::int64_t li = 0; li < c.num_hidden_layers; ++li) {
    if (stop.stop_requested()) return fail(errc::cancelled, "cancelled during the forward pass");
    const layer_weights& layer = weights_.layers[static_cast<std::size_t>(li)];
    cpu::rms_norm(f.xn.data(), f.x.data(), layer.input_layernorm, n, h, eps, true);
    if (layer.kind == layer_kind::full_attention) {
      attention_block(layer, li, n, segments);
    } else {
      deltanet_block(layer, li, n, segments);
    }
    cpu::axpy(f.x.data(), f.mixer_out.data(), 1.0f, n * h);

    cpu::rms_norm(f.xn.data(), f.x.data(), layer.post_attention_layernorm, n, h, eps, true);
    if (layer.sparse) {
      QCODER_CHECK(moe_block(layer.moe, li, n));
    } else {
      dense_block(layer.dense, n);
    }
    cpu::axpy(f.x.data(), f.mixer_out.data(), 1.0f, n * h);
  }
  for (const segment& seg : segments) seg.step.state->advance(static_cast<std::int64_t>(seg.step.tokens.size()));
  if (store_) store_->next_token();
  if (trace_) record_routing(n);

  // The rows that want logits, gathered in step order, through one read of the head.
  std::int64_t rows = 0;
  for (const segment& seg : segments) {
    const std::int64_t count = static_cast<std::int64_t>(seg.step.tokens.size());
    const std::int64_t first = seg.step.mode == logits_mode::all ? 0 : count - 1;
    if (seg.step.mode == logits_mode::none) continue;
    cpu::rms_norm(f.final_norm.data() + rows * h, f.x.data() + (seg.row + first) * h, weights_.final_norm,
                  count - first, h, eps, true);
    rows += count - first;
  }
  if (rows > 0) backend_.matmul(logits, f.final_norm.data(), weights_.lm_head, rows);
  return ok();
}

// Gated attention: q_proj gives per head [q | gate]; q/k RMSNorm (zero-centred), partial NeoX RoPE,
// causal softmax(q·k / √d) with GQA, output × sigmoid(gate), then o_proj.
void qwen3_next::attention_block(const layer_weights& layer, std::int64_t layer_index, std::int64_t n,
                                 std::span<const segment> segments) {
  const model_config& c = config_;
  const attention_weights& w = layer.attention;
  buffers& f = *buf_;
  const std::int64_t d = c.head_dim;
  const std::int64_t n_h = c.num_attention_heads;
  const std::int64_t n_kv = c.num_key_value_heads;
  const float eps = static_cast<float>(c.rms_norm_eps);

  const matmul_job jobs[] = {{f.q_gate.data(), f.xn.data(), &w.q_proj, n},
                             {f.k.data(), f.xn.data(), &w.k_proj, n},
                             {f.v.data(), f.xn.data(), &w.v_proj, n}};
  backend_.matmul_batch(jobs);

  // Each row's q and k normalised and rotated at its position in its own sequence; k and v appended there.
  for (const segment& seg : segments) {
    const kv_view kv = seg.step.state->kv(layer_index);
    const std::int64_t start = seg.step.state->length();
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(seg.step.tokens.size()); ++i) {
      const std::int64_t t = seg.row + i;
      const std::int64_t pos = start + i;
      float* qg = f.q_gate.data() + t * 2 * n_h * d;
      // q heads are the first half of each [q | gate] pair: normalise and rotate them in place.
      for (std::int64_t hd = 0; hd < n_h; ++hd) {
        float* q = qg + hd * 2 * d;
        cpu::rms_norm(q, q, w.q_norm, 1, d, eps, true);
        cpu::rope_neox(q, 1, d, c.rotary_dim(), pos, c.rope_theta);
      }
      float* k = f.k.data() + t * n_kv * d;
      cpu::rms_norm(k, k, w.k_norm, n_kv, d, eps, true);
      cpu::rope_neox(k, n_kv, d, c.rotary_dim(), pos, c.rope_theta);
      std::copy(k, k + n_kv * d, kv.keys + pos * kv.stride);
      std::copy(f.v.data() + t * n_kv * d, f.v.data() + (t + 1) * n_kv * d, kv.values + pos * kv.stride);
    }
  }

  // Row t attends to its sequence's first (position + 1) keys, which now include its own.
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const std::int64_t group = n_h / n_kv;
  backend_.parallel_for(n * n_h, 1, [&](std::int64_t begin, std::int64_t end, int thread) {
    float* scores = f.scores.data() + thread * f.scores_stride;
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t t = task / n_h;
      const std::int64_t hd = task % n_h;
      const std::int64_t kv_head = hd / group;
      const segment& seg = segments[static_cast<std::size_t>(f.row_segment[static_cast<std::size_t>(t)])];
      const kv_view kv = seg.step.state->kv(layer_index);
      const std::int64_t keys = seg.step.state->length() + (t - seg.row) + 1;
      const float* q = f.q_gate.data() + t * 2 * n_h * d + hd * 2 * d;
      const float* gate = q + d;
      float* out = f.attn.data() + t * n_h * d + hd * d;
      cpu::attention_head(out, q, kv.keys + kv_head * d, kv.values + kv_head * d, keys, d, kv.stride, scale, scores);
      for (std::int64_t i = 0; i < d; ++i) out[i] *= ref::sigmoid(gate[i]);
    }
  });
  backend_.matmul(f.mixer_out.data(), f.attn.data(), w.o_proj, n);
}

// Gated DeltaNet: in_proj_qkvz / in_proj_ba grouped per key head; causal conv over [q, k, v] + SiLU;
// L2-normalised q, k (q also / √d_k); β = sigmoid(b), g = −exp(A_log)·softplus(a + dt_bias); the delta
// rule per value head (value head h reads key head h / r); gated RMSNorm with silu(z); out_proj.
void qwen3_next::deltanet_block(const layer_weights& layer, std::int64_t layer_index, std::int64_t n,
                                std::span<const segment> segments) {
  const model_config& c = config_;
  const deltanet_weights& w = layer.deltanet;
  buffers& f = *buf_;
  const std::int64_t n_k = c.linear_num_key_heads;
  const std::int64_t n_v = c.linear_num_value_heads;
  const std::int64_t dk = c.linear_key_head_dim;
  const std::int64_t dv = c.linear_value_head_dim;
  const std::int64_t r = n_v / n_k;
  const std::int64_t group = 2 * dk + 2 * r * dv;  // one key head's slice of in_proj_qkvz
  const std::int64_t key_dim = n_k * dk;
  const std::int64_t value_dim = n_v * dv;
  const std::int64_t conv_dim = 2 * key_dim + value_dim;

  const matmul_job jobs[] = {{f.qkvz.data(), f.xn.data(), &w.in_proj_qkvz, n},
                             {f.ba.data(), f.xn.data(), &w.in_proj_ba, n}};
  backend_.matmul_batch(jobs);

  // Regroup per token into mixed = [q (all key heads) | k (all key heads) | v (all value heads)] and z, b, a.
  for (std::int64_t t = 0; t < n; ++t) {
    const float* src = f.qkvz.data() + t * n_k * group;
    float* mixed = f.mixed.data() + t * conv_dim;
    float* z = f.z.data() + t * value_dim;
    for (std::int64_t kh = 0; kh < n_k; ++kh) {
      const float* g = src + kh * group;
      std::copy(g, g + dk, mixed + kh * dk);
      std::copy(g + dk, g + 2 * dk, mixed + key_dim + kh * dk);
      std::copy(g + 2 * dk, g + 2 * dk + r * dv, mixed + 2 * key_dim + kh * r * dv);
      std::copy(g + 2 * dk + r * dv, g + group, z + kh * r * dv);
      const float* ba = f.ba.data() + t * 2 * n_v + kh * 2 * r;
      for (std::int64_t j = 0; j < r; ++j) {
        const std::int64_t vh = kh * r + j;
        const float b = ba[j];
        const float a = ba[r + j];
        f.beta[static_cast<std::size_t>(t * n_v + vh)] = ref::sigmoid(b);
        f.g[static_cast<std::size_t>(t * n_v + vh)] =
            -std::exp(w.a_log.at(vh)) * ref::softplus(a + w.dt_bias.at(vh));
      }
    }
  }

  for (const segment& seg : segments) {  // the convolution runs along each sequence
    const recurrent_view mem = seg.step.state->recurrent(layer_index);
    cpu::causal_conv1d_silu(f.conv_out.data() + seg.row * conv_dim, f.mixed.data() + seg.row * conv_dim, w.conv1d,
                            mem.conv, static_cast<std::int64_t>(seg.step.tokens.size()), conv_dim,
                            c.linear_conv_kernel_dim);
  }
  for (std::int64_t t = 0; t < n; ++t) {
    float* row = f.conv_out.data() + t * conv_dim;
    cpu::l2_norm(row, n_k, dk, 1e-6f, 1.0f / std::sqrt(static_cast<float>(dk)));  // q
    cpu::l2_norm(row + key_dim, n_k, dk, 1e-6f, 1.0f);                            // k
  }

  // One recurrent step per token and head, for prefill too: a token's output must not depend on how the
  // prompt was cut into chunks (the prefix cache restores mid-prompt and continues; speculative decoding
  // verifies drafts in batches), and the chunked form rounds differently at every chunk boundary. On the
  // CPU the recurrence costs ~4·d_k·d_v flops per token and head, small next to the MoE, with the state in
  // L2; the chunked form (kernels/cpu/delta_rule) is the shape for GPUs.
  // Tasks: (sequence, value head), each walking its sequence's rows in order.
  const std::int64_t tasks = static_cast<std::int64_t>(segments.size()) * n_v;
  backend_.parallel_for(tasks, 1, [&](std::int64_t begin, std::int64_t end, int thread) {
    float* scratch = f.delta_scratch.data() + thread * f.delta_scratch_per_thread;
    for (std::int64_t task = begin; task < end; ++task) {
      const segment& seg = segments[static_cast<std::size_t>(task / n_v)];
      const std::int64_t vh = task % n_v;
      const std::int64_t kh = vh / r;
      float* s = seg.step.state->recurrent(layer_index).ssm + vh * dk * dv;
      const std::int64_t rows_end = seg.row + static_cast<std::int64_t>(seg.step.tokens.size());
      for (std::int64_t t = seg.row; t < rows_end; ++t) {
        const float* row = f.conv_out.data() + t * conv_dim;
        cpu::gated_delta_step(f.core.data() + t * value_dim + vh * dv, s, row + kh * dk, row + key_dim + kh * dk,
                              row + 2 * key_dim + vh * dv, f.g[static_cast<std::size_t>(t * n_v + vh)],
                              f.beta[static_cast<std::size_t>(t * n_v + vh)], dk, dv, scratch);
      }
    }
  });

  cpu::rms_norm_gated(f.normed.data(), f.core.data(), f.z.data(), w.norm, n * n_v, dv,
                      static_cast<float>(c.rms_norm_eps));
  backend_.matmul(f.mixer_out.data(), f.normed.data(), w.out_proj, n);
}

// Sparse MoE: router softmax in f32 over all experts, top-k (ties to the lower id), renormalised; tokens
// are grouped by expert so each expert runs once per chunk; the shared expert is scaled by
// sigmoid(shared_expert_gate(x)).
result<void> qwen3_next::moe_block(const moe_weights& moe, std::int64_t layer_index, std::int64_t n) {
  const model_config& c = config_;
  buffers& f = *buf_;
  const std::int64_t h = c.hidden_size;
  const std::int64_t e_count = c.num_experts;
  const std::int64_t k = c.num_experts_per_tok;
  const std::int64_t inner = c.moe_intermediate_size;
  const std::int64_t shared_inner = c.shared_expert_intermediate_size;

  f.jobs.clear();
  f.jobs.push_back({f.router.data(), f.xn.data(), &moe.router, n});
  f.jobs.push_back({f.shared_scale.data(), f.xn.data(), &moe.shared_expert_gate, n});
  f.jobs.push_back({f.shared_gate.data(), f.xn.data(), &moe.shared_expert.gate_proj, n});
  f.jobs.push_back({f.shared_up.data(), f.xn.data(), &moe.shared_expert.up_proj, n});
  backend_.matmul_batch(f.jobs);

  // Routing.
  std::fill(f.expert_offsets.begin(), f.expert_offsets.end(), 0);
  for (std::int64_t t = 0; t < n; ++t) {
    float* probs = f.router.data() + t * e_count;
    cpu::softmax(probs, e_count);
    std::int32_t* ids = f.top_ids.data() + t * k;
    float* weights = f.top_weights.data() + t * k;
    float total = 0.0f;
    for (std::int64_t j = 0; j < k; ++j) {  // k passes of argmax: k is small, E is at most a few hundred
      std::int32_t best = -1;
      for (std::int64_t e = 0; e < e_count; ++e) {
        if (std::find(ids, ids + j, static_cast<std::int32_t>(e)) != ids + j) continue;
        if (best < 0 || probs[e] > probs[best]) best = static_cast<std::int32_t>(e);
      }
      ids[j] = best;
      weights[j] = probs[best];
      total += probs[best];
      ++f.expert_offsets[static_cast<std::size_t>(best + 1)];
    }
    if (c.norm_topk_prob) {
      for (std::int64_t j = 0; j < k; ++j) weights[j] /= total;
    }
    if (trace_) {
      const std::int64_t m = moe_ordinal_[static_cast<std::size_t>(layer_index)];
      std::copy(ids, ids + k, chunk_routes_.data() + (m * f.batch + t) * k);
    }
  }
  std::partial_sum(f.expert_offsets.begin(), f.expert_offsets.end(), f.expert_offsets.begin());

  // Group assignments by expert: order[slot] = t * k + j, gathered rows in xs.
  {
    std::vector<std::int64_t>& cursor = f.expert_offsets;  // reused as a fill cursor, then restored
    for (std::int64_t a = 0; a < n * k; ++a) {
      const std::int32_t e = f.top_ids[static_cast<std::size_t>(a)];
      const std::int64_t slot = cursor[static_cast<std::size_t>(e)]++;
      f.order[static_cast<std::size_t>(slot)] = static_cast<std::int32_t>(a);
      const float* src = f.xn.data() + (a / k) * h;
      std::copy(src, src + h, f.xs.data() + slot * h);
    }
    for (std::int64_t e = e_count; e > 0; --e) cursor[static_cast<std::size_t>(e)] = cursor[static_cast<std::size_t>(e - 1)];
    cursor[0] = 0;
  }

  // The shared expert's down projection; with the expert cache, the loads of the first group run meanwhile.
  f.active.clear();
  for (std::int64_t e = 0; e < e_count; ++e) {
    if (f.expert_offsets[static_cast<std::size_t>(e + 1)] > f.expert_offsets[static_cast<std::size_t>(e)]) {
      f.active.push_back(static_cast<std::int32_t>(e));
    }
  }
  const std::size_t group = store_ ? static_cast<std::size_t>(store_->slots(layer_index)) : f.active.size();
  if (store_) store_->request(layer_index, std::span(f.active).first(std::min(group, f.active.size())), false);
  cpu::silu_glu(f.shared_gate.data(), f.shared_gate.data(), f.shared_up.data(), n * shared_inner);
  backend_.matmul(f.shared_down.data(), f.shared_gate.data(), moe.shared_expert.down_proj, n);
  if (((store_ && store_->options().prefetch) || trace_) && n == 1) {
    // Speculative prefetch: the next sparse layer's router on this hidden state predicts its experts.
    for (std::int64_t next = layer_index + 1; next < c.num_hidden_layers; ++next) {
      if (!weights_.layers[static_cast<std::size_t>(next)].sparse) continue;
      predict_experts(next, f.predicted);
      if (store_ && store_->options().prefetch) store_->request(next, f.predicted, true);
      if (trace_) {
        std::copy(f.predicted.begin(), f.predicted.end(),
                  chunk_predicted_.data() + moe_ordinal_[static_cast<std::size_t>(next)] * c.num_experts_per_tok);
      }
      break;
    }
  }

  // Routed experts: gate/up, SiLU-GLU, down, each expert on its gathered rows
  // [begin, begin + count) of xs / gate / up / down; all the experts of one call as two matmul batches.
  auto rows_of = [&f](std::int32_t e) {
    const std::int64_t begin = f.expert_offsets[static_cast<std::size_t>(e)];
    return std::pair{begin, f.expert_offsets[static_cast<std::size_t>(e + 1)] - begin};
  };
  auto run_experts = [&](std::span<const std::int32_t> experts, const mlp_weights* const* views) {
    f.jobs.clear();
    for (std::size_t i = 0; i < experts.size(); ++i) {
      const auto [begin, count] = rows_of(experts[i]);
      f.jobs.push_back({f.gate.data() + begin * inner, f.xs.data() + begin * h, &views[i]->gate_proj, count});
      f.jobs.push_back({f.up.data() + begin * inner, f.xs.data() + begin * h, &views[i]->up_proj, count});
    }
    backend_.matmul_batch(f.jobs);
    for (const std::int32_t e : experts) {
      const auto [begin, count] = rows_of(e);
      cpu::silu_glu(f.gate.data() + begin * inner, f.gate.data() + begin * inner, f.up.data() + begin * inner,
                    count * inner);
    }
    f.jobs.clear();
    for (std::size_t i = 0; i < experts.size(); ++i) {
      const auto [begin, count] = rows_of(experts[i]);
      f.jobs.push_back({f.down.data() + begin * h, f.gate.data() + begin * inner, &views[i]->down_proj, count});
    }
    backend_.matmul_batch(f.jobs);
  };
  if (!store_) {
    for (std::size_t i = 0; i < f.active.size(); ++i) f.views[i] = &moe.experts[static_cast<std::size_t>(f.active[i])];
    run_experts(f.active, f.views.data());
  }
  // With the expert cache: in groups that fit it, and inside a group in the order the loads finish (what is
  // resident first, while the rest is read), each time all that has arrived. Each expert writes its own rows
  // and the combine below adds them in a fixed order, so the result does not depend on that order.
  for (std::size_t g0 = 0; store_ && g0 < f.active.size(); g0 += group) {
    const std::span<const std::int32_t> members = std::span(f.active).subspan(g0, std::min(group, f.active.size() - g0));
    if (g0 > 0) store_->request(layer_index, members, false);
    f.pending.assign(members.begin(), members.end());
    while (!f.pending.empty()) {
      f.ready.clear();
      QCODER_CHECK(store_->acquire_ready(layer_index, f.pending, f.ready));
      f.ready_experts.clear();
      for (std::size_t i = 0; i < f.ready.size(); ++i) {
        f.ready_experts.push_back(f.pending[f.ready[i].first]);
        f.views[i] = f.ready[i].second;
        f.pending[f.ready[i].first] = -1;
      }
      run_experts(f.ready_experts, f.views.data());
      for (const std::int32_t e : f.ready_experts) store_->release(layer_index, e);
      std::erase(f.pending, -1);
    }
  }

  // Combine: out[t] = Σ_j w_j · expert_j(x_t) + sigmoid(gate(x_t)) · shared(x_t).
  std::fill(f.mixer_out.begin(), f.mixer_out.begin() + n * h, 0.0f);
  for (std::int64_t slot = 0; slot < n * k; ++slot) {
    const std::int64_t a = f.order[static_cast<std::size_t>(slot)];
    cpu::axpy(f.mixer_out.data() + (a / k) * h, f.down.data() + slot * h, f.top_weights[static_cast<std::size_t>(a)], h);
  }
  for (std::int64_t t = 0; t < n; ++t) {
    cpu::axpy(f.mixer_out.data() + t * h, f.shared_down.data() + t * h,
              ref::sigmoid(f.shared_scale[static_cast<std::size_t>(t)]), h);
  }
  return ok();
}

void qwen3_next::predict_experts(std::int64_t layer_index, std::vector<std::int32_t>& out) {
  const model_config& c = config_;
  buffers& f = *buf_;
  float* probs = f.prediction.data();
  backend_.matmul(probs, f.xn.data(), weights_.layers[static_cast<std::size_t>(layer_index)].moe.router, 1);
  out.clear();
  for (std::int64_t j = 0; j < c.num_experts_per_tok; ++j) {  // softmax is monotonic: top-k of the logits
    std::int32_t best = -1;
    for (std::int64_t e = 0; e < c.num_experts; ++e) {
      if (std::find(out.begin(), out.end(), static_cast<std::int32_t>(e)) != out.end()) continue;
      if (best < 0 || probs[e] > probs[best]) best = static_cast<std::int32_t>(e);
    }
    out.push_back(best);
  }
}

// Dense SiLU-GLU MLP, for layers listed in mlp_only_layers.
void qwen3_next::dense_block(const mlp_weights& mlp, std::int64_t n) {
  buffers& f = *buf_;
  const std::int64_t inner = config_.intermediate_size;
  const matmul_job jobs[] = {{f.gate.data(), f.xn.data(), &mlp.gate_proj, n}, {f.up.data(), f.xn.data(), &mlp.up_proj, n}};
  backend_.matmul_batch(jobs);
  cpu::silu_glu(f.gate.data(), f.gate.data(), f.up.data(), n * inner);
  backend_.matmul(f.mixer_out.data(), f.gate.data(), mlp.down_proj, n);
}

}  // namespace qcoder::engine
