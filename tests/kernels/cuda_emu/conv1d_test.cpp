// The DeltaNet's conv1d + SiLU and L2-norm kernels (kernels/cuda/conv1d.cu) on the emulator against the CPU
// ops the model runs (cpu::causal_conv1d_silu per sequence, cpu::l2_norm per head), with several sequences in
// one call, a channel count that is not a multiple of the block, and states continuing across calls.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/tensor.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/mixers.h"
#include "tests/kernels/cuda_emu/segments.h"

namespace qcoder {
namespace {

using test::random_vector;
using test::segment_table;
using test::sequence;

// The kernel sums the same products in the same order as the CPU op (current token first); only FMA
// contraction and expf may differ in the last bits.
constexpr double tolerance = 1e-6;

void expect_near(const std::vector<float>& got, const std::vector<float>& expected, const char* what) {
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], tolerance * (1.0 + std::abs(expected[i]))) << what << " element " << i;
  }
}

struct conv_case {
  std::int64_t channels;
  std::int64_t taps;
  bool bf16_weights;
};

class Conv1dEmu : public testing::TestWithParam<conv_case> {
 protected:
  // Per sequence: [channels, taps - 1] of state.
  std::vector<std::vector<float>> random_states(std::size_t count, std::mt19937& rng) const {
    std::vector<std::vector<float>> states;
    for (std::size_t s = 0; s < count; ++s) {
      states.push_back(random_vector(static_cast<std::size_t>(GetParam().channels * (GetParam().taps - 1)), rng));
    }
    return states;
  }
  // The weights as stored (f32 or bf16 bytes) and as the CPU op's weight_vector.
  void make_weights(std::mt19937& rng) {
    const conv_case p = GetParam();
    const auto w = random_vector(static_cast<std::size_t>(p.channels * p.taps), rng);
    if (p.bf16_weights) {
      bf16_.resize(w.size());
      for (std::size_t i = 0; i < w.size(); ++i) bf16_[i] = f32_to_bf16(w[i]);
      cpu_w_ = {dtype::bf16, bf16_.data(), static_cast<std::int64_t>(w.size())};
      gpu_w_ = {bf16_.data(), cuda::element_type::bf16};
    } else {
      f32_ = w;
      cpu_w_ = {dtype::f32, f32_.data(), static_cast<std::int64_t>(w.size())};
      gpu_w_ = {f32_.data(), cuda::element_type::f32};
    }
  }
  result<void> run(float* out, const float* x, std::vector<std::vector<float>>& states, const segment_table& table) {
    std::vector<float*> state_ptrs;
    for (auto& st : states) state_ptrs.push_back(st.data());
    const conv_case p = GetParam();
    return cuda_emu::causal_conv1d_silu({out, x, gpu_w_, state_ptrs.data(), table.view(), table.rows(), p.channels,
                                         p.taps},
                                        nullptr);
  }

  std::vector<float> f32_;
  std::vector<std::uint16_t> bf16_;
  weight_vector cpu_w_;
  cuda::device_vector gpu_w_;
};

TEST_P(Conv1dEmu, MatchesTheCpuOpPerSequence) {
  const conv_case p = GetParam();
  std::mt19937 rng(static_cast<unsigned>(p.channels * 31 + p.taps));
  make_weights(rng);
  // A prefill longer than a block's rows, a single decode row (shorter than the history), a short one.
  const segment_table table({{0, 37}, {12, 1}, {3, 2}});
  const auto x = random_vector(static_cast<std::size_t>(table.rows() * p.channels), rng);
  auto states = random_states(3, rng);

  auto expected_states = states;
  std::vector<float> expected(x.size());
  for (std::size_t s = 0; s < 3; ++s) {
    const std::int64_t at = table.first_row(s) * p.channels;
    cpu::causal_conv1d_silu(expected.data() + at, x.data() + at, cpu_w_, expected_states[s].data(),
                            table.sequences()[s].rows, p.channels, p.taps);
  }
  std::vector<float> got(x.size(), std::nanf(""));
  auto r = run(got.data(), x.data(), states, table);
  ASSERT_TRUE(r) << r.err().message;
  expect_near(got, expected, "out");
  for (std::size_t s = 0; s < 3; ++s) expect_near(states[s], expected_states[s], "state");
}

// The state carries a sequence across calls: n rows in one call give bit for bit what n one-row calls give.
class Conv1dEmuSteps : public Conv1dEmu {};
TEST_P(Conv1dEmuSteps, OneCallEqualsOneRowAtATime) {
  const conv_case p = GetParam();
  std::mt19937 rng(static_cast<unsigned>(p.channels * 17 + p.taps));
  make_weights(rng);
  const std::int64_t n = 6;  // more rows than 4 taps keep, fewer than 8 (the state then shifts in part)
  const segment_table whole({{4, n}});
  const auto x = random_vector(static_cast<std::size_t>(n * p.channels), rng);
  auto states = random_states(1, rng);
  auto stepped_states = states;

  std::vector<float> together(x.size(), std::nanf(""));
  ASSERT_TRUE(run(together.data(), x.data(), states, whole));
  std::vector<float> stepped(x.size(), std::nanf(""));
  for (std::int64_t t = 0; t < n; ++t) {
    const segment_table one({{4 + t, 1}});
    ASSERT_TRUE(run(stepped.data() + t * p.channels, x.data() + t * p.channels, stepped_states, one));
  }
  EXPECT_EQ(together, stepped);
  EXPECT_EQ(states[0], stepped_states[0]);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv1dEmu,
                         testing::Values(conv_case{200, 4, false}, conv_case{37, 4, true}, conv_case{130, 2, false},
                                         conv_case{5, 8, false}, conv_case{33, 1, false}));
INSTANTIATE_TEST_SUITE_P(Shapes, Conv1dEmuSteps, testing::Values(conv_case{130, 4, false}, conv_case{5, 8, true}));

TEST(Conv1dEmuArgs, RejectsTooManyTaps) {
  float x = 0.0f;
  auto r = cuda_emu::causal_conv1d_silu({&x, &x, {&x, cuda::element_type::f32}, nullptr, {}, 1, 1, 9}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

// q and k heads of the DeltaNet's conv output, normalised in place inside wider rows; the padding stays.
TEST(L2NormEmu, MatchesTheCpuOpPerHead) {
  std::mt19937 rng(5);
  for (const auto& [heads, dim] : {std::pair<std::int64_t, std::int64_t>{3, 37}, {2, 128}, {4, 1}}) {
    const std::int64_t rows = 5, stride = heads * dim + 11;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
    auto x = random_vector(static_cast<std::size_t>(rows * stride), rng);
    auto expected = x;
    for (std::int64_t r = 0; r < rows; ++r) cpu::l2_norm(expected.data() + r * stride, heads, dim, 1e-6f, scale);
    auto ok = cuda_emu::l2_norm({x.data(), rows, stride, heads, dim, 1e-6f, scale}, nullptr);
    ASSERT_TRUE(ok) << ok.err().message;
    // One sum of squares in a different order: a few ulps.
    for (std::size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(x[i], expected[i], 1e-6 * (1.0 + std::abs(expected[i]))) << "dim " << dim << " element " << i;
    }
  }
}

TEST(L2NormEmu, RejectsRowsNarrowerThanTheirHeads) {
  float x[4] = {};
  auto r = cuda_emu::l2_norm({x, 1, 3, 2, 2}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace qcoder
