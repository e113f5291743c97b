// The matrix-product kernels (kernels/cuda/gemv.cu, gemm.cu) run on the emulator against the reference
// ref::matmul: every weight type (FP8 with f32 and bf16 block scales, the checkpoints' 128×128 blocks and
// blocks that fit neither the 16-byte vectors nor the 16-row fragments), at shapes that are and are not
// multiples of the warp, the vector, the tile and the scale block, and with x both staged in shared memory
// and read from global memory; then expert_gemv against ref::matmul per assignment.
//
// Tolerances are relative to Σ|x·w| over the row (the size of the sum, not of its possibly cancelling
// result). gemv sums in float over at most ~40 terms per lane and 5 shuffle levels: its error is below
// 50 × 2^-24 ≈ 3e-6 of Σ|x·w|; 1e-5 is allowed. gemm multiplies x as bf16 hi + lo (x kept to 2^-17
// relative) and f32 weights likewise, then sums exact products in float: 3e-5 is allowed. A gemm without the
// lo half of x (one bf16 rounding, 2^-9) would miss that by far at these column counts, and a misplaced
// scale or element by more still.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/tensor.h"
#include "kernels/cuda/emu/streams.h"
#include "kernels/cuda/matmul.h"
#include "kernels/reference/ops.h"

namespace qcoder {
namespace {

// A weight type and, for scaled ones, the scale type and block.
struct weights_kind {
  dtype type;
  bool scaled;
  dtype scale_type;
  std::int32_t block_rows;
  std::int32_t block_cols;
  std::string name;
};

const weights_kind f32_weights{dtype::f32, false, dtype::f32, 128, 128, "f32"};
const weights_kind f16_weights{dtype::f16, false, dtype::f32, 128, 128, "f16"};
const weights_kind bf16_weights{dtype::bf16, false, dtype::f32, 128, 128, "bf16"};
const weights_kind fp8_f32_scales{dtype::f8_e4m3, true, dtype::f32, 128, 128, "fp8_f32_scales"};
const weights_kind fp8_bf16_scales{dtype::f8_e4m3, true, dtype::bf16, 128, 128, "fp8_bf16_scales"};
// 40 columns: a 16-byte FP8 vector straddles block edges; 24 rows: a 16-row fragment straddles them too.
const weights_kind fp8_odd_blocks{dtype::f8_e4m3, true, dtype::f32, 24, 40, "fp8_odd_blocks"};
// 48 rows (a multiple of 16) but 40 columns (not of the 32-column k step): gemm's folded path.
const weights_kind fp8_blocks_48x40{dtype::f8_e4m3, true, dtype::bf16, 48, 40, "fp8_blocks_48x40"};

// A matrix in host memory (which is device memory on the emulator) and its reference view.
struct host_matrix {
  std::vector<std::uint8_t> data;
  std::vector<std::uint8_t> scales;
  weight_matrix view;

