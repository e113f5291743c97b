// checkpoint: the tiny BF16 / FP8 test checkpoints load with the right tensors; every kind of broken file
// gives one clear error naming the file and the tensor; a sharded copy exposes byte-identical tensors.
#include "engine/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path tiny_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header (as text, written verbatim) and `data_bytes` bytes of data.
std::string safetensors_bytes(std::string_view header, std::size_t data_bytes, char fill = '\x11') {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out += header;
  out.append(data_bytes, fill);
  return out;
}

bool mentions(const error& e, std::initializer_list<std::string_view> parts) {
  return std::all_of(parts.begin(), parts.end(), [&](std::string_view p) { return e.message.find(p) != std::string::npos; });
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("qcoder-checkpoint-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(), ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes one file and opens it; returns the error (the test expects failure).
  error open_broken(std::string_view bytes) {
    const fs::path p = dir_ / "model.safetensors";
    write_all(p, bytes);
    result<checkpoint> c = checkpoint::open(dir_);
    EXPECT_FALSE(c) << "a broken file was accepted";
    return c ? error{} : c.err();
  }

  fs::path dir_;
};

TEST_F(CheckpointTest, LoadsTinyBf16) {
  result<checkpoint> c = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->tensor_count(), 562u);
  // Tensor data is everything after the 8-byte length and the 63584-byte header.
  EXPECT_EQ(c->total_bytes(), fs::file_size(tiny_dir / "bf16/model.safetensors") - 8 - 63584);
  const std::vector<std::string_view> names = c->names();
  for (std::string_view name : names) EXPECT_EQ(c->find(name)->type, dtype::bf16) << name;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  result<const tensor_info*> embed = c->get("model.embed_tokens.weight", std::array<std::int64_t, 2>{2048, 128});
  ASSERT_TRUE(embed) << embed.err().message;
  EXPECT_EQ((*embed)->bytes.size(), 2048u * 128 * 2);
  EXPECT_EQ((*embed)->elements(), 2048 * 128);
  EXPECT_EQ(*(*embed)->file, tiny_dir / "bf16" / "model.safetensors");
  result<weight_matrix> m = c->matrix("model.embed_tokens.weight", 2048, 128);
  ASSERT_TRUE(m) << m.err().message;
  EXPECT_FALSE(m->quantized());
  EXPECT_EQ(m->at(0, 0), bf16_to_f32(0xbf4d));  // first bytes of the tensor: 4d bf 03 3d
  EXPECT_EQ(m->at(0, 1), bf16_to_f32(0x3d03));

  const std::array<std::int64_t, 3> conv_shape{256, 1, 4};
  EXPECT_TRUE(c->get("model.layers.0.linear_attn.conv1d.weight", conv_shape));
  result<weight_vector> a_log = c->vector("model.layers.0.linear_attn.A_log", 4);
  ASSERT_TRUE(a_log) << a_log.err().message;
  EXPECT_EQ(a_log->at(0), bf16_to_f32(0xbf4b));
  for (std::int64_t i = 0; i < 4; ++i) EXPECT_LT(a_log->at(i), 0.0f);  // log of U(0.02, 1)
  EXPECT_TRUE(c->find("mtp.layers.0.mlp.experts.15.down_proj.weight"));
  EXPECT_EQ(c->find("model.layers.0.self_attn.q_proj.weight"), nullptr);  // layer 0 is DeltaNet
}

