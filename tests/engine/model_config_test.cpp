// model_config: the tiny test configs parse to the documented values; layer_types, end-of-sequence ids and
// quantization_config are read the ways real checkpoints write them; bad configs name the file and key.
#include "engine/model_config.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path tiny_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

json tiny_config() {
  std::ifstream in(tiny_dir / "bf16/config.json");
  return json::parse(in);
}

result<model_config> parse(const json& config, std::string_view generation = "") {
  return model_config::parse(config.dump(), generation, "/models/x/config.json");
}

bool mentions(const error& e, std::initializer_list<std::string_view> parts) {
  return std::all_of(parts.begin(), parts.end(), [&](std::string_view p) { return e.message.find(p) != std::string::npos; });
}

TEST(ModelConfig, LoadsTinyBf16) {
  result<model_config> c = model_config::load(tiny_dir / "bf16");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->model_type, "qwen3_next");
  EXPECT_EQ(c->vocab_size, 2048);
  EXPECT_EQ(c->hidden_size, 128);
  EXPECT_EQ(c->num_hidden_layers, 8);
  EXPECT_EQ(c->intermediate_size, 256);
  EXPECT_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->partial_rotary_factor, 0.25);
  EXPECT_EQ(c->rotary_dim(), 16);
  EXPECT_EQ(c->rope_theta, 10000000.0);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->linear_num_key_heads, 2);
  EXPECT_EQ(c->linear_num_value_heads, 4);
  EXPECT_EQ(c->linear_key_head_dim, 32);
  EXPECT_EQ(c->linear_value_head_dim, 32);
  EXPECT_EQ(c->linear_conv_kernel_dim, 4);
  EXPECT_EQ(c->num_experts, 16);
  EXPECT_EQ(c->num_experts_per_tok, 4);
  EXPECT_EQ(c->moe_intermediate_size, 64);
  EXPECT_EQ(c->shared_expert_intermediate_size, 64);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->decoder_sparse_step, 1);
  EXPECT_TRUE(c->mlp_only_layers.empty());
  const std::vector<layer_kind> expected{layer_kind::linear_attention, layer_kind::linear_attention, layer_kind::linear_attention,
                                         layer_kind::full_attention,   layer_kind::linear_attention, layer_kind::linear_attention,
                                         layer_kind::linear_attention, layer_kind::full_attention};
  EXPECT_EQ(c->layer_types, expected);
  for (std::int64_t l = 0; l < 8; ++l) EXPECT_TRUE(c->is_moe_layer(l));
  EXPECT_FALSE(c->quant.fp8);
  EXPECT_EQ(c->bos_token_id, 2046);
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{2047, 2046}));  // generation_config's list wins
}

TEST(ModelConfig, LoadsTinyFp8QuantizationConfig) {
  result<model_config> c = model_config::load(tiny_dir / "fp8");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_TRUE(c->quant.fp8);
  EXPECT_EQ(c->quant.block, (std::array<std::int32_t, 2>{128, 128}));
  EXPECT_EQ(c->quant.modules_to_not_convert.size(), 77u);
  EXPECT_EQ(c->quant.modules_to_not_convert.front(), "lm_head");
  EXPECT_EQ(c->quant.modules_to_not_convert.back(), "mtp.pre_fc_norm_hidden");
}

TEST(ModelConfig, LayerTypesListWins) {
  json j = tiny_config();
  j.erase("full_attention_interval");
  j["num_hidden_layers"] = 3;
  j["layer_types"] = {"full_attention", "linear_attention", "full_attention"};
  result<model_config> c = parse(j);
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->layer_types,
            (std::vector<layer_kind>{layer_kind::full_attention, layer_kind::linear_attention, layer_kind::full_attention}));

  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention"};
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"/models/x/config.json", "layer_types[1]", "sliding_attention"})) << c.err().message;

  j["layer_types"] = {"full_attention"};
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"layer_types has 1 entries", "num_hidden_layers is 3"})) << c.err().message;

  j.erase("layer_types");
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"/models/x/config.json", "layer_types", "full_attention_interval"})) << c.err().message;
}

TEST(ModelConfig, FullAttentionInterval) {
  json j = tiny_config();
  j["full_attention_interval"] = 2;
  j["num_hidden_layers"] = 4;
  result<model_config> c = parse(j);
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->layer_types, (std::vector<layer_kind>{layer_kind::linear_attention, layer_kind::full_attention,
                                                      layer_kind::linear_attention, layer_kind::full_attention}));
}

TEST(ModelConfig, UnknownModelType) {
  json j = tiny_config();
  j["model_type"] = "llama";
  result<model_config> c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.err().code, errc::unsupported);
  EXPECT_TRUE(mentions(c.err(), {"/models/x/config.json", "model_type \"llama\" is not supported", "qwen3_next"})) << c.err().message;
}

