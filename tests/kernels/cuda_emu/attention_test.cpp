// The attention kernels (kernels/cuda/attention.cu) on the emulator against the CPU model's attention_block,
// built from the same CPU ops it calls (cpu::rms_norm, cpu::rope_neox, cpu::attention_head) run per sequence.
// Each call holds several sequences with different cache lengths; their key counts (1, 31, 33, 300) straddle
// the 32-key tiles; head_dim 48 (not a power of two), 64, 128 and 256 (the real model's); GQA groups of 2 and 8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/tensor.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/mixers.h"
#include "kernels/reference/ops.h"
#include "tests/kernels/cuda_emu/segments.h"

namespace qcoder {
namespace {

using test::random_vector;
using test::segment_table;
using test::sequence;

constexpr double rope_theta = 1e7;  // the tiny and the real model's

struct attention_case {
  std::int64_t head_dim, heads, kv_heads;
  std::vector<sequence> sequences;
  const char* shape;
};

std::string case_name(const testing::TestParamInfo<attention_case>& info) {
  const attention_case& c = info.param;
  return std::string(c.shape) + "_d" + std::to_string(c.head_dim) + "_h" + std::to_string(c.heads) + "kv" +
         std::to_string(c.kv_heads);
}

// One call's inputs and each sequence's cache (positions before its start filled, as earlier calls left them).
struct attention_inputs {
  std::int64_t d, heads, kv_heads, rot_dim, kv_stride;
  std::vector<float> q_gate, k, v, q_norm, k_norm;
  std::vector<std::vector<float>> keys, values;  // [sequence][(start + rows) * kv_stride]

  attention_inputs(const attention_case& c, const segment_table& table, std::mt19937& rng)
      : d(c.head_dim), heads(c.heads), kv_heads(c.kv_heads), rot_dim(c.head_dim / 4),
        kv_stride(c.kv_heads * c.head_dim + 5) {  // padded rows: the kernels must use kv_stride
    const auto n = static_cast<std::size_t>(table.rows());
    q_gate = random_vector(n * static_cast<std::size_t>(heads * 2 * d), rng, -2.0f, 2.0f);
    k = random_vector(n * static_cast<std::size_t>(kv_heads * d), rng, -2.0f, 2.0f);
    v = random_vector(n * static_cast<std::size_t>(kv_heads * d), rng);
    q_norm = random_vector(static_cast<std::size_t>(d), rng, -0.5f, 0.5f);
    k_norm = random_vector(static_cast<std::size_t>(d), rng, -0.5f, 0.5f);
    for (const sequence& s : table.sequences()) {
      const auto floats = static_cast<std::size_t>((s.start + s.rows) * kv_stride);
      // Cached keys are normalised and rotated; unit-scale values stand in for them.
      keys.push_back(random_vector(floats, rng));
      values.push_back(random_vector(floats, rng));
    }
  }
};

// What attention_block does before attention, per sequence with the CPU ops.
void prepare_on_cpu(attention_inputs& in, const segment_table& table) {
  const weight_vector q_norm{dtype::f32, in.q_norm.data(), in.d};
  const weight_vector k_norm{dtype::f32, in.k_norm.data(), in.d};
  for (std::size_t s = 0; s < table.sequences().size(); ++s) {
    const sequence& seq = table.sequences()[s];
    for (std::int64_t i = 0; i < seq.rows; ++i) {
      const std::int64_t t = table.first_row(s) + i;
      const std::int64_t pos = seq.start + i;
      for (std::int64_t h = 0; h < in.heads; ++h) {
        float* q = in.q_gate.data() + (t * in.heads + h) * 2 * in.d;
        cpu::rms_norm(q, q, q_norm, 1, in.d, 1e-6f, true);
        cpu::rope_neox(q, 1, in.d, in.rot_dim, pos, rope_theta);
      }
      float* k = in.k.data() + t * in.kv_heads * in.d;
      cpu::rms_norm(k, k, k_norm, in.kv_heads, in.d, 1e-6f, true);
      cpu::rope_neox(k, in.kv_heads, in.d, in.rot_dim, pos, rope_theta);
      std::copy(k, k + in.kv_heads * in.d, in.keys[s].begin() + pos * in.kv_stride);
      const float* v = in.v.data() + t * in.kv_heads * in.d;
      std::copy(v, v + in.kv_heads * in.d, in.values[s].begin() + pos * in.kv_stride);
    }
  }
}

// attention_block's attention, per row and head with cpu::attention_head.
std::vector<float> attention_on_cpu(const attention_inputs& in, const segment_table& table, bool gated) {
  std::vector<float> out(static_cast<std::size_t>(table.rows() * in.heads * in.d));
  const float scale = 1.0f / std::sqrt(static_cast<float>(in.d));
  for (std::size_t s = 0; s < table.sequences().size(); ++s) {
    const sequence& seq = table.sequences()[s];
    std::vector<float> scores(static_cast<std::size_t>(seq.start + seq.rows));
    for (std::int64_t i = 0; i < seq.rows; ++i) {
      const std::int64_t t = table.first_row(s) + i;
      for (std::int64_t h = 0; h < in.heads; ++h) {
        const std::int64_t kv_head = h / (in.heads / in.kv_heads);
        const float* q = in.q_gate.data() + (t * in.heads + h) * 2 * in.d;
        float* o = out.data() + (t * in.heads + h) * in.d;
        cpu::attention_head(o, q, in.keys[s].data() + kv_head * in.d, in.values[s].data() + kv_head * in.d,
                            seq.start + i + 1, in.d, in.kv_stride, scale, scores.data());
        if (gated) {
          for (std::int64_t j = 0; j < in.d; ++j) o[j] *= ref::sigmoid(q[in.d + j]);
        }
      }
    }
  }
  return out;
}

std::vector<float*> pointers(std::vector<std::vector<float>>& rows) {
  std::vector<float*> p;
  for (auto& r : rows) p.push_back(r.data());
  return p;
}

// |got − expected| ≤ rel·|expected| + abs, element by element.
void expect_close(const std::vector<float>& got, const std::vector<float>& expected, double rel, double abs,
                  const char* what) {
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], rel * std::abs(expected[i]) + abs) << what << " element " << i;
  }
}

