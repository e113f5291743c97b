// The memory-bound small ops of kernels/cuda/pointwise.cu run on the emulator against the CPU code they
// twin: embedding (weight_matrix::at, as forward_chunk reads the table), axpy, silu_glu, rms_norm_gated
// (cpu::*), the DeltaNet split (the regroup loop of qwen3_next::deltanet_block, written out below) and the MoE
// combine (moe_block's axpy sequence), at sizes that are not multiples of the warp, the block or the vector
// width, and with pointers that are not 16-byte aligned (the scalar path).
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/tensor.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/reference/ops.h"

namespace qcoder {
namespace {

std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// `values` stored as `type`, rounded as a checkpoint would be.
std::vector<std::uint8_t> encode(dtype type, const std::vector<float>& values) {
  std::vector<std::uint8_t> bytes(values.size() * dtype_size(type));
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint8_t* at = bytes.data() + i * dtype_size(type);
    const float v = values[i];
    if (type == dtype::f32) {
      std::memcpy(at, &v, 4);
    } else if (type == dtype::bf16) {
      const std::uint16_t b = f32_to_bf16(v);
      std::memcpy(at, &b, 2);
    } else if (type == dtype::f16) {
      const std::uint16_t h = __half_as_ushort(__float2half_rn(v));
      std::memcpy(at, &h, 2);
    } else {
      *at = __nv_fp8_e4m3(v).__x;
    }
  }
  return bytes;
}

// ---- embedding ----------------------------------------------------------------------------------------

struct embedding_case {
  dtype type;
  bool scaled;
  dtype scale_type;
  std::int64_t rows, cols;
  std::int32_t block_rows, block_cols;
};

class EmbeddingEmu : public testing::TestWithParam<embedding_case> {};

TEST_P(EmbeddingEmu, EqualsTheDequantisedRows) {
  const embedding_case c = GetParam();
  std::mt19937 rng(static_cast<unsigned>(c.rows * 31 + c.cols));
  const auto data = encode(c.type, random_floats(static_cast<std::size_t>(c.rows * c.cols), rng));
  const std::int64_t scale_rows = (c.rows + c.block_rows - 1) / c.block_rows;
  const std::int64_t scale_cols = (c.cols + c.block_cols - 1) / c.block_cols;
  const auto scales = encode(c.scale_type, random_floats(static_cast<std::size_t>(scale_rows * scale_cols), rng, 0.5f, 3.0f));
  weight_matrix w{c.type, data.data(), c.rows, c.cols, c.scale_type, c.scaled ? scales.data() : nullptr,
                  c.block_rows, c.block_cols};
  const std::vector<std::int32_t> tokens = {0, static_cast<std::int32_t>(c.rows - 1), 3 % static_cast<std::int32_t>(c.rows),
                                            static_cast<std::int32_t>(c.rows / 2), 0};
  const auto n = static_cast<std::int64_t>(tokens.size());
  std::vector<float> got(static_cast<std::size_t>(n * c.cols), std::nanf(""));
  cuda::embedding_args args;
  args.out = got.data();
  args.tokens = tokens.data();
  args.table = {data.data(), static_cast<cuda::element_type>(c.type), c.scaled ? scales.data() : nullptr,
                static_cast<cuda::element_type>(c.scale_type), c.rows, c.cols, c.block_rows, c.block_cols};
  args.n = n;
  const auto r = cuda_emu::embedding(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t i = 0; i < c.cols; ++i) {
      // The same conversion and one float product: exact.
      ASSERT_EQ(got[static_cast<std::size_t>(t * c.cols + i)], w.at(tokens[static_cast<std::size_t>(t)], i))
          << "token " << t << " column " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, EmbeddingEmu,
    testing::Values(embedding_case{dtype::f32, false, dtype::f32, 7, 45, 128, 128},
                    embedding_case{dtype::bf16, false, dtype::f32, 9, 130, 128, 128},
                    embedding_case{dtype::f16, false, dtype::f32, 5, 33, 128, 128},
                    embedding_case{dtype::f8_e4m3, true, dtype::f32, 11, 300, 4, 128},
                    embedding_case{dtype::f8_e4m3, true, dtype::bf16, 6, 77, 4, 16},
                    embedding_case{dtype::bf16, true, dtype::f16, 10, 50, 3, 7}));

TEST(EmbeddingEmu, NothingToDoAndBadShapes) {
  cuda::embedding_args args;
  args.table.rows = 4;
  args.table.cols = 8;
  EXPECT_TRUE(cuda_emu::embedding(args, nullptr));  // n == 0: nothing launched, no pointer read
  args.table.cols = 0;
  args.n = 1;
  const auto r = cuda_emu::embedding(args, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

// ---- axpy and silu_glu --------------------------------------------------------------------------------

class ElementwiseEmu : public testing::TestWithParam<std::tuple<std::int64_t, int>> {};

// `offset` floats into each buffer: 0 takes the float4 path, 1 the scalar one.
TEST_P(ElementwiseEmu, AxpyEqualsTheCpu) {
  const auto [count, offset] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(count));
  const auto x = random_floats(static_cast<std::size_t>(count + offset), rng);
  auto y = random_floats(static_cast<std::size_t>(count + offset), rng);
  auto expected = y;
  cpu::axpy(expected.data() + offset, x.data() + offset, 0.37f, count);
  const auto r = cuda_emu::axpy({y.data() + offset, x.data() + offset, 0.37f, count}, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  // One multiply-add per element; the host compiler may fuse it where the kernel does not (or the reverse).
  for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], expected[i], 1e-6f * (1.0f + std::abs(expected[i]))) << i;
}

TEST_P(ElementwiseEmu, SiluGluEqualsTheCpuAlsoInPlace) {
  const auto [count, offset] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(count + 1));
  auto gate = random_floats(static_cast<std::size_t>(count + offset), rng, -6.0f, 6.0f);
  const auto up = random_floats(static_cast<std::size_t>(count + offset), rng);
  std::vector<float> expected(gate.size(), 0.0f), got(gate.size(), 0.0f);
  cpu::silu_glu(expected.data() + offset, gate.data() + offset, up.data() + offset, count);
  ASSERT_TRUE(cuda_emu::silu_glu({got.data() + offset, gate.data() + offset, up.data() + offset, count}, nullptr));
  EXPECT_EQ(got, expected);  // the same float operations on the emulator (host expf): exact
  ASSERT_TRUE(cuda_emu::silu_glu({gate.data() + offset, gate.data() + offset, up.data() + offset, count}, nullptr));
  EXPECT_TRUE(std::equal(gate.begin() + offset, gate.end(), expected.begin() + offset));
}

INSTANTIATE_TEST_SUITE_P(Sizes, ElementwiseEmu,
                         testing::Combine(testing::Values(1, 3, 4, 33, 1029, 20011), testing::Values(0, 1)));

TEST(ElementwiseEmu, NegativeCountsAreRejected) {
  EXPECT_FALSE(cuda_emu::axpy({nullptr, nullptr, 1.0f, -1}, nullptr));
  EXPECT_FALSE(cuda_emu::silu_glu({nullptr, nullptr, nullptr, -2}, nullptr));
  EXPECT_TRUE(cuda_emu::axpy({nullptr, nullptr, 1.0f, 0}, nullptr));
}

// ---- rms_norm_gated -----------------------------------------------------------------------------------

class RmsNormGatedEmu : public testing::TestWithParam<std::tuple<std::int64_t, std::int64_t, dtype>> {};

TEST_P(RmsNormGatedEmu, MatchesTheCpu) {
  const auto [rows, dim, type] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(rows * 100 + dim));
  const auto x = random_floats(static_cast<std::size_t>(rows * dim), rng);
  const auto z = random_floats(static_cast<std::size_t>(rows * dim), rng, -5.0f, 5.0f);
  const auto w = encode(type, random_floats(static_cast<std::size_t>(dim), rng, 0.5f, 1.5f));
  std::vector<float> expected(x.size()), got(x.size(), std::nanf(""));
  cpu::rms_norm_gated(expected.data(), x.data(), z.data(), weight_vector{type, w.data(), dim}, rows, dim, 1e-6f);
  cuda::rms_norm_gated_args args;
  args.out = got.data();
  args.x = x.data();
  args.z = z.data();
  args.weight = {w.data(), static_cast<cuda::element_type>(type)};
  args.rows = rows;
  args.dim = dim;
  const auto r = cuda_emu::rms_norm_gated(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  // The sum of squares is added in another order (a block reduction, not left to right): a relative
  // difference of a few float ulps of the row's scale, well under 1e-5.
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-5 * std::abs(expected[i]) + 1e-6) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormGatedEmu,
                         testing::Values(std::tuple{std::int64_t{3}, std::int64_t{128}, dtype::f32},
                                         std::tuple{std::int64_t{2}, std::int64_t{100}, dtype::bf16},
                                         std::tuple{std::int64_t{5}, std::int64_t{1}, dtype::f32},
                                         std::tuple{std::int64_t{4}, std::int64_t{333}, dtype::f16},
                                         std::tuple{std::int64_t{1}, std::int64_t{37}, dtype::f8_e4m3}));

