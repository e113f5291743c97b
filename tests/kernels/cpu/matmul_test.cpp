// Every matmul kernel against the scalar reference, for every weight type, across sizes that are not
// multiples of the vector width or of the 128-wide quantisation block, for decode (n = 1) and prefill.
#include "kernels/cpu/matmul.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/common/cpu_features.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/reference/ops.h"

namespace qcoder::cpu {
namespace {

struct random_matrix {
  std::vector<std::uint8_t> data;
  std::vector<std::uint16_t> scales;  // BF16
  weight_matrix view;
};

// Random weights of the given type; FP8 gets BF16 block scales. Values are kept in a normal range (FP8
// bytes are drawn among finite codes, subnormals included).
random_matrix make_matrix(dtype type, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  random_matrix m;
  m.data.resize(static_cast<std::size_t>(rows * cols) * dtype_size(type));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const float v = normal(rng);
    switch (type) {
      case dtype::f32: std::memcpy(m.data.data() + i * 4, &v, 4); break;
      case dtype::bf16: {
        const std::uint16_t b = f32_to_bf16(v);
        std::memcpy(m.data.data() + i * 2, &b, 2);
        break;
      }
      case dtype::f16: {
        // Build a half from a bf16-rounded value in range: exponent in [-8, 3].
        const std::uint16_t h = static_cast<std::uint16_t>((rng() & 0x8000u) | ((7 + rng() % 12) << 10) | (rng() & 0x3ffu));
        std::memcpy(m.data.data() + i * 2, &h, 2);
        break;
      }
      case dtype::f8_e4m3: {
        std::uint8_t b = static_cast<std::uint8_t>(rng() & 0xff);
        if ((b & 0x7f) == 0x7f) b &= 0xfe;  // avoid the NaN code
        m.data[static_cast<std::size_t>(i)] = b;
        break;
      }
    }
  }
  m.view = weight_matrix{type, m.data.data(), rows, cols};
  if (type == dtype::f8_e4m3) {
    const std::int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
    std::uniform_real_distribution<float> scale(0.001f, 0.01f);
    for (std::int64_t i = 0; i < sr * sc; ++i) m.scales.push_back(f32_to_bf16(scale(rng)));
    m.view.scale_type = dtype::bf16;
    m.view.scales = m.scales.data();
  }
  return m;
}

struct shape_case {
  std::int64_t rows, cols, n;
};

const shape_case shapes[] = {{1, 1, 1},   {3, 7, 1},    {5, 9, 2},    {4, 8, 1},     {17, 33, 3},
                             {64, 128, 1}, {67, 131, 1}, {67, 131, 5}, {130, 257, 4}, {8, 300, 7}};
const dtype types[] = {dtype::f32, dtype::f16, dtype::bf16, dtype::f8_e4m3};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Reference sums are in double; float kernels differ by accumulation order only. Bound: a few ulps of the
// sum of magnitudes.
float tolerance(const weight_matrix& w, const std::vector<float>& x, std::int64_t n) {
  float worst = 0.0f;
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t r = 0; r < w.rows; ++r) {
      float mag = 0.0f;
      for (std::int64_t c = 0; c < w.cols; ++c) mag += std::fabs(w.at(r, c) * x[static_cast<std::size_t>(t * w.cols + c)]);
      worst = std::max(worst, mag);
    }
  }
  return 1e-6f + worst * 4e-6f;
}

using kernel_fn = void (*)(float*, const float*, const weight_matrix&, std::int64_t, std::int64_t, std::int64_t);

void check_kernel(kernel_fn kernel, const char* name) {
  std::mt19937 rng(42);
  for (dtype type : types) {
    for (const shape_case& s : shapes) {
      random_matrix m = make_matrix(type, s.rows, s.cols, rng);
      std::vector<float> x(static_cast<std::size_t>(s.n * s.cols));
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (float& v : x) v = normal(rng);
      std::vector<float> want(static_cast<std::size_t>(s.n * s.rows)), got(want.size(), -999.0f);
      ref::matmul(want.data(), x.data(), m.view, s.n);
      // Split the rows in two calls at an odd row, as threads do.
      const std::int64_t split = s.rows / 2 | 1;
      kernel(got.data(), x.data(), m.view, s.n, 0, std::min(split, s.rows));
      if (split < s.rows) kernel(got.data(), x.data(), m.view, s.n, split, s.rows);
      EXPECT_LE(max_abs_diff(want, got), tolerance(m.view, x, s.n))
          << name << " " << dtype_name(type) << " rows=" << s.rows << " cols=" << s.cols << " n=" << s.n;
    }
  }
}

TEST(Matmul, ScalarMatchesReference) { check_kernel(matmul_rows_scalar, "scalar"); }

TEST(Matmul, Avx2MatchesReference) {
  ASSERT_TRUE(host_cpu_features().has_avx2()) << "this test machine is expected to have AVX2 (CI runs on it)";
  check_kernel(matmul_rows_avx2, "avx2");
}

