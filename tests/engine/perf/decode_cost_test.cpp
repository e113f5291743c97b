// The cost build of the device forward pass: its byte counts against an independent count of the bound
// weights (qwen3_next_weights::bytes_per_token), shape-only weights against real ones, and how the counts
// scale with the batch.
#include "engine/perf/decode_cost.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <set>

#include "engine/checkpoint.h"
#include "engine/make_model.h"
#include "kernels/cuda/cost/cost_recorder.h"
#include "kernels/cuda/runtime.h"

namespace qcoder::engine {
namespace {

const std::filesystem::path tiny_dir = std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

struct bound_model {
  checkpoint ckpt;
  model_config config;
  qwen3_next_weights weights;
};

bound_model load(const std::string& variant) {
  result<model_config> config = model_config::load(tiny_dir / variant);
  EXPECT_TRUE(config) << config.err().message;
  result<checkpoint> ckpt = checkpoint::open(tiny_dir / variant);
  EXPECT_TRUE(ckpt) << ckpt.err().message;
  result<qwen3_next_weights> w = qwen3_next_weights::bind(*ckpt, *config);
  EXPECT_TRUE(w) << w.err().message;
  return bound_model{std::move(ckpt).value(), *config, *w};
}

class DecodeCost : public ::testing::TestWithParam<std::string> {};

TEST_P(DecodeCost, WeightBytesOfOneTokenEqualTheBoundWeightsCount) {
  const bound_model m = load(GetParam());
  result<decode_cost> cost = cost_of_decode(m.config, m.weights, 1, 16);
  ASSERT_TRUE(cost) << cost.err().message;
  // Every matrix byte one token reads: the resident ones and its top-k experts per MoE layer.
  EXPECT_EQ(cost->weight_bytes() + cost->routed_bytes(), m.weights.bytes_per_token(m.config));
  std::int64_t moe_layers = 0;
  for (const layer_weights& l : m.weights.layers) moe_layers += l.sparse;
  ASSERT_GT(moe_layers, 0);
  EXPECT_EQ(cost->moe_layers, moe_layers);
  EXPECT_EQ(cost->routed_bytes(), moe_layers * m.config.num_experts_per_tok * expert_bytes(m.weights));
  // Every layer got its launches, and the head its own (embedding, final norm, LM head).
  std::set<std::int64_t> layers;
  for (const cuda_cost::launch_record& r : cost->launches) layers.insert(r.layer);
  EXPECT_EQ(static_cast<std::int64_t>(layers.size()), m.config.num_hidden_layers + 1);
  EXPECT_EQ(*layers.begin(), -1);
  // The routed experts are read in the layer of their router.
  for (const cuda_cost::launch_record& r : cost->launches) {
    if (r.routed_bytes > 0) {
      EXPECT_EQ(r.kernel, "expert_gemv");
      EXPECT_GE(r.layer, 0);
    }
  }
  // All experts were "uploaded": the device total covers them.
  EXPECT_GT(cost->device_bytes, all_expert_bytes(m.weights));
  EXPECT_GT(cost->state_bytes, 0);
}

TEST_P(DecodeCost, ShapeOnlyWeightsCostTheSameAsTheCheckpoint) {
  const bound_model m = load(GetParam());
  const qwen3_next_weights shapes = shape_only_weights(m.config);
  EXPECT_EQ(shapes.bytes_per_token(m.config), m.weights.bytes_per_token(m.config));
  EXPECT_EQ(all_expert_bytes(shapes), all_expert_bytes(m.weights));
  result<decode_cost> real = cost_of_decode(m.config, m.weights, 2, 32);
  result<decode_cost> fake = cost_of_decode(m.config, shapes, 2, 32);
  ASSERT_TRUE(real && fake);
  EXPECT_EQ(fake->device_bytes, real->device_bytes);
  EXPECT_EQ(fake->state_bytes, real->state_bytes);
  ASSERT_EQ(fake->launches.size(), real->launches.size());
  for (std::size_t i = 0; i < real->launches.size(); ++i) {
    EXPECT_EQ(fake->launches[i].kernel, real->launches[i].kernel) << i;
    EXPECT_EQ(fake->launches[i].weight_bytes + fake->launches[i].vector_bytes + fake->launches[i].routed_bytes,
              real->launches[i].weight_bytes + real->launches[i].vector_bytes + real->launches[i].routed_bytes)
        << real->launches[i].kernel << " at " << i;
    EXPECT_EQ(fake->launches[i].layer, real->launches[i].layer) << i;
  }
}

TEST_P(DecodeCost, BytesScaleWithTheBatchAsAGemvReadsThem) {
  const bound_model m = load(GetParam());
  result<decode_cost> one = cost_of_decode(m.config, m.weights, 1, 64);
  result<decode_cost> four = cost_of_decode(m.config, m.weights, 4, 64);
  ASSERT_TRUE(one && four);
  // The same launches, but for the final norm: one per sequence that wants logits.
  ASSERT_EQ(four->launches.size(), one->launches.size() + 3);
  // The resident weights are read once per launch whatever the batch; each row's experts are its own
  // assignments; activations, FLOPs and per-sequence state grow with the rows.
  EXPECT_EQ(four->weight_bytes() - four->launches.front().weight_bytes,
            one->weight_bytes() - one->launches.front().weight_bytes);  // all but the embedding rows
  EXPECT_EQ(four->launches.front().weight_bytes, 4 * one->launches.front().weight_bytes);
  EXPECT_EQ(four->routed_bytes(), 4 * one->routed_bytes());
  EXPECT_EQ(four->activation_bytes(), 4 * one->activation_bytes());
  EXPECT_EQ(four->state_traffic_bytes(), 4 * one->state_traffic_bytes());
  EXPECT_EQ(four->state_bytes, 4 * one->state_bytes);
  const auto gemv_flops = [](const decode_cost& c) {
    double total = 0;
    for (const cuda_cost::launch_record& r : c.launches) total += r.kernel == "gemv" ? r.flops : 0.0;
    return total;
  };
  EXPECT_GT(gemv_flops(*one), 0.0);
  EXPECT_DOUBLE_EQ(gemv_flops(*four), 4 * gemv_flops(*one));
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, DecodeCost, ::testing::Values("bf16", "fp8"));

TEST(DecodeCostReal, QwenCoderNextDimensions) {
  // The published config.json of Qwen3-Coder-Next: hidden 2048, 48 layers (every 4th full attention), 512
  // experts of 512, top-10, a shared expert of 512, 16 heads of 256 with 2 KV heads, DeltaNet 16 key heads
  // and 32 value heads of 128, vocabulary 151936.
  result<model_config> c = preset_config("slice", 48, 512);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->num_hidden_layers, 48);
  EXPECT_EQ(c->num_experts, 512);
  EXPECT_EQ(c->num_experts_per_tok, 10);
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->moe_intermediate_size, 512);
  EXPECT_EQ(c->shared_expert_intermediate_size, 512);
  EXPECT_EQ(c->num_attention_heads, 16);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 256);
  EXPECT_EQ(c->linear_num_key_heads, 16);
  EXPECT_EQ(c->linear_num_value_heads, 32);
  EXPECT_EQ(c->linear_key_head_dim, 128);
  EXPECT_EQ(c->linear_value_head_dim, 128);
  EXPECT_EQ(c->vocab_size, 151936);
  std::int64_t full = 0;
  for (std::size_t i = 0; i < c->layer_types.size(); ++i) {
    if (c->layer_types[i] == layer_kind::full_attention) {
      ++full;
      EXPECT_EQ(i % 4, 3u);
    }
  }
  EXPECT_EQ(full, 12);
  c->quant.fp8 = true;
  const qwen3_next_weights w = shape_only_weights(*c);
  // One FP8 expert: 3 × 512 × 2048 bytes and 3 × (4 × 16) BF16 block scales.
  EXPECT_EQ(expert_bytes(w), 3 * 512 * 2048 + 3 * 4 * 16 * 2);
  result<decode_cost> cost = cost_of_decode(*c, w, 1, 4096);
  ASSERT_TRUE(cost) << cost.err().message;
  EXPECT_EQ(cost->weight_bytes() + cost->routed_bytes(), w.bytes_per_token(*c));
  EXPECT_EQ(cost->routed_bytes(), 48 * 10 * expert_bytes(w));
  // 12 attention layers × 4096 tokens × 2 KV heads × 256 × (K and V) × 4 bytes, read by attention.
  std::int64_t kv_read = 0;
  for (const cuda_cost::launch_record& r : cost->launches) {
    if (r.kernel == "attention") kv_read += r.state_bytes;
  }
  EXPECT_EQ(kv_read, 12 * (4096 + 1) * 2 * 256 * 2 * 4);
}