TEST_F(CheckpointTest, LoadsTinyFp8WithScales) {
  result<checkpoint> c = checkpoint::open(tiny_dir / "fp8");
  ASSERT_TRUE(c) << c.err().message;
  result<checkpoint> ref = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(ref) << ref.err().message;
  EXPECT_EQ(c->tensor_count(), 1045u);
  std::size_t fp8 = 0;
  for (std::string_view name : c->names()) {
    if (c->find(name)->type != dtype::f8_e4m3) continue;
    ++fp8;
    EXPECT_TRUE(c->find(std::string(name) + "_scale_inv")) << name;
  }
  EXPECT_EQ(fp8, 483u);

  result<weight_matrix> q = c->matrix("model.layers.3.self_attn.q_proj.weight", 512, 128);
  ASSERT_TRUE(q) << q.err().message;
  ASSERT_TRUE(q->quantized());
  EXPECT_EQ(q->scale_type, dtype::bf16);
  EXPECT_EQ(q->scale_cols(), 1);
  EXPECT_EQ(static_cast<const std::uint8_t*>(q->data)[0], 0xeb);
  EXPECT_EQ(q->at(0, 0), f8_e4m3_to_f32(0xeb) * bf16_to_f32(0x3a66));
  // Every dequantised value is within E4M3's precision (3 mantissa bits) of the BF16 original.
  result<weight_matrix> b = ref->matrix("model.layers.3.self_attn.q_proj.weight", 512, 128);
  ASSERT_TRUE(b);
  for (std::int64_t r = 0; r < 512; ++r) {
    const float scale = bf16_to_f32(static_cast<const std::uint16_t*>(q->scales)[r / 128]);
    for (std::int64_t col = 0; col < 128; ++col) {
      ASSERT_LE(std::fabs(q->at(r, col) - b->at(r, col)), 0.0625f * std::fabs(b->at(r, col)) + scale * 0x1p-10f) << r << "," << col;
    }
  }
  // Modules in modules_to_not_convert stay BF16 and come back unquantised.
  result<weight_matrix> gate = c->matrix("model.layers.0.mlp.gate.weight", 16, 128);
  ASSERT_TRUE(gate);
  EXPECT_FALSE(gate->quantized());
}

TEST_F(CheckpointTest, MissingTensorAndWrongShapeNameTheTensorAndFile) {
  result<checkpoint> c = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(c);
  result<const tensor_info*> missing = c->get("model.layers.99.mlp.gate.weight");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.err().code, errc::not_found);
  EXPECT_TRUE(mentions(missing.err(), {"model.layers.99.mlp.gate.weight", "model.safetensors"})) << missing.err().message;

  result<weight_matrix> wrong = c->matrix("model.embed_tokens.weight", 2048, 64);
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(mentions(wrong.err(), {"model.embed_tokens.weight", "model.safetensors", "[2048, 128]", "expected [2048, 64]"}))
      << wrong.err().message;
  result<weight_vector> not_a_vector = c->vector("model.embed_tokens.weight", 2048 * 128);
  ASSERT_FALSE(not_a_vector);
  EXPECT_TRUE(mentions(not_a_vector.err(), {"model.embed_tokens.weight", "expected [262144]"})) << not_a_vector.err().message;
}

TEST_F(CheckpointTest, TruncatedFile) {
  const std::string full = read_all(tiny_dir / "bf16/model.safetensors");
  error e = open_broken(std::string_view(full).substr(0, full.size() / 2));
  EXPECT_EQ(e.code, errc::corrupt_data);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor '", "run past the end of the data"})) << e.message;

  e = open_broken(std::string_view(full).substr(0, 5));
  EXPECT_TRUE(mentions(e, {"model.safetensors", "truncated: 5 bytes"})) << e.message;
  e = open_broken("");
  EXPECT_TRUE(mentions(e, {"model.safetensors", "truncated: 0 bytes"})) << e.message;
}

TEST_F(CheckpointTest, HeaderLengthPastTheEnd) {
  std::string bytes = safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  const std::uint64_t huge = 1ull << 40;
  std::memcpy(bytes.data(), &huge, 8);
  const error e = open_broken(bytes);
  EXPECT_EQ(e.code, errc::corrupt_data);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "header length 1099511627776 runs past the end of the file"})) << e.message;
}