  cuda::device_matrix device() const {
    return cuda::device_matrix{view.data,
                               static_cast<cuda::element_type>(view.type),
                               view.scales,
                               static_cast<cuda::element_type>(view.scale_type),
                               view.rows,
                               view.cols,
                               view.block_rows,
                               view.block_cols};
  }
};

void store(dtype type, float v, std::uint8_t* at) {
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

host_matrix make_matrix(const weights_kind& kind, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  host_matrix m;
  // FP8 values spread over its exponents; the scales bring them back to the size of real weights.
  std::uniform_real_distribution<float> value(kind.type == dtype::f8_e4m3 ? -8.0f : -1.0f,
                                              kind.type == dtype::f8_e4m3 ? 8.0f : 1.0f);
  const std::size_t size = dtype_size(kind.type);
  m.data.resize(static_cast<std::size_t>(rows * cols) * size);
  for (std::int64_t i = 0; i < rows * cols; ++i) store(kind.type, value(rng), m.data.data() + i * size);
  m.view = weight_matrix{kind.type, m.data.data(), rows, cols};
  if (kind.scaled) {
    m.view.block_rows = kind.block_rows;
    m.view.block_cols = kind.block_cols;
    m.view.scale_type = kind.scale_type;
    const std::int64_t count = (rows + kind.block_rows - 1) / kind.block_rows * m.view.scale_cols();
    std::uniform_real_distribution<float> scale(0.01f, 0.2f);
    m.scales.resize(static_cast<std::size_t>(count) * dtype_size(kind.scale_type));
    for (std::int64_t i = 0; i < count; ++i) {
      store(kind.scale_type, scale(rng), m.scales.data() + i * dtype_size(kind.scale_type));
    }
    m.view.scales = m.scales.data();
  }
  return m;
}

std::vector<float> make_x(std::int64_t n, std::int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> x(static_cast<std::size_t>(n * cols));
  for (float& v : x) v = dist(rng);
  return x;
}

// Checks got[n, rows] against ref::matmul, each element within `relative` × Σ_c |x[t, c] · w(r, c)|.
void expect_matches_reference(const std::vector<float>& got, const float* x, const weight_matrix& w, std::int64_t n,
                              double relative) {
  std::vector<float> expected(static_cast<std::size_t>(n * w.rows));
  ref::matmul(expected.data(), x, w, n);
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t r = 0; r < w.rows; ++r) {
      double magnitude = 0.0;
      for (std::int64_t c = 0; c < w.cols; ++c) magnitude += std::abs(static_cast<double>(x[t * w.cols + c]) * w.at(r, c));
      const std::size_t i = static_cast<std::size_t>(t * w.rows + r);
      ASSERT_NEAR(got[i], expected[i], relative * magnitude + 1e-30) << "x row " << t << ", output " << r;
    }
  }
}

struct shape {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t n;
};

using product = result<void> (*)(const cuda::matmul_args&, CUstream_st*);

void check_product(product op, const weights_kind& kind, const shape& s, double relative) {
  std::mt19937 rng(static_cast<unsigned>(s.rows * 7919 + s.cols * 31 + s.n));
  const host_matrix w = make_matrix(kind, s.rows, s.cols, rng);
  const std::vector<float> x = make_x(s.n, s.cols, rng);
  std::vector<float> got(static_cast<std::size_t>(s.n * s.rows), std::nanf(""));
  auto r = op(cuda::matmul_args{got.data(), x.data(), w.device(), s.n}, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  expect_matches_reference(got, x.data(), w.view, s.n, relative);
}

std::string kind_name(const testing::TestParamInfo<std::tuple<weights_kind, shape>>& info) {
  const auto& [kind, s] = info.param;
  return kind.name + "_" + std::to_string(s.rows) + "x" + std::to_string(s.cols) + "_n" + std::to_string(s.n);
}

const auto all_kinds = testing::Values(f32_weights, f16_weights, bf16_weights, fp8_f32_scales, fp8_bf16_scales,
                                       fp8_odd_blocks, fp8_blocks_48x40);

class GemvEmu : public testing::TestWithParam<std::tuple<weights_kind, shape>> {};

TEST_P(GemvEmu, MatchesTheReference) {
  const auto& [kind, s] = GetParam();
  check_product(cuda_emu::gemv, kind, s, 1e-5);
}

// Every weight type at a shape that is no multiple of anything (rows not 16-byte aligned for f32/f16/bf16),
// and with x too large to stage (9 × 1000 × 17 floats exceed 48 KB: read from global memory).
INSTANTIATE_TEST_SUITE_P(Kinds, GemvEmu,
                         testing::Combine(all_kinds, testing::Values(shape{33, 129, 3}, shape{9, 1000, 17})),
                         kind_name);
// Rows 1, 33, 130, 257 and cols 1, 31, 128, 129, 300, 520 each appear, with n 1, 3 and 17 (17: five passes
// over x, the last of one row), for the checkpoints' two formats.
INSTANTIATE_TEST_SUITE_P(Shapes, GemvEmu,
                         testing::Combine(testing::Values(fp8_f32_scales, bf16_weights),
                                          testing::Values(shape{1, 1, 1}, shape{130, 31, 1}, shape{257, 128, 1},
                                                          shape{33, 300, 17}, shape{1, 520, 3})),
                         kind_name);

class GemmEmu : public testing::TestWithParam<std::tuple<weights_kind, shape>> {};

TEST_P(GemmEmu, MatchesTheReference) {
  const auto& [kind, s] = GetParam();
  check_product(cuda_emu::gemm, kind, s, 3e-5);
}

// Every weight type (and so every variant of the kernel) at a shape with edges everywhere: 33 rows of W,
// 129 columns (past the first 128-column scale block and the 32-column step), 17 rows of x.
INSTANTIATE_TEST_SUITE_P(Kinds, GemmEmu, testing::Combine(all_kinds, testing::Values(shape{33, 129, 17})), kind_name);
// The edges of the 64×64 tile: one element; 70 rows of W (two tiles); 66 rows of x (two tiles) of 64 columns.
INSTANTIATE_TEST_SUITE_P(Shapes, GemmEmu,
                         testing::Combine(testing::Values(fp8_f32_scales, bf16_weights),
                                          testing::Values(shape{1, 1, 1}, shape{70, 160, 3}, shape{31, 64, 66})),
                         kind_name);

TEST(MatmulEmu, PicksEitherKernelCorrectly) {
  for (const std::int64_t n : {1, 15, 16, 40}) check_product(cuda_emu::matmul, fp8_f32_scales, shape{20, 136, n}, 3e-5);
}

// The VRAM expert tier reads experts in place from the mapped checkpoint, where tensors are not 16-byte
// aligned, and from aligned slots: the product's bits must not depend on which.
TEST(GemvEmu, ResultsDoNotDependOnWhereTheWeightsSit) {
  for (const weights_kind& kind : {bf16_weights, fp8_f32_scales, f32_weights}) {
    SCOPED_TRACE(kind.name);
    std::mt19937 rng(99);
    const host_matrix w = make_matrix(kind, 9, 300, rng);
    const std::vector<float> x = make_x(3, 300, rng);
    std::vector<float> aligned_out;
    for (const std::size_t offset : {0, 1, 2, 4, 8, 12}) {
      if (offset % dtype_size(kind.type) != 0) continue;
      std::vector<std::uint8_t> room(w.data.size() + 64);
      const auto base = (16 - reinterpret_cast<std::uintptr_t>(room.data()) % 16) % 16;
      std::uint8_t* at = room.data() + base + offset;
      std::memcpy(at, w.data.data(), w.data.size());
      cuda::device_matrix m = w.device();
      m.data = at;
      std::vector<float> out(9 * 3, std::nanf(""));
      auto r = cuda_emu::gemv(cuda::matmul_args{out.data(), x.data(), m, 3}, nullptr);
      ASSERT_TRUE(r) << r.err().message;
      if (offset == 0) {
        aligned_out = out;
        expect_matches_reference(out, x.data(), w.view, 3, 1e-5);
      } else {
        EXPECT_EQ(std::memcmp(out.data(), aligned_out.data(), out.size() * sizeof(float)), 0) << "offset " << offset;
      }
    }
  }
}

// On a Turing card (compute capability 7.5) there are no BF16 tensor-core fragments: gemm must hand the
// product to gemv, whose result it then is to the bit. On Hopper the same call takes the tensor cores, whose
// sums differ from gemv's in the last bits (checked, so that the first check means something).
TEST(GemmEmu, OnTuringComputesWithGemv) {
  std::mt19937 rng(75);
  const host_matrix w = make_matrix(fp8_f32_scales, 70, 256, rng);
  const std::vector<float> x = make_x(40, 256, rng);
  auto run = [&](product op) {
    std::vector<float> out(70 * 40, std::nanf(""));
    auto r = op(cuda::matmul_args{out.data(), x.data(), w.device(), 40}, nullptr);
    EXPECT_TRUE(r) << r.err().message;
    return out;
  };
  const std::vector<float> by_gemv = run(cuda_emu::gemv);
  ASSERT_EQ(cuda::emu::emulated_compute_capability(), 90);
  EXPECT_NE(run(cuda_emu::gemm), by_gemv);
  cuda::emu::set_emulated_compute_capability(75);
  const std::vector<float> on_turing = run(cuda_emu::gemm);
  const std::vector<float> matmul_on_turing = run(cuda_emu::matmul);
  cuda::emu::set_emulated_compute_capability(90);
  EXPECT_EQ(on_turing, by_gemv);
  EXPECT_EQ(matmul_on_turing, by_gemv);
  expect_matches_reference(on_turing, x.data(), w.view, 40, 1e-5);
}

TEST(MatmulEmu, RejectsBadArguments) {
  std::vector<float> x(64, 1.0f);
  std::vector<float> out(64, 5.0f);
  std::vector<std::uint8_t> w(64, 0);
  for (const product op : {cuda_emu::gemv, cuda_emu::gemm, cuda_emu::matmul}) {
    // FP8 without scales.
    cuda::device_matrix m{w.data(), cuda::element_type::f8_e4m3, nullptr, cuda::element_type::f32, 8, 8};
    auto r = op(cuda::matmul_args{out.data(), x.data(), m, 1}, nullptr);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::invalid_argument);
    EXPECT_NE(r.err().message.find("scales"), std::string::npos) << r.err().message;
    // Scales of an unsupported type, and empty blocks.
    m.scales = w.data();
    m.scale_type = cuda::element_type::f16;
    EXPECT_FALSE(op(cuda::matmul_args{out.data(), x.data(), m, 1}, nullptr));
    m.scale_type = cuda::element_type::f32;
    m.block_cols = 0;
    EXPECT_FALSE(op(cuda::matmul_args{out.data(), x.data(), m, 1}, nullptr));
    // An empty matrix, and a negative n.
    const cuda::device_matrix empty{w.data(), cuda::element_type::f32, nullptr, cuda::element_type::f32, 0, 8};
    EXPECT_FALSE(op(cuda::matmul_args{out.data(), x.data(), empty, 1}, nullptr));
    const cuda::device_matrix f32{w.data(), cuda::element_type::f32, nullptr, cuda::element_type::f32, 2, 8};
    EXPECT_FALSE(op(cuda::matmul_args{out.data(), x.data(), f32, -1}, nullptr));
    // n == 0 launches nothing.
    ASSERT_TRUE(op(cuda::matmul_args{out.data(), x.data(), f32, 0}, nullptr));
    EXPECT_EQ(out, std::vector<float>(64, 5.0f));
  }
}

// A table of distinct experts, some assignments repeating an expert, x shared by k = 4 assignments or not.
void check_experts(const weights_kind& kind, std::int32_t x_row_divisor) {
  constexpr std::int64_t rows = 33;
  constexpr std::int64_t cols = 160;
  std::mt19937 rng(static_cast<unsigned>(x_row_divisor * 101 + static_cast<int>(kind.type)));
  std::vector<host_matrix> experts;
  std::vector<cuda::expert_pointers> table;
  for (int e = 0; e < 5; ++e) {
    experts.push_back(make_matrix(kind, rows, cols, rng));
    table.push_back(cuda::expert_pointers{experts.back().view.data, experts.back().view.scales});
  }
  const std::vector<std::int32_t> assigned = {3, 0, 3, 1, 4, 4, 2, 0};
  const auto count = static_cast<std::int64_t>(assigned.size());
  const std::vector<float> x = make_x(count / x_row_divisor, cols, rng);
  std::vector<float> got(static_cast<std::size_t>(count * rows), std::nanf(""));

  cuda::expert_gemv_args args;
  args.out = got.data();
  args.x = x.data();
  args.experts = assigned.data();
  args.table = table.data();
  args.shape = experts[0].device();
  args.shape.data = nullptr;  // unused: the table says where each expert's data and scales are
  args.shape.scales = nullptr;
  args.count = count;
  args.x_row_divisor = x_row_divisor;
  auto r = cuda_emu::expert_gemv(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;

  for (std::int64_t a = 0; a < count; ++a) {
    SCOPED_TRACE("assignment " + std::to_string(a));
    const std::vector<float> row(got.begin() + a * rows, got.begin() + (a + 1) * rows);
    const host_matrix& expert = experts[static_cast<std::size_t>(assigned[static_cast<std::size_t>(a)])];
    expect_matches_reference(row, x.data() + a / x_row_divisor * cols, expert.view, 1, 1e-5);
  }

  // A wave: the assignments whose expert is negative are skipped and keep their rows; the others give
  // exactly the full launch's rows.
  std::vector<std::int32_t> wave = assigned;
  for (std::size_t a = 1; a < wave.size(); a += 2) wave[a] = -1;
  std::vector<float> waved(got.size(), 7.0f);
  args.out = waved.data();
  args.experts = wave.data();
  r = cuda_emu::expert_gemv(args, nullptr);
  ASSERT_TRUE(r) << r.err().message;
  for (std::int64_t a = 0; a < count; ++a) {
    for (std::int64_t i = a * rows; i < (a + 1) * rows; ++i) {
      const auto at = static_cast<std::size_t>(i);
      if (a % 2 == 1) {
        ASSERT_EQ(waved[at], 7.0f) << "skipped assignment " << a;
      } else {
        ASSERT_EQ(waved[at], got[at]) << "assignment " << a;
      }
    }
  }
}

TEST(ExpertGemvEmu, Fp8ReadsItsOwnRow) { check_experts(fp8_f32_scales, 1); }
TEST(ExpertGemvEmu, Fp8SharesRowsAmongFour) { check_experts(fp8_bf16_scales, 4); }
TEST(ExpertGemvEmu, Bf16SharesRowsAmongFour) { check_experts(bf16_weights, 4); }

TEST(ExpertGemvEmu, RejectsBadArguments) {
  std::vector<float> x(8), out(8, 5.0f);
  const std::int32_t expert = 0;
  const cuda::expert_pointers entry{};
  cuda::expert_gemv_args args{out.data(), x.data(), &expert, &entry,
                              cuda::device_matrix{nullptr, cuda::element_type::f8_e4m3, nullptr,
                                                  cuda::element_type::f32, 2, 4},
                              1, 1};
  args.shape.block_cols = 0;
  EXPECT_FALSE(cuda_emu::expert_gemv(args, nullptr));  // empty scale blocks
  args.shape.block_cols = 128;
  args.shape.scale_type = cuda::element_type::f16;
  EXPECT_FALSE(cuda_emu::expert_gemv(args, nullptr));
  args.shape.scale_type = cuda::element_type::f32;
  args.shape.type = cuda::element_type::bf16;
  args.x_row_divisor = 0;
  EXPECT_FALSE(cuda_emu::expert_gemv(args, nullptr));
  args.x_row_divisor = 1;
  args.count = 0;
  ASSERT_TRUE(cuda_emu::expert_gemv(args, nullptr));
  EXPECT_EQ(out, std::vector<float>(8, 5.0f));
}

}  // namespace
}  // namespace qcoder