class AttentionEmu : public testing::TestWithParam<attention_case> {};

// Norm and rope: the kernel computes the angles in double as the CPU does, and the norm's sum of squares in
// another order (a few ulps): 1e-5 relative with a 1e-6 floor for values near zero.
TEST_P(AttentionEmu, PrepareMatchesTheCpuOps) {
  const attention_case& c = GetParam();
  const segment_table table(c.sequences);
  std::mt19937 rng(static_cast<unsigned>(c.head_dim * 131 + c.heads));
  attention_inputs expected(c, table, rng);
  attention_inputs got = expected;
  prepare_on_cpu(expected, table);

  auto key_ptrs = pointers(got.keys);
  auto value_ptrs = pointers(got.values);
  cuda::attention_prepare_args args;
  args.q_gate = got.q_gate.data();
  args.k = got.k.data();
  args.v = got.v.data();
  args.q_norm = {got.q_norm.data(), cuda::element_type::f32};
  args.k_norm = {got.k_norm.data(), cuda::element_type::f32};
  args.key_rows = key_ptrs.data();
  args.value_rows = value_ptrs.data();
  args.rows = table.view();
  args.n = table.rows();
  args.heads = c.heads;
  args.kv_heads = c.kv_heads;
  args.head_dim = c.head_dim;
  args.rot_dim = got.rot_dim;
  args.kv_stride = got.kv_stride;
  args.rope_theta = rope_theta;
  auto r = cuda_emu::attention_prepare(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  expect_close(got.q_gate, expected.q_gate, 1e-5, 1e-6, "q_gate");
  expect_close(got.k, expected.k, 1e-5, 1e-6, "k");
  for (std::size_t s = 0; s < got.keys.size(); ++s) {
    expect_close(got.keys[s], expected.keys[s], 1e-5, 1e-6, "key cache");
    EXPECT_EQ(got.values[s], expected.values[s]);
  }
}

// Attention on the CPU-prepared inputs. The kernels sum the softmax online (rescaling partial sums as the
// running maximum grows) and in another order than cpu::attention_head: with scores of order 1 and values in
// [−1, 1] that moves outputs by a few float ulps of the largest terms (≈1e-7 each, over up to 300 keys):
// 2e-6 absolute plus 1e-5 relative bounds it with a margin and still fails a wrong key, mask or head.
TEST_P(AttentionEmu, AttentionMatchesTheCpuOps) {
  const attention_case& c = GetParam();
  const segment_table table(c.sequences);
  std::mt19937 rng(static_cast<unsigned>(c.head_dim * 7 + c.heads));
  attention_inputs in(c, table, rng);
  prepare_on_cpu(in, table);
  // The model always gates; the ungated path once, on the mixed shape.
  const std::vector<bool> gating =
      c.shape == std::string("mixed") ? std::vector<bool>{true, false} : std::vector<bool>{true};
  for (const bool gated : gating) {
    const auto expected = attention_on_cpu(in, table, gated);
    std::vector<float> got(expected.size(), std::nanf(""));
    const auto key_ptrs = pointers(in.keys);
    const auto value_ptrs = pointers(in.values);
    const std::vector<const float*> keys(key_ptrs.begin(), key_ptrs.end());
    const std::vector<const float*> values(value_ptrs.begin(), value_ptrs.end());
    cuda::attention_args args;
    args.out = got.data();
    args.q_gate = in.q_gate.data();
    args.key_rows = keys.data();
    args.value_rows = values.data();
    args.rows = table.view();
    args.n = table.rows();
    args.heads = c.heads;
    args.kv_heads = c.kv_heads;
    args.head_dim = c.head_dim;
    args.kv_stride = in.kv_stride;
    args.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    args.gated = gated;
    auto r = cuda_emu::attention(args, nullptr);
    ASSERT_TRUE(r) << r.err().message;
    expect_close(got, expected, 1e-5, 2e-6, gated ? "gated out" : "out");
  }
}

// Decode: one row per sequence, with 1, 31, 33 and 300 keys (40 in the short variant: the emulator runs a
// warp shuffle as an OS-thread barrier, so only a few cases walk 300 keys). Mixed: a few rows per sequence,
// still the decode kernel (≤ 4 rows per sequence on average). Prefill: query tiles of 32 (16 at head_dim 256),
// a sequence of 33 rows from position 0, one single decode row at 300 keys (40), one starting mid-tile.
const std::vector<sequence> decode_long = {{0, 1}, {30, 1}, {32, 1}, {299, 1}};
const std::vector<sequence> decode_short = {{0, 1}, {30, 1}, {32, 1}, {39, 1}};
const std::vector<sequence> mixed_rows = {{3, 2}, {40, 1}, {0, 3}};
const std::vector<sequence> prefill_long = {{0, 33}, {299, 1}, {5, 26}};
const std::vector<sequence> prefill_short = {{0, 33}, {39, 1}, {5, 26}};

std::vector<attention_case> cases() {
  return {{48, 4, 2, decode_short, "decode"},   {48, 8, 1, prefill_short, "prefill"},
          {64, 8, 1, decode_short, "decode"},   {64, 4, 2, prefill_short, "prefill"},
          {64, 4, 2, mixed_rows, "mixed"},      {128, 8, 1, decode_long, "decode_long"},
          {128, 4, 2, prefill_long, "prefill_long"}, {256, 4, 2, decode_long, "decode_long"},
          {256, 4, 2, prefill_short, "prefill"}};
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionEmu, testing::ValuesIn(cases()), case_name);

TEST(AttentionEmuArgs, RejectsAHeadDimOver256) {
  cuda::attention_args args;
  args.n = 1;
  args.heads = args.kv_heads = 1;
  args.head_dim = 320;
  args.kv_stride = 320;
  args.rows.segments = 1;
  auto r = cuda_emu::attention(args, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_NE(r.err().message.find("head_dim 320"), std::string::npos) << r.err().message;
}

TEST(AttentionEmuArgs, RejectsHeadsNotAMultipleOfKvHeads) {
  cuda::attention_prepare_args args;
  args.n = 1;
  args.heads = 3;
  args.kv_heads = 2;
  args.head_dim = 64;
  args.kv_stride = 128;
  auto r = cuda_emu::attention_prepare(args, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace qcoder