TEST_F(CheckpointTest, OverlappingOffsets) {
  const error e = open_broken(safetensors_bytes(
      R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  EXPECT_EQ(e.code, errc::corrupt_data);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor 'second'", "overlap tensor 'first'"})) << e.message;
}

TEST_F(CheckpointTest, OutOfRangeOffsets) {
  const error e = open_broken(safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]}})", 12));
  EXPECT_EQ(e.code, errc::corrupt_data);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor 'w'", "[8, 16] run past the end of the data (12 bytes)"})) << e.message;
  const error reversed = open_broken(safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[0],"data_offsets":[8,4]}})", 12));
  EXPECT_TRUE(mentions(reversed, {"tensor 'w'", "begin <= end"})) << reversed.message;
}

TEST_F(CheckpointTest, SizeMustMatchShapeTimesDtype) {
  const error e = open_broken(safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", 8));
  EXPECT_EQ(e.code, errc::corrupt_data);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor 'w'", "hold 8 bytes", "[2, 3] of BF16 needs 12"})) << e.message;
}

TEST_F(CheckpointTest, UnknownDtype) {
  const error e = open_broken(safetensors_bytes(
      R"({"__metadata__":{"format":"pt"},"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8));
  EXPECT_EQ(e.code, errc::unsupported);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor 'ids'", "unknown dtype \"I64\""})) << e.message;
}