TEST(CostRecorder, FakeDeviceMemoryIsCountedAndTracedToItsSource) {
  cuda_cost::cost_recorder recorder;
  const cuda_cost::cost_scope scope(recorder);
  result<void*> a = cuda_cost::allocate(1000);
  result<void*> b = cuda_cost::allocate(0);
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(recorder.device_bytes(), 1000);
  const char host[16] = {};
  ASSERT_TRUE(cuda_cost::copy(static_cast<char*>(*a) + 100, host, sizeof host, nullptr));
  EXPECT_EQ(recorder.host_source(static_cast<char*>(*a) + 105), host + 5);
  EXPECT_EQ(recorder.host_source(static_cast<char*>(*a) + 116), nullptr);
  cuda_cost::release(*a);
  EXPECT_EQ(recorder.device_bytes(), 0);
  // Managed memory is real (the host writes sequence state into it) and counted.
  result<void*> m = cuda_cost::allocate_managed(4096);
  ASSERT_TRUE(m);
  std::memset(*m, 0, 4096);
  EXPECT_EQ(recorder.managed_bytes(), 4096);
}

TEST(CostRecorder, EntryPointsNeedAnActiveRecorder) {
  EXPECT_FALSE(cuda_cost::allocate(16));
  EXPECT_EQ(cuda_cost::active_recorder(), nullptr);
}

}  // namespace
}  // namespace qcoder::engine