// A token's output must not depend on the batch it ran in: the prefix cache continues prompts from the
// middle and speculative decoding verifies drafts in batches, both expecting exactly plain decoding.
void check_batch_invariance(kernel_fn kernel, const char* name) {
  std::mt19937 rng(5);
  for (dtype type : types) {
    for (const shape_case& s : shapes) {
      // Few tokens (a decode step of several sequences: the small-batch kernel) and more (prefill); odd and
      // even batches, the last token alone.
      for (const std::int64_t n : {std::int64_t{2}, std::int64_t{3}, s.n + 4, s.n + 9}) {
        random_matrix m = make_matrix(type, s.rows, s.cols, rng);
        std::vector<float> x(static_cast<std::size_t>(n * s.cols));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float& v : x) v = normal(rng) * (1.0f + static_cast<float>(rng() % 1000));  // tokens of different magnitude
        std::vector<float> batched(static_cast<std::size_t>(n * s.rows)), single(batched.size());
        kernel(batched.data(), x.data(), m.view, n, 0, s.rows);
        for (std::int64_t t = 0; t < n; ++t) {
          kernel(single.data() + t * s.rows, x.data() + t * s.cols, m.view, 1, 0, s.rows);
        }
        EXPECT_EQ(std::memcmp(batched.data(), single.data(), batched.size() * sizeof(float)), 0)
            << name << " " << dtype_name(type) << " rows=" << s.rows << " cols=" << s.cols << " n=" << n
            << " max diff " << max_abs_diff(batched, single);
      }
    }
  }
}

TEST(Matmul, ScalarIsBatchInvariant) { check_batch_invariance(matmul_rows_scalar, "scalar"); }

TEST(Matmul, Avx2IsBatchInvariant) {
  ASSERT_TRUE(host_cpu_features().has_avx2());
  check_batch_invariance(matmul_rows_avx2, "avx2");
}

TEST(Matmul, Fp8DecodeHandlesHugeAndTinyActivations) {
  // Decode moves x up by up to 2^120 before multiplying with FP8 bits read as 2^-120-scaled floats; that
  // must hold for activations far from 1 in both directions, with E4M3 subnormal weights included.
  std::mt19937 rng(11);
  random_matrix m = make_matrix(dtype::f8_e4m3, 37, 300, rng);
  for (float magnitude : {1e-30f, 1e-6f, 1.0f, 3e4f, 1e20f, 1e36f}) {
    std::vector<float> x(300);
    for (float& v : x) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng) * magnitude;
    std::vector<float> want(37), got(37);
    ref::matmul(want.data(), x.data(), m.view, 1);
    matmul_rows_avx2(got.data(), x.data(), m.view, 1, 0, 37);
    for (std::int64_t r = 0; r < 37; ++r) {
      double sum_of_magnitudes = 0.0;  // the bound scales with the activations, however small
      for (std::int64_t c = 0; c < 300; ++c) sum_of_magnitudes += std::fabs(m.view.at(r, c) * static_cast<double>(x[static_cast<std::size_t>(c)]));
      ASSERT_TRUE(std::isfinite(got[static_cast<std::size_t>(r)])) << magnitude;
      EXPECT_NEAR(got[static_cast<std::size_t>(r)], want[static_cast<std::size_t>(r)], 4e-6 * sum_of_magnitudes)
          << magnitude << " row " << r;
    }
  }
}

TEST(Matmul, PartialEdgeBlocksUseTheirOwnScale) {
  // 130 x 130 FP8 with 2x2 blocks: each block gets a distinct scale, every weight byte is 1.0 (0x38).
  std::vector<std::uint8_t> data(130 * 130, 0x38);
  const std::vector<std::uint16_t> scales = {f32_to_bf16(1.0f), f32_to_bf16(2.0f), f32_to_bf16(4.0f),
                                             f32_to_bf16(8.0f)};
  weight_matrix w{dtype::f8_e4m3, data.data(), 130, 130, dtype::bf16, scales.data()};
  std::vector<float> x(130, 1.0f);
  std::vector<float> out(130);
  matmul_rows(out.data(), x.data(), w, 1, 0, 130);
  EXPECT_FLOAT_EQ(out[0], 128 * 1.0f + 2 * 2.0f);     // row in block row 0: 128 cols scale 1, 2 cols scale 2
  EXPECT_FLOAT_EQ(out[129], 128 * 4.0f + 2 * 8.0f);   // row in block row 1 (partial)
}

TEST(CpuBackend, ThreadedMatmulAndBatchMatchReference) {
  std::mt19937 rng(7);
  cpu_backend backend(3);
  random_matrix a = make_matrix(dtype::f8_e4m3, 301, 260, rng);
  random_matrix b = make_matrix(dtype::bf16, 97, 260, rng);
  for (std::int64_t n : {1, 3}) {
    std::vector<float> x(static_cast<std::size_t>(n * 260));
    for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    std::vector<float> want_a(static_cast<std::size_t>(n * 301)), want_b(static_cast<std::size_t>(n * 97));
    ref::matmul(want_a.data(), x.data(), a.view, n);
    ref::matmul(want_b.data(), x.data(), b.view, n);
    std::vector<float> got_a(want_a.size()), got_b(want_b.size());
    backend.matmul(got_a.data(), x.data(), a.view, n);
    EXPECT_LE(max_abs_diff(want_a, got_a), tolerance(a.view, x, n));
    std::fill(got_a.begin(), got_a.end(), 0.0f);
    const matmul_job jobs[] = {{got_a.data(), x.data(), &a.view, n}, {got_b.data(), x.data(), &b.view, n}};
    backend.matmul_batch(jobs);
    EXPECT_LE(max_abs_diff(want_a, got_a), tolerance(a.view, x, n));
    EXPECT_LE(max_abs_diff(want_b, got_b), tolerance(b.view, x, n));
  }
}

}  // namespace
}  // namespace qcoder::cpu
