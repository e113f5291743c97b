// Token picking on the device (kernels/cuda/sampling.cu) run on the emulator against the CPU sampler:
// argmax against engine::argmax (ties, NaN, lengths that are not multiples of the vector, warp or block, up
// to the real vocabulary), and sample against engine::draw_token for many uniform numbers and parameter sets,
// including the full-vocabulary walk over several shared-memory chunks. On the emulator p's exp is the
// host's, so the draw must be the CPU's exactly, boundaries included: no tolerance anywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "engine/sampler.h"
#include "kernels/cuda/pointwise.h"

namespace qcoder {
namespace {

// ---- argmax -------------------------------------------------------------------------------------------

std::vector<std::int32_t> device_argmax(const std::vector<float>& x, std::int64_t rows, std::int64_t count,
                                        const float* base = nullptr) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(rows), -1);
  const auto r = cuda_emu::argmax({base != nullptr ? base : x.data(), ids.data(), rows, count}, nullptr);
  EXPECT_TRUE(r) << r.err().message;
  return ids;
}

class ArgmaxEmu : public testing::TestWithParam<std::int64_t> {};

TEST_P(ArgmaxEmu, EqualsTheCpuWithTies) {
  const std::int64_t count = GetParam();
  const std::int64_t rows = 4;
  std::mt19937 rng(static_cast<unsigned>(count));
  std::uniform_int_distribution<int> level(0, 9);  // few distinct values: the maximum is tied in most rows
  std::vector<float> x(static_cast<std::size_t>(rows * count));
  for (float& v : x) v = static_cast<float>(level(rng)) - 20.0f;
  x[static_cast<std::size_t>(count - 1)] = 5.0f;  // row 0: the maximum is the last element alone
  for (std::int64_t c = 0; c < count; ++c) x[static_cast<std::size_t>(3 * count + c)] = -1.5f;  // row 3: all tied
  const auto ids = device_argmax(x, rows, count);
  for (std::int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(ids[static_cast<std::size_t>(r)], engine::argmax(x.data() + r * count, count)) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, ArgmaxEmu, testing::Values(1, 3, 4, 33, 130, 1029, 4099, 151936));

TEST(ArgmaxEmu, UnalignedRowsTakeTheScalarPath) {
  const std::int64_t count = 101;
  std::vector<float> x(static_cast<std::size_t>(2 * count + 1), 0.0f);
  x[1 + 57] = 3.0f;
  x[1 + 99] = 3.0f;
  x[1 + count + 100] = 1.0f;
  const auto ids = device_argmax(x, 2, count, x.data() + 1);
  EXPECT_EQ(ids, (std::vector<std::int32_t>{57, 100}));
}

TEST(ArgmaxEmu, NanAsTheCpuLoopSeesIt) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::int64_t count = 40;
  std::vector<float> x(static_cast<std::size_t>(4 * count), -inf);
  x[0] = nan;  // row 0: NaN first wins (nothing compares greater than the CPU's starting element)
  x[5] = 7.0f;
  x[count + 3] = nan;  // row 1: NaN elsewhere never wins
  x[count + 20] = 2.0f;
  for (std::int64_t c = 0; c < count; ++c) x[static_cast<std::size_t>(2 * count + c)] = nan;  // row 2: all NaN
  // row 3: all −inf
  const auto ids = device_argmax(x, 4, count);
  for (std::int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(ids[static_cast<std::size_t>(r)], engine::argmax(x.data() + r * count, count)) << "row " << r;
  }
}

TEST(ArgmaxEmu, BadShapes) {
  EXPECT_FALSE(cuda_emu::argmax({nullptr, nullptr, 1, 0}, nullptr));
  EXPECT_FALSE(cuda_emu::argmax({nullptr, nullptr, -1, 4}, nullptr));
  EXPECT_TRUE(cuda_emu::argmax({nullptr, nullptr, 0, 4}, nullptr));
}

// ---- sample -------------------------------------------------------------------------------------------

std::int32_t device_sample(const std::vector<float>& logits, const engine::draw_params& p, double u) {
  std::int32_t id = -1;
  cuda::sample_args args;
  args.logits = logits.data();
  args.id = &id;
  args.vocab = static_cast<std::int64_t>(logits.size());
  args.temperature = p.temperature;
  args.top_k = p.top_k;
  args.top_p = p.top_p;
  args.min_p = p.min_p;
  args.uniform = u;
  const auto r = cuda_emu::sample(args, nullptr);
  EXPECT_TRUE(r) << r.err().message;
  return id;
}

