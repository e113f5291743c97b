// The gated delta rule kernels (kernels/cuda/delta_rule.cu) on the emulator against the CPU model's
// recurrence (cpu::gated_delta_step per sequence, value head and row, as deltanet_block runs it). Inputs are
// shaped like the model's: q and k L2-normalised (q also / √dk), β = sigmoid, g = −exp(A_log)·softplus(·) < 0,
// GQA with two value heads per key head, qkv rows with q, k, v at their offsets and some padding. States:
// 32 × 32 (the tiny model), 128 × 128 (the real one) and an awkward 48 × 40.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/delta_rule.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/mixers.h"
#include "kernels/reference/ops.h"
#include "tests/kernels/cuda_emu/segments.h"

namespace qcoder {
namespace {

using test::random_vector;
using test::segment_table;
using test::sequence;

struct dims {
  std::int64_t dk, dv;
};

std::string dims_name(const testing::TestParamInfo<dims>& info) {
  return std::to_string(info.param.dk) + "x" + std::to_string(info.param.dv);
}

// One call's inputs: [n, row_stride] rows of q (k_heads × dk) | k (k_heads × dk) | v (v_heads × dv) | pad,
// g and β [n, v_heads], and a state [v_heads, dk, dv] per sequence.
struct delta_inputs {
  static constexpr std::int64_t k_heads = 1, v_heads = 2;
  std::int64_t dk, dv, row_stride, k_offset, v_offset;
  std::vector<float> qkv, g, beta;
  std::vector<std::vector<float>> states;

  delta_inputs(dims d, const segment_table& table, std::mt19937& rng)
      : dk(d.dk), dv(d.dv), row_stride(2 * k_heads * d.dk + v_heads * d.dv + 3), k_offset(k_heads * d.dk),
        v_offset(2 * k_heads * d.dk) {
    const std::int64_t n = table.rows();
    qkv = random_vector(static_cast<std::size_t>(n * row_stride), rng);
    for (std::int64_t t = 0; t < n; ++t) {
      float* row = qkv.data() + t * row_stride;
      cpu::l2_norm(row, k_heads, dk, 1e-6f, 1.0f / std::sqrt(static_cast<float>(dk)));
      cpu::l2_norm(row + k_offset, k_heads, dk, 1e-6f, 1.0f);
    }
    const auto b = random_vector(static_cast<std::size_t>(n * v_heads), rng, -3.0f, 3.0f);
    const auto a = random_vector(static_cast<std::size_t>(n * v_heads), rng, -3.0f, 3.0f);
    for (std::size_t i = 0; i < b.size(); ++i) {
      beta.push_back(ref::sigmoid(b[i]));
      g.push_back(-std::exp(-1.0f) * ref::softplus(a[i]));
    }
    for (std::size_t s = 0; s < table.sequences().size(); ++s) {
      states.push_back(random_vector(static_cast<std::size_t>(v_heads * dk * dv), rng, -0.5f, 0.5f));
    }
  }

  // The recurrence on the CPU: out [n, v_heads × dv], the states advanced.
  std::vector<float> recurrent_on_cpu(const segment_table& table) {
    std::vector<float> out(static_cast<std::size_t>(table.rows() * v_heads * dv));
    std::vector<float> scratch(static_cast<std::size_t>(dv));
    for (std::size_t s = 0; s < table.sequences().size(); ++s) {
      for (std::int64_t vh = 0; vh < v_heads; ++vh) {
        const std::int64_t kh = vh / (v_heads / k_heads);
        for (std::int64_t i = 0; i < table.sequences()[s].rows; ++i) {
          const std::int64_t t = table.first_row(s) + i;
          const float* row = qkv.data() + t * row_stride;
          cpu::gated_delta_step(out.data() + (t * v_heads + vh) * dv, states[s].data() + vh * dk * dv, row + kh * dk,
                                row + k_offset + kh * dk, row + v_offset + vh * dv, g[t * v_heads + vh],
                                beta[t * v_heads + vh], dk, dv, scratch.data());
        }
      }
    }
    return out;
  }

  // The same with cpu::gated_delta_rule_chunked: how far the chunked form itself strays from the recurrence.
  std::vector<float> chunked_on_cpu(const segment_table& table, std::int64_t chunk) {
    std::vector<float> out(static_cast<std::size_t>(table.rows() * v_heads * dv));
    std::vector<float> scratch(static_cast<std::size_t>(cpu::delta_rule_scratch_floats(chunk, dk, dv)));
    for (std::size_t s = 0; s < table.sequences().size(); ++s) {
      for (std::int64_t vh = 0; vh < v_heads; ++vh) {
        const std::int64_t kh = vh / (v_heads / k_heads);
        const std::int64_t t0 = table.first_row(s);
        cpu::delta_rule_args a;
        a.q = qkv.data() + t0 * row_stride + kh * dk;
        a.k = a.q + k_offset;
        a.v = qkv.data() + t0 * row_stride + v_offset + vh * dv;
        a.g = g.data() + t0 * v_heads + vh;
        a.beta = beta.data() + t0 * v_heads + vh;
        a.out = out.data() + (t0 * v_heads + vh) * dv;
        a.state = states[s].data() + vh * dk * dv;
        a.n = table.sequences()[s].rows;
        a.dk = dk;
        a.dv = dv;
        a.q_stride = a.k_stride = a.v_stride = row_stride;
        a.out_stride = v_heads * dv;
        a.gb_stride = v_heads;
        cpu::gated_delta_rule_chunked(a, chunk, scratch.data());
      }
    }
    return out;
  }

