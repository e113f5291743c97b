// The RMSNorm kernel (kernels/cuda/rms_norm.cu) run on the emulator against the reference op ref::rms_norm,
// at sizes that are and are not multiples of the warp and the block, for every weight type.
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/tensor.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/reference/ops.h"

namespace qcoder {
namespace {

static_assert(static_cast<int>(cuda::element_type::f32) == static_cast<int>(dtype::f32));
static_assert(static_cast<int>(cuda::element_type::f16) == static_cast<int>(dtype::f16));
static_assert(static_cast<int>(cuda::element_type::bf16) == static_cast<int>(dtype::bf16));
static_assert(static_cast<int>(cuda::element_type::f8_e4m3) == static_cast<int>(dtype::f8_e4m3));

// Zero-centred weights in [-0.5, 0.5], stored as `type` (rounded the way the checkpoint would be).
std::vector<std::uint8_t> make_weights(dtype type, std::int64_t dim, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(dim) * dtype_size(type));
  for (std::int64_t i = 0; i < dim; ++i) {
    const float v = dist(rng);
    std::uint8_t* at = bytes.data() + static_cast<std::size_t>(i) * dtype_size(type);
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

struct shape {
  std::int64_t rows;
  std::int64_t dim;
};

class RmsNormEmu : public testing::TestWithParam<std::tuple<shape, dtype, bool>> {};

TEST_P(RmsNormEmu, MatchesTheReference) {
  const auto [s, type, unit_offset] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(s.rows * 7919 + s.dim));
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> x(static_cast<std::size_t>(s.rows * s.dim));
  for (float& v : x) v = dist(rng);
  const auto w = make_weights(type, s.dim, rng);
  const weight_vector weights{type, w.data(), s.dim};
  const float eps = 1e-6f;

  std::vector<float> expected(x.size());
  ref::rms_norm(expected.data(), x.data(), weights, s.rows, s.dim, eps, unit_offset);
  std::vector<float> got(x.size(), std::nanf(""));
  cuda::rms_norm_args args{got.data(), x.data(), w.data(), static_cast<cuda::element_type>(type),
                           s.rows, s.dim, eps, unit_offset};
  auto r = cuda_emu::rms_norm(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-5 * std::abs(expected[i]) + 1e-6) << "element " << i;
  }

  // In place, as the model calls it.
  args.out = x.data();
  ASSERT_TRUE(cuda_emu::rms_norm(args, nullptr));
  EXPECT_EQ(x, got);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormEmu,
                         testing::Combine(testing::Values(shape{1, 64}, shape{3, 2048}, shape{5, 100}, shape{7, 4097},
                                                          shape{2, 1}, shape{4, 33}),
                                          testing::Values(dtype::f32, dtype::bf16), testing::Values(true)));
INSTANTIATE_TEST_SUITE_P(WeightTypes, RmsNormEmu,
                         testing::Combine(testing::Values(shape{3, 200}), testing::Values(dtype::f16, dtype::f8_e4m3),
                                          testing::Values(true, false)));
INSTANTIATE_TEST_SUITE_P(PlainWeight, RmsNormEmu,
                         testing::Combine(testing::Values(shape{2, 300}), testing::Values(dtype::f32, dtype::bf16),
                                          testing::Values(false)));

TEST(RmsNormEmu, RejectsAnEmptyRow) {
  std::vector<float> x(4);
  float w = 0.0f;
  auto r = cuda_emu::rms_norm(cuda::rms_norm_args{x.data(), x.data(), &w, cuda::element_type::f32, 4, 0}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace qcoder