// Uniform numbers: the two ends of [0, 1) and `random` draws.
std::vector<double> uniforms(int random, std::mt19937_64& rng) {
  std::vector<double> u = {0.0, std::nextafter(1.0, 0.0), 0.5};
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  for (int i = 0; i < random; ++i) u.push_back(dist(rng));
  return u;
}

enum class shape { spread, ties, masked, flat };

std::vector<float> make_logits(std::int64_t vocab, shape s, std::mt19937_64& rng) {
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> level(0, 5);
  std::uniform_real_distribution<float> small(-0.5f, 0.5f);
  for (std::size_t i = 0; i < logits.size(); ++i) {
    switch (s) {
      case shape::spread: logits[i] = normal(rng); break;
      case shape::ties: logits[i] = static_cast<float>(level(rng)); break;  // every value many times over
      case shape::masked: logits[i] = i % 3 == 0 ? normal(rng) : -std::numeric_limits<float>::infinity(); break;
      case shape::flat: logits[i] = small(rng); break;  // every token matters to the sums
    }
  }
  return logits;
}

struct sample_case {
  std::int64_t vocab;
  shape logits;
  engine::draw_params params;
  int draws;
};

class SampleEmu : public testing::TestWithParam<sample_case> {};

TEST_P(SampleEmu, DrawsTheCpuSamplersToken) {
  const sample_case c = GetParam();
  std::mt19937_64 rng(static_cast<std::uint64_t>(c.vocab) * 977 + static_cast<std::uint64_t>(c.params.top_k));
  const std::vector<float> logits = make_logits(c.vocab, c.logits, rng);
  engine::draw_scratch scratch;
  for (const double u : uniforms(c.draws, rng)) {
    const std::int32_t expected = engine::draw_token(logits.data(), c.vocab, c.params, u, scratch);
    ASSERT_EQ(device_sample(logits, c.params, u), expected) << "u = " << u;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Parameters, SampleEmu,
    testing::Values(sample_case{1, shape::spread, {1.0f, 0, 1.0f, 0.0f}, 2},
                    sample_case{7, shape::spread, {1.0f, 0, 1.0f, 0.0f}, 12},
                    sample_case{1000, shape::spread, {0.7f, 20, 0.8f, 0.0f}, 12},       // the model's defaults
                    sample_case{1000, shape::ties, {1.0f, 40, 0.95f, 0.0f}, 8},        // top-k cuts through a tie
                    sample_case{1000, shape::spread, {1.3f, 0, 0.9f, 0.05f}, 6},       // top-p and min-p
                    sample_case{1000, shape::masked, {0.5f, 0, 1.0f, 0.0f}, 6},        // −inf logits
                    sample_case{1000, shape::spread, {1.0f, 0, 1.0f, 1e-30f}, 4},      // min-p deep in the tail
                    sample_case{1000, shape::spread, {1.0f, 1, 1.0f, 0.0f}, 2},         // top-1 is greedy
                    sample_case{5000, shape::flat, {1.0f, 0, 1.0f, 0.0f}, 1},           // three chunks, no cut
                    sample_case{5000, shape::flat, {2.0f, 0, 0.7f, 0.0f}, 1},           // top-p over chunks
                    sample_case{5000, shape::ties, {1.0f, 4500, 1.0f, 0.2f}, 1}));      // top-k past a chunk

TEST(SampleEmu, RejectsBadParameters) {
  std::vector<float> logits(8, 0.0f);
  std::int32_t id = 0;
  cuda::sample_args args;
  args.logits = logits.data();
  args.id = &id;
  args.vocab = 8;
  args.uniform = 1.0;
  EXPECT_FALSE(cuda_emu::sample(args, nullptr));
  args.uniform = 0.5;
  args.temperature = 0.0f;
  EXPECT_FALSE(cuda_emu::sample(args, nullptr));
  args.temperature = 1.0f;
  args.top_p = 0.0f;
  EXPECT_FALSE(cuda_emu::sample(args, nullptr));
  args.top_p = 1.0f;
  args.vocab = 0;
  EXPECT_FALSE(cuda_emu::sample(args, nullptr));
}

}  // namespace
}  // namespace qcoder