TEST(RmsNormGatedEmu, RejectsAnEmptyRow) {
  cuda::rms_norm_gated_args args;
  args.rows = 2;
  const auto r = cuda_emu::rms_norm_gated(args, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

// ---- deltanet_split -----------------------------------------------------------------------------------

// qwen3_next::deltanet_block's regroup, as written there.
void cpu_deltanet_split(const std::vector<float>& qkvz, const std::vector<float>& ba, std::int64_t n,
                        std::int64_t n_k, std::int64_t n_v, std::int64_t dk, std::int64_t dv, const weight_vector& a_log,
                        const weight_vector& dt_bias, std::vector<float>& mixed_out, std::vector<float>& z_out,
                        std::vector<float>& beta, std::vector<float>& g_out) {
  const std::int64_t r = n_v / n_k;
  const std::int64_t group = 2 * dk + 2 * r * dv;
  const std::int64_t key_dim = n_k * dk;
  const std::int64_t value_dim = n_v * dv;
  const std::int64_t conv_dim = 2 * key_dim + value_dim;
  for (std::int64_t t = 0; t < n; ++t) {
    const float* src = qkvz.data() + t * n_k * group;
    float* mixed = mixed_out.data() + t * conv_dim;
    float* z = z_out.data() + t * value_dim;
    for (std::int64_t kh = 0; kh < n_k; ++kh) {
      const float* g = src + kh * group;
      std::copy(g, g + dk, mixed + kh * dk);
      std::copy(g + dk, g + 2 * dk, mixed + key_dim + kh * dk);
      std::copy(g + 2 * dk, g + 2 * dk + r * dv, mixed + 2 * key_dim + kh * r * dv);
      std::copy(g + 2 * dk + r * dv, g + group, z + kh * r * dv);
      const float* b_a = ba.data() + t * 2 * n_v + kh * 2 * r;
      for (std::int64_t j = 0; j < r; ++j) {
        const std::int64_t vh = kh * r + j;
        beta[static_cast<std::size_t>(t * n_v + vh)] = ref::sigmoid(b_a[j]);
        g_out[static_cast<std::size_t>(t * n_v + vh)] = -std::exp(a_log.at(vh)) * ref::softplus(b_a[r + j] + dt_bias.at(vh));
      }
    }
  }
}

struct split_case {
  std::int64_t n, k_heads, v_heads, dk, dv;
  dtype param_type;
};

class DeltanetSplitEmu : public testing::TestWithParam<split_case> {};

TEST_P(DeltanetSplitEmu, EqualsTheModelsRegroup) {
  const split_case c = GetParam();
  std::mt19937 rng(static_cast<unsigned>(c.n * 13 + c.dk));
  const std::int64_t width = 2 * c.k_heads * c.dk + 2 * c.v_heads * c.dv;
  const auto qkvz = random_floats(static_cast<std::size_t>(c.n * width), rng);
  const auto ba = random_floats(static_cast<std::size_t>(c.n * 2 * c.v_heads), rng, -12.0f, 25.0f);  // softplus's both arms
  const auto a_log = encode(c.param_type, random_floats(static_cast<std::size_t>(c.v_heads), rng, -1.0f, 1.0f));
  const auto dt_bias = encode(c.param_type, random_floats(static_cast<std::size_t>(c.v_heads), rng, -1.0f, 1.0f));
  const std::int64_t conv_dim = 2 * c.k_heads * c.dk + c.v_heads * c.dv;
  std::vector<float> mixed(static_cast<std::size_t>(c.n * conv_dim)), z(static_cast<std::size_t>(c.n * c.v_heads * c.dv));
  std::vector<float> beta(static_cast<std::size_t>(c.n * c.v_heads)), g(beta.size());
  cpu_deltanet_split(qkvz, ba, c.n, c.k_heads, c.v_heads, c.dk, c.dv, weight_vector{c.param_type, a_log.data(), c.v_heads},
                     weight_vector{c.param_type, dt_bias.data(), c.v_heads}, mixed, z, beta, g);
  std::vector<float> got_mixed(mixed.size(), std::nanf("")), got_z(z.size(), std::nanf(""));
  std::vector<float> got_beta(beta.size(), std::nanf("")), got_g(g.size(), std::nanf(""));
  cuda::deltanet_split_args args;
  args.qkvz = qkvz.data();
  args.ba = ba.data();
  args.mixed = got_mixed.data();
  args.z = got_z.data();
  args.beta = got_beta.data();
  args.g = got_g.data();
  args.a_log = {a_log.data(), static_cast<cuda::element_type>(c.param_type)};
  args.dt_bias = {dt_bias.data(), static_cast<cuda::element_type>(c.param_type)};
  args.n = c.n;
  args.k_heads = c.k_heads;
  args.v_heads = c.v_heads;
  args.dk = c.dk;
  args.dv = c.dv;
  const auto r = cuda_emu::deltanet_split(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  // Copies are exact; β and g are the same float operations with the host's expf/log1pf: exact too.
  EXPECT_EQ(got_mixed, mixed);
  EXPECT_EQ(got_z, z);
  EXPECT_EQ(got_beta, beta);
  EXPECT_EQ(got_g, g);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DeltanetSplitEmu,
                         testing::Values(split_case{3, 2, 4, 16, 8, dtype::f32},    // tiny model's r = 2
                                         split_case{1, 3, 3, 5, 7, dtype::bf16},    // r = 1, odd dims
                                         split_case{5, 2, 8, 9, 3, dtype::f32},     // r = 4
                                         split_case{2, 16, 32, 128, 128, dtype::bf16}));  // the real model's heads

TEST(DeltanetSplitEmu, RejectsValueHeadsThatAreNotAMultiple) {
  cuda::deltanet_split_args args;
  args.n = 1;
  args.k_heads = 2;
  args.v_heads = 3;
  args.dk = args.dv = 4;
  const auto r = cuda_emu::deltanet_split(args, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

// ---- moe_combine --------------------------------------------------------------------------------------

class MoeCombineEmu : public testing::TestWithParam<std::tuple<std::int64_t, std::int64_t, std::int64_t>> {};

TEST_P(MoeCombineEmu, EqualsTheModelsAxpys) {
  const auto [n, k, dim] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(n * 7 + k * 3 + dim));
  const auto down = random_floats(static_cast<std::size_t>(n * k * dim), rng);
  const auto weights = random_floats(static_cast<std::size_t>(n * k), rng, 0.0f, 1.0f);
  const auto shared = random_floats(static_cast<std::size_t>(n * dim), rng);
  const auto gate = random_floats(static_cast<std::size_t>(n), rng, -4.0f, 4.0f);
  // moe_block: zero, one axpy per routed expert, then the sigmoid-gated shared expert.
  std::vector<float> expected(static_cast<std::size_t>(n * dim), 0.0f);
  for (std::int64_t a = 0; a < n * k; ++a) {
    cpu::axpy(expected.data() + (a / k) * dim, down.data() + a * dim, weights[static_cast<std::size_t>(a)], dim);
  }
  for (std::int64_t t = 0; t < n; ++t) {
    cpu::axpy(expected.data() + t * dim, shared.data() + t * dim, ref::sigmoid(gate[static_cast<std::size_t>(t)]), dim);
  }
  std::vector<float> got(expected.size(), std::nanf(""));
  cuda::moe_combine_args args;
  args.out = got.data();
  args.down = down.data();
  args.weights = weights.data();
  args.shared = shared.data();
  args.shared_gate = gate.data();
  args.n = n;
  args.k = k;
  args.dim = dim;
  const auto r = cuda_emu::moe_combine(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  // k + 1 products of magnitude ≤ 2 summed in float: the two may differ by a fused multiply-add's rounding
  // per term (the model's CPU order by expert is not the token's j order on other paths either).
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-5f * static_cast<float>(k + 1)) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MoeCombineEmu,
                         testing::Values(std::tuple{std::int64_t{3}, std::int64_t{4}, std::int64_t{64}},
                                         std::tuple{std::int64_t{2}, std::int64_t{10}, std::int64_t{2048}},
                                         std::tuple{std::int64_t{5}, std::int64_t{3}, std::int64_t{37}},  // scalar path
                                         std::tuple{std::int64_t{1}, std::int64_t{0}, std::int64_t{12}}));

}  // namespace
}  // namespace qcoder
