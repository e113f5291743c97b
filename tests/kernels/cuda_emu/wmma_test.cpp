// The emulator's WMMA API (kernels/cuda/emu/wmma.h): one warp's 16x16x16 product D = A·B + C against a
// plain loop, for each memory layout of A, B and C and strides past 16; element access through x[]; and the
// misuse a GPU would not survive: a call from part of a warp, a misaligned pointer.
//
// The inputs are small integers and halves, whose products and sums are exact in float in any order, so the
// comparison is exact.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>

#include "kernels/cuda/launch.h"

namespace qcoder::cuda_emu {
namespace {

namespace wmma = nvcuda::wmma;

template <typename LayoutA, typename LayoutB>
__global__ void product(float* d, const __nv_bfloat16* a, const __nv_bfloat16* b, const float* c, unsigned ldm,
                        wmma::layout_t c_layout) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::load_matrix_sync(fa, a, ldm);
  wmma::load_matrix_sync(fb, b, ldm);
  wmma::load_matrix_sync(fc, c, ldm, c_layout);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(d, fc, ldm, wmma::mem_row_major);
}

// Tiles of 16 × ldm elements, 32-byte aligned as WMMA requires.
struct alignas(32) tiles {
  static constexpr int max_ldm = 40;
  __nv_bfloat16 a[16 * max_ldm];
  __nv_bfloat16 b[16 * max_ldm];
  float c[16 * max_ldm];
  float d[16 * max_ldm];
};

// Element (r, c) of a tile stored row- or column-major with stride ldm.
int at(int r, int c, int ldm, bool row_major) { return row_major ? r * ldm + c : c * ldm + r; }

template <typename LayoutA, typename LayoutB>
void check_product(int ldm, wmma::layout_t c_layout) {
  constexpr bool a_rows = std::is_same_v<LayoutA, wmma::row_major>;
  constexpr bool b_rows = std::is_same_v<LayoutB, wmma::row_major>;
  const bool c_rows = c_layout == wmma::mem_row_major;
  auto t = std::make_unique<tiles>();
  // Logical A[m][k], B[k][n], C[m][n]; the padding past column 16 holds NaN, which must never be read.
  float A[16][16], B[16][16], C[16][16];
  for (int i = 0; i < 16 * tiles::max_ldm; ++i) {
    t->a[i] = t->b[i] = __float2bfloat16(std::nanf(""));
    t->c[i] = t->d[i] = std::nanf("");
  }
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      A[r][c] = static_cast<float>((r * 7 + c * 3) % 9 - 4) * 0.5f;
      B[r][c] = static_cast<float>((r * 5 + c * 11) % 7 - 3);
      C[r][c] = static_cast<float>(r - c);
      t->a[at(r, c, ldm, a_rows)] = __float2bfloat16(A[r][c]);
      t->b[at(r, c, ldm, b_rows)] = __float2bfloat16(B[r][c]);
      t->c[at(r, c, ldm, c_rows)] = C[r][c];
    }
  }
  auto r = cuda::launch(product<LayoutA, LayoutB>, dim3(1), dim3(32), 0, nullptr, t->d, t->a, t->b, t->c,
                        static_cast<unsigned>(ldm), c_layout);
  ASSERT_TRUE(r) << r.err().message;
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 16; ++n) {
      float expected = C[m][n];
      for (int k = 0; k < 16; ++k) expected += A[m][k] * B[k][n];
      ASSERT_EQ(t->d[m * ldm + n], expected) << "D[" << m << "][" << n << "], ldm " << ldm;
    }
  }
}

TEST(WmmaEmu, ProductInEveryLayout) {
  for (const int ldm : {16, 24, 40}) {
    check_product<wmma::row_major, wmma::row_major>(ldm, wmma::mem_row_major);
    check_product<wmma::row_major, wmma::col_major>(ldm, wmma::mem_row_major);
    check_product<wmma::col_major, wmma::row_major>(ldm, wmma::mem_col_major);
    check_product<wmma::col_major, wmma::col_major>(ldm, wmma::mem_col_major);
  }
}

// fill_fragment and the element array: 8 floats per lane cover the 16×16 tile once.
__global__ void fill_and_scale(float* d) {
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> f;
  static_assert(decltype(f)::num_elements * 32 == 256);
  wmma::fill_fragment(f, 1.5f);
  for (int e = 0; e < f.num_elements; ++e) f.x[e] *= 2.0f;
  wmma::store_matrix_sync(d, f, 16, wmma::mem_col_major);
}

TEST(WmmaEmu, FillAndElementAccess) {
  auto t = std::make_unique<tiles>();
  ASSERT_TRUE(cuda::launch(fill_and_scale, dim3(1), dim3(32), 0, nullptr, t->d));
  for (int i = 0; i < 256; ++i) EXPECT_EQ(t->d[i], 3.0f) << i;
}

// Only half the warp reaches the collective: an error from the launch, as a GPU would hang or misbehave.
__global__ void half_warp_fill(float* d) {
  if (threadIdx.x >= 16) return;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> f;
  wmma::fill_fragment(f, 0.0f);
  wmma::store_matrix_sync(d, f, 16, wmma::mem_row_major);
}

TEST(WmmaEmu, PartOfAWarpIsAnError) {
  auto t = std::make_unique<tiles>();
  auto r = cuda::launch(half_warp_fill, dim3(1), dim3(32), 0, nullptr, t->d);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("fill_fragment"), std::string::npos) << r.err().message;
}

__global__ void store_at(float* d, unsigned ldm) {
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> f;
  wmma::fill_fragment(f, 0.0f);
  wmma::store_matrix_sync(d, f, ldm, wmma::mem_row_major);
}

TEST(WmmaEmuDeathTest, MisalignedPointerOrStride) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto t = std::make_unique<tiles>();
  EXPECT_DEATH((void)cuda::launch(store_at, dim3(1), dim3(32), 0, nullptr, t->d + 4, 16u), "256-bit aligned");
  EXPECT_DEATH((void)cuda::launch(store_at, dim3(1), dim3(32), 0, nullptr, t->d, 18u), "multiple of 16 bytes");
}

}  // namespace
}  // namespace qcoder::cuda_emu