  cuda::delta_rule_args args(float* out, std::vector<float*>& state_ptrs, const segment_table& table,
                             std::int64_t chunk) {
    state_ptrs.clear();
    for (auto& st : states) state_ptrs.push_back(st.data());
    return {out,     qkv.data(),        row_stride, k_offset, v_offset, g.data(), beta.data(), state_ptrs.data(),
            table.view(), table.rows(), k_heads,    v_heads,  dk,       dv,       chunk};
  }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

class DeltaRuleEmu : public testing::TestWithParam<dims> {};

// The kernel does the CPU step's arithmetic with the sums over dk split in groups of 32 rows: a few ulps of
// the terms, which are O(1) here (unit k and q/√dk, |S| ≲ 1): 2e-6 absolute.
TEST_P(DeltaRuleEmu, RecurrentMatchesTheCpuSteps) {
  const dims d = GetParam();
  // A prefill, a single decode row, and one in between; the middle one starts from its state like the others.
  const segment_table table({{0, 11}, {57, 1}, {8, 6}});
  std::mt19937 rng(static_cast<unsigned>(d.dk * 1000 + d.dv));
  delta_inputs expected(d, table, rng);
  delta_inputs got = expected;
  const auto expected_out = expected.recurrent_on_cpu(table);

  std::vector<float> out(expected_out.size(), std::nanf(""));
  std::vector<float*> state_ptrs;
  auto r = cuda_emu::delta_rule_recurrent(got.args(out.data(), state_ptrs, table, 64), nullptr);
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_LE(max_abs_diff(out, expected_out), 2e-6);
  for (std::size_t s = 0; s < got.states.size(); ++s) EXPECT_LE(max_abs_diff(got.states[s], expected.states[s]), 2e-6);
}

// Chunks of 64 over sequences of 1, 63, 64, 65 and 200 tokens (one partial chunk, exactly one, one and a bit,
// several), checked against the recurrence. The chunked form rounds differently: e^{G_i − G_j} factors instead
// of step-by-step decays, and the triangular solve. The bound is set from the CPU's own chunked op, which
// strays from the recurrence by the same kind of error: the kernel may stray by no more than 4× as much
// (plus 1e-6 for outputs the CPU happens to round alike), and that amount itself must stay small (1e-4).
TEST_P(DeltaRuleEmu, ChunkedMatchesTheRecurrence) {
  const dims d = GetParam();
  const segment_table table({{0, 1}, {5, 63}, {0, 64}, {70, 65}, {0, 200}});
  std::mt19937 rng(static_cast<unsigned>(d.dk * 77 + d.dv));
  delta_inputs recurrent(d, table, rng);
  delta_inputs cpu_chunked = recurrent;
  delta_inputs gpu = recurrent;
  const auto expected = recurrent.recurrent_on_cpu(table);
  const auto cpu_out = cpu_chunked.chunked_on_cpu(table, 64);

  std::vector<float> out(expected.size(), std::nanf(""));
  std::vector<float*> state_ptrs;
  auto r = cuda_emu::delta_rule_chunked(gpu.args(out.data(), state_ptrs, table, 64), nullptr);
  ASSERT_TRUE(r) << r.err().message;

  const double cpu_error = max_abs_diff(cpu_out, expected);
  const double gpu_error = max_abs_diff(out, expected);
  EXPECT_LE(cpu_error, 1e-4);
  EXPECT_LE(gpu_error, 4 * cpu_error + 1e-6) << "cpu chunked error " << cpu_error;
  for (std::size_t s = 0; s < gpu.states.size(); ++s) {
    const double cpu_state_error = max_abs_diff(cpu_chunked.states[s], recurrent.states[s]);
    EXPECT_LE(max_abs_diff(gpu.states[s], recurrent.states[s]), 4 * cpu_state_error + 1e-6)
        << "sequence " << s << ", cpu chunked error " << cpu_state_error;
  }
}

INSTANTIATE_TEST_SUITE_P(States, DeltaRuleEmu, testing::Values(dims{32, 32}, dims{128, 128}, dims{48, 40}),
                         dims_name);

// A chunk of any size is the same computation: chunk 1 is the recurrence in the chunked kernel.
TEST(DeltaRuleEmuChunk, OddChunkSizesAgree) {
  const segment_table table({{0, 23}, {4, 2}});
  std::mt19937 rng(9);
  const delta_inputs initial(dims{32, 32}, table, rng);
  delta_inputs recurrent = initial;
  const auto expected = recurrent.recurrent_on_cpu(table);
  for (const std::int64_t chunk : {1, 7, 64}) {
    delta_inputs gpu = initial;
    std::vector<float> out(expected.size(), std::nanf(""));
    std::vector<float*> state_ptrs;
    ASSERT_TRUE(cuda_emu::delta_rule_chunked(gpu.args(out.data(), state_ptrs, table, chunk), nullptr));
    EXPECT_LE(max_abs_diff(out, expected), 1e-5) << "chunk " << chunk;
  }
}

TEST(DeltaRuleEmuArgs, RejectsBadShapes) {
  std::vector<float*> none;
  cuda::delta_rule_args a{};
  a.n = 1;
  a.k_heads = 2;
  a.v_heads = 3;  // not a multiple of the key heads
  a.dk = a.dv = 32;
  a.row_stride = 1000;
  a.rows.segments = 1;
  auto r = cuda_emu::delta_rule_recurrent(a, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  a.v_heads = 4;
  a.chunk = 65;
  r = cuda_emu::delta_rule_chunked(a, nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("chunk 65"), std::string::npos) << r.err().message;
}

}  // namespace
}  // namespace qcoder