TEST(ModelConfig, MissingOrMistypedKeyNamesFileAndKey) {
  for (const char* key : {"model_type", "hidden_size", "vocab_size", "num_experts", "linear_value_head_dim", "head_dim", "rope_theta"}) {
    json j = tiny_config();
    j.erase(key);
    result<model_config> c = parse(j);
    ASSERT_FALSE(c) << key;
    EXPECT_EQ(c.err().code, errc::parse_error);
    EXPECT_TRUE(mentions(c.err(), {"/models/x/config.json", "missing required key", std::string("\"") + key + "\""})) << c.err().message;
  }
  json j = tiny_config();
  j["hidden_size"] = "128";
  result<model_config> c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"config.json", "\"hidden_size\" must be an integer", "string"})) << c.err().message;
  j = tiny_config();
  j["num_attention_heads"] = 0;
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"\"num_attention_heads\" must be positive"})) << c.err().message;
  j = tiny_config();
  j["num_key_value_heads"] = 3;
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"not a multiple of num_key_value_heads 3"})) << c.err().message;
}

TEST(ModelConfig, InvalidJsonNamesTheFile) {
  result<model_config> c = model_config::parse("{\"model_type\": ", "", "/m/config.json");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.err().code, errc::parse_error);
  EXPECT_TRUE(mentions(c.err(), {"/m/config.json", "not valid JSON"})) << c.err().message;
  c = parse(tiny_config(), "[1,");
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"/models/x/generation_config.json", "not valid JSON"})) << c.err().message;
}

TEST(ModelConfig, EndOfSequenceIds) {
  json j = tiny_config();
  result<model_config> c = parse(j, R"({"eos_token_id": 7})");  // an int in generation_config
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{7}));
  c = parse(j, R"({"eos_token_id": [5, 6]})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{5, 6}));
  c = parse(j, R"({"do_sample": true})");  // no eos there: config.json's
  ASSERT_TRUE(c);
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{2047}));
  c = parse(j);  // no generation_config.json at all
  ASSERT_TRUE(c);
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{2047}));
  j["eos_token_id"] = {2047, 2045};
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->eos_token_ids, (std::vector<std::int64_t>{2047, 2045}));
  c = parse(j, R"({"eos_token_id": "x"})");
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"generation_config.json", "eos_token_id"})) << c.err().message;
  c = parse(j, R"({"eos_token_id": 999999})");
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"eos token id 999999", "outside the vocabulary"})) << c.err().message;
}

TEST(ModelConfig, QuantizationConfig) {
  json j = tiny_config();
  j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                              {"weight_block_size", {64, 32}}, {"modules_to_not_convert", {"lm_head"}}};
  result<model_config> c = parse(j);
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_TRUE(c->quant.fp8);
  EXPECT_EQ(c->quant.block, (std::array<std::int32_t, 2>{64, 32}));
  EXPECT_EQ(c->quant.modules_to_not_convert, std::vector<std::string>{"lm_head"});

  j["quantization_config"]["quant_method"] = "awq";
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.err().code, errc::unsupported);
  EXPECT_TRUE(mentions(c.err(), {"config.json", "quant_method \"awq\""})) << c.err().message;

  j["quantization_config"]["quant_method"] = "fp8";
  j["quantization_config"]["fmt"] = "e5m2";
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"quantization_config.fmt", "e5m2"})) << c.err().message;

  j["quantization_config"]["fmt"] = "e4m3";
  j["quantization_config"]["weight_block_size"] = {128};
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"quantization_config.weight_block_size"})) << c.err().message;

  j["quantization_config"].erase("weight_block_size");
  j["quantization_config"].erase("quant_method");
  c = parse(j);
  ASSERT_FALSE(c);
  EXPECT_TRUE(mentions(c.err(), {"missing required key \"quantization_config.quant_method\""})) << c.err().message;
}

TEST(ModelConfig, DenseLayersAndRopeParameters) {
  json j = tiny_config();
  j["mlp_only_layers"] = {0};
  j["decoder_sparse_step"] = 2;
  j.erase("rope_theta");
  j.erase("partial_rotary_factor");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000000}, {"partial_rotary_factor", 0.5}};
  result<model_config> c = parse(j);
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_FALSE(c->is_moe_layer(0));  // listed as dense
  EXPECT_TRUE(c->is_moe_layer(1));   // (1 + 1) % 2 == 0
  EXPECT_FALSE(c->is_moe_layer(2));
  EXPECT_EQ(c->rope_theta, 5000000.0);
  EXPECT_EQ(c->rotary_dim(), 32);
}

TEST(ModelConfig, MissingConfigFile) {
  result<model_config> c = model_config::load(fs::path(QCODER_TEST_DATA_DIR) / "no-such-model");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.err().code, errc::not_found);
  EXPECT_TRUE(mentions(c.err(), {"no-such-model/config.json"})) << c.err().message;
}

}  // namespace
}  // namespace qcoder::engine