TEST_F(CheckpointTest, MalformedHeaders) {
  error e = open_broken(safetensors_bytes("{not json", 0));
  EXPECT_EQ(e.code, errc::parse_error);
  EXPECT_TRUE(mentions(e, {"model.safetensors", "not valid JSON"})) << e.message;
  e = open_broken(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  EXPECT_TRUE(mentions(e, {"model.safetensors", "tensor 'w' appears twice"})) << e.message;
  e = open_broken(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
  EXPECT_TRUE(mentions(e, {"tensor 'w'", "shape"})) << e.message;
  e = open_broken(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", 4));
  EXPECT_TRUE(mentions(e, {"tensor 'w'", "data_offsets"})) << e.message;
  e = open_broken(safetensors_bytes("[1, 2]", 0));
  EXPECT_TRUE(mentions(e, {"model.safetensors", "expected an object"})) << e.message;
}

TEST_F(CheckpointTest, Fp8WeightWithoutItsScale) {
  write_all(dir_ / "model.safetensors",
            safetensors_bytes(R"({"lone.weight":{"dtype":"F8_E4M3","shape":[4,4],"data_offsets":[0,16]}})", 16, '\x38'));
  result<checkpoint> c = checkpoint::open(dir_);
  ASSERT_TRUE(c) << c.err().message;  // the file itself is fine; the error comes when the weight is used
  result<weight_matrix> m = c->matrix("lone.weight", 4, 4);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.err().code, errc::not_found);
  EXPECT_TRUE(mentions(m.err(), {"model.safetensors", "tensor 'lone.weight'", "lone.weight_scale_inv' is missing"})) << m.err().message;
}

TEST_F(CheckpointTest, Fp8ScalesOfEveryTypeWithPartialEdgeBlocks) {
  // 130 x 200 with 128 x 128 blocks: scales [2, 2], the last row and column of blocks partial.
  const std::size_t n = 130 * 200;
  for (const char* scale_type : {"BF16", "F16", "F32"}) {
    const std::size_t scale_size = std::string_view(scale_type) == "F32" ? 4 : 2;
    const std::string header = fmt::format(
        R"({{"w.weight":{{"dtype":"F8_E4M3","shape":[130,200],"data_offsets":[0,{}]}},"w.weight_scale_inv":{{"dtype":"{}","shape":[2,2],"data_offsets":[{},{}]}}}})",
        n, scale_type, n, n + 4 * scale_size);
    std::string bytes = safetensors_bytes(header, n + 4 * scale_size, '\x38');  // e4m3 0x38 = 1.0
    const std::size_t scales_at = 8 + header.size() + n;
    for (int i = 0; i < 4; ++i) {  // scales 1, 2, 3, 4
      const float v = static_cast<float>(i + 1);
      if (scale_size == 4) {
        std::memcpy(bytes.data() + scales_at + 4 * i, &v, 4);
      } else {
        constexpr std::array<std::uint16_t, 4> f16_bits{0x3c00, 0x4000, 0x4200, 0x4400};  // 1, 2, 3, 4
        const std::uint16_t bits = std::string_view(scale_type) == "BF16" ? f32_to_bf16(v) : f16_bits[static_cast<std::size_t>(i)];
        std::memcpy(bytes.data() + scales_at + 2 * i, &bits, 2);
      }
    }
    write_all(dir_ / "model.safetensors", bytes);
    result<checkpoint> c = checkpoint::open(dir_);
    ASSERT_TRUE(c) << c.err().message;
    result<weight_matrix> m = c->matrix("w.weight", 130, 200);
    ASSERT_TRUE(m) << scale_type << ": " << m.err().message;
    EXPECT_EQ(dtype_name(m->scale_type), scale_type);
    EXPECT_EQ(m->at(0, 0), 1.0f) << scale_type;
    EXPECT_EQ(m->at(127, 199), 2.0f) << scale_type;
    EXPECT_EQ(m->at(128, 0), 3.0f) << scale_type;
    EXPECT_EQ(m->at(129, 199), 4.0f) << scale_type;
    // A scale of the wrong shape (e.g. blocks of 64) is an error naming both.
    result<weight_matrix> bad = c->matrix("w.weight", 130, 200, {64, 64});
    ASSERT_FALSE(bad);
    EXPECT_TRUE(mentions(bad.err(), {"w.weight_scale_inv", "[2, 2]", "expected [3, 4]"})) << bad.err().message;
  }
}

// Writes `names` of `source` into shards of a new folder with an index, as Hugging Face does.
void write_sharded(const checkpoint& source, const fs::path& dir, int shards) {
  const std::vector<std::string_view> names = source.names();
  json weight_map = json::object();
  std::uint64_t total = 0;
  for (int s = 0; s < shards; ++s) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards);
    json header = json::object();
    std::string data;
    for (std::size_t i = static_cast<std::size_t>(s); i < names.size(); i += static_cast<std::size_t>(shards)) {
      const tensor_info& t = *source.find(names[i]);
      header[t.name] = {{"dtype", dtype_name(t.type)}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
      data.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
      weight_map[t.name] = file;
      total += t.bytes.size();
    }
    header["__metadata__"] = {{"format", "pt"}};
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    write_all(dir / file, safetensors_bytes(text, 0) + data);
  }
  write_all(dir / "model.safetensors.index.json", json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2));
}

TEST_F(CheckpointTest, ShardedCopyExposesIdenticalTensors) {
  result<checkpoint> single = checkpoint::open(tiny_dir / "fp8");
  ASSERT_TRUE(single);
  write_sharded(*single, dir_, 3);
  result<checkpoint> sharded = checkpoint::open(dir_);
  ASSERT_TRUE(sharded) << sharded.err().message;
  ASSERT_EQ(sharded->names(), single->names());
  std::set<fs::path> files;
  for (std::string_view name : single->names()) {
    const tensor_info& a = *single->find(name);
    const tensor_info& b = *sharded->find(name);
    ASSERT_EQ(a.type, b.type) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    ASSERT_TRUE(std::equal(a.bytes.begin(), a.bytes.end(), b.bytes.begin(), b.bytes.end())) << name;
    files.insert(*b.file);
  }
  EXPECT_EQ(files.size(), 3u);
  EXPECT_EQ(sharded->total_bytes(), single->total_bytes());
  // Views work across shards, and survive moving the checkpoint.
  checkpoint moved = std::move(*sharded);
  result<weight_matrix> m = moved.matrix("model.layers.3.self_attn.o_proj.weight", 128, 256);
  ASSERT_TRUE(m) << m.err().message;
  EXPECT_TRUE(m->quantized());
}

TEST_F(CheckpointTest, BrokenIndexes) {
  result<checkpoint> single = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(single);
  write_sharded(*single, dir_, 2);
  const fs::path index_path = dir_ / "model.safetensors.index.json";
  const json good = json::parse(read_all(index_path));
  auto open_with = [&](const json& index) {
    write_all(index_path, index.dump());
    result<checkpoint> c = checkpoint::open(dir_);
    EXPECT_FALSE(c);
    return c ? error{} : c.err();
  };

  json index = good;
  index["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
  error e = open_with(index);
  EXPECT_EQ(e.code, errc::not_found);
  EXPECT_TRUE(mentions(e, {"model.safetensors.index.json", "tensor 'model.norm.weight'", "model-00009-of-00009.safetensors", "does not exist"}))
      << e.message;

  index = good;
  index["weight_map"]["model.layers.0.not_there.weight"] = "model-00001-of-00002.safetensors";
  e = open_with(index);
  EXPECT_TRUE(mentions(e, {"model.safetensors.index.json", "tensor 'model.layers.0.not_there.weight'", "has no such tensor"})) << e.message;

  index = good;
  const std::string first = index["weight_map"]["lm_head.weight"];
  index["weight_map"]["lm_head.weight"] = first == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors"
                                                                                        : "model-00001-of-00002.safetensors";
  e = open_with(index);
  EXPECT_TRUE(mentions(e, {"tensor 'lm_head.weight'", "but it is in"})) << e.message;

  index = good;
  index["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors";
  e = open_with(index);
  EXPECT_TRUE(mentions(e, {"tensor 'lm_head.weight'", "not a file inside the checkpoint folder"})) << e.message;

  e = open_with(json{{"metadata", json::object()}});
  EXPECT_TRUE(mentions(e, {"model.safetensors.index.json", "weight_map"})) << e.message;
}

TEST_F(CheckpointTest, DuplicateTensorAcrossShards) {
  result<checkpoint> single = checkpoint::open(tiny_dir / "bf16");
  ASSERT_TRUE(single);
  write_sharded(*single, dir_, 2);
  // Shard 2 gets a copy of shard 1 under its own name: every tensor of shard 1 now appears twice.
  fs::copy_file(dir_ / "model-00001-of-00002.safetensors", dir_ / "model-00002-of-00002.safetensors", fs::copy_options::overwrite_existing);
  result<checkpoint> c = checkpoint::open(dir_);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.err().code, errc::corrupt_data);
  EXPECT_TRUE(mentions(c.err(), {"appears in both", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}))
      << c.err().message;
}

TEST_F(CheckpointTest, MissingFolderOrWeights) {
  result<checkpoint> none = checkpoint::open(dir_ / "nope");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.err().code, errc::not_found);
  result<checkpoint> empty = checkpoint::open(dir_);
  ASSERT_FALSE(empty);
  EXPECT_TRUE(mentions(empty.err(), {"model.safetensors", "model.safetensors.index.json"})) << empty.err().message;
}

TEST_F(CheckpointTest, OpenFileAndLockInMemory) {
  result<checkpoint> c = checkpoint::open_file(tiny_dir / "bf16/model.safetensors");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->dir(), tiny_dir / "bf16");
  // mlock succeeds or fails cleanly with the limit in the message (RLIMIT_MEMLOCK is often 8 MiB).
  result<void> locked = c->lock_in_memory();
  if (!locked) {
    EXPECT_EQ(locked.err().code, errc::io_error);
    EXPECT_TRUE(mentions(locked.err(), {"model.safetensors", "RLIMIT_MEMLOCK"})) << locked.err().message;
  }
}

}  // namespace
}  // namespace qcoder::engine
