// The prefill-shaped matrix product out[n, rows] = x[n, cols] @ Wᵀ on BF16 tensor cores (the WMMA API,
// 16x16x16 fragments, float accumulators), and `matmul`, which picks it or gemv by n.
//
// Tiling: a block of 4 warps computes a 64 (rows of x) × 64 (rows of W) tile of out, each warp a 32×32
// quarter as 2×2 accumulator fragments, stepping over k 32 columns at a time. Per step the block converts
// the x tile [64, 32] and the W tile [64, 32] to bf16 in shared memory (rows padded to 40 elements: 80-byte
// rows keep WMMA's 16-byte ldm rule and spread the fragments' rows over the banks); tiles past the edges of
// x or W are zero-filled, so any n, rows and cols work.
//
// Accuracy: the model on this backend must match the CPU (f32 products) to 1e-3 in the logits, and one bf16
// rounding of x (8 bits) is far from that. So each x element is split as hi = bf16(x), lo = bf16(x - hi)
// (x ≈ hi + lo to about 16 significant bits) and both halves are multiplied (two MMAs). Weights:
// - bf16, and FP8 E4M3 without its scale, are exact in bf16: one bf16 tile. The FP8 block scale stays out of
//   the tile: the MMAs of one scale block (block_cols columns of k) accumulate into `partial` fragments, and
//   at the block's end acc += scale × partial, the scale being one number per fragment (its 16 rows of W lie
//   in one row block). That needs block_rows % 16 == 0 and block_cols % 32 == 0 (the checkpoints' 128×128);
// - f32 and f16, and scaled weights with other block sizes (dequantised as w × scale): split like x into
//   hi + lo, one more MMA (x_hi·w_lo; x_lo·w_lo, below 2^-32 relative, is dropped). f16 is then exact; f32
//   weights keep about 16 significant bits (relative error ≤ 2^-17 per weight).
// Products of bf16 are exact in the float accumulator, so what remains is float summation error, as on the CPU.
//
// Turing (sm_75) has no BF16 WMMA fragments: there the kernel body compiles to a trap and gemm() hands the
// product to gemv, which is exact for any n and only reads W once per 4 rows of x instead of once per 64.
// (FP16 fragments exist on sm_75, but activations leave FP16's range and the hi + lo split underflows.)
//
// Not done yet (a straightforward kernel to be timed first): cp.async double buffering of the tiles,
// vectorised global loads of the tiles, larger tiles per warp, Hopper's wgmma.
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/gemm.cpp) into
// qcoder_kernels_cuda_emu.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr int tile_m = 64;  // rows of x (tokens) per block
constexpr int tile_n = 64;  // rows of W (outputs) per block
constexpr int tile_k = 32;  // columns of k per step
constexpr int gemm_threads = 128;
constexpr int ld_tile = tile_k + 8;  // bf16 elements between rows of a shared tile
constexpr int ld_out = tile_n + 4;   // floats between rows of the staged output tile
constexpr int min_wmma_capability = 80;  // BF16 WMMA fragments: Ampere and newer

struct gemm_tiles {
  __nv_bfloat16 x_hi[tile_m][ld_tile];
  __nv_bfloat16 x_lo[tile_m][ld_tile];
  __nv_bfloat16 w_hi[tile_n][ld_tile];
  __nv_bfloat16 w_lo[tile_n][ld_tile];
};
// The output tile reuses the same bytes once the last MMA is done.
constexpr std::size_t gemm_shared_bytes = sizeof(gemm_tiles) > sizeof(float) * tile_m * ld_out
                                              ? sizeof(gemm_tiles)
                                              : sizeof(float) * tile_m * ld_out;

struct gemm_params {
  float* out;      // [n, rows]
  const float* x;  // [n, cols]
  const void* w;   // [rows, cols] of W
  const void* scales;
  cuda::element_type scale_type;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t n;
  std::int32_t block_rows;  // 1 when there are no scales
  std::int32_t block_cols;
};

// split_w: W is stored as hi + lo tiles (f32, f16, or dequantised with awkward scale blocks).
// fragment_scales: W is scaled and the scale is applied per fragment in the float accumulator.
// grid.x = tiles of W rows, grid.y = tiles of x rows; gemm_threads threads.
template <typename W, bool split_w, bool fragment_scales>
__global__ void gemm_kernel(gemm_params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  (void)p;
  (void)gemm_shared_bytes;
  __trap();  // never launched: gemm() sends sm_75 to gemv
#else
  namespace wmma = nvcuda::wmma;
  // WMMA wants 256-bit aligned tiles; a __shared__ array of bf16 is only promised 2 bytes (and the emulator's
  // buffers 16), so the tiles start at the first 32-byte boundary of a slightly larger buffer.
  QCODER_SHARED(unsigned char, shared_bytes, gemm_shared_bytes + 32);
  unsigned char* base = shared_bytes + (32 - reinterpret_cast<std::uintptr_t>(shared_bytes) % 32) % 32;
  gemm_tiles& tiles = *reinterpret_cast<gemm_tiles*>(base);

  const int warp = static_cast<int>(threadIdx.x / 32);
  const int warp_m = warp / 2;  // which 32 rows of the x tile
  const int warp_n = warp % 2;  // which 32 rows of the W tile
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.y) * tile_m;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.x) * tile_n;
  const W* w = static_cast<const W*>(p.w);
  const std::int64_t scale_cols = ceil_div(p.cols, p.block_cols);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> partial[2][2];
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      wmma::fill_fragment(acc[i][j], 0.0f);
      if constexpr (fragment_scales) wmma::fill_fragment(partial[i][j], 0.0f);
    }
  }

  for (std::int64_t k0 = 0; k0 < p.cols; k0 += tile_k) {
    // Consecutive threads take consecutive k: each warp reads whole 128-byte rows of x.
    for (int i = static_cast<int>(threadIdx.x); i < tile_m * tile_k; i += gemm_threads) {
      const int r = i / tile_k;
      const int c = i % tile_k;
      const std::int64_t row = m0 + r;
      const std::int64_t col = k0 + c;
      const float v = row < p.n && col < p.cols ? p.x[row * p.cols + col] : 0.0f;
      const __nv_bfloat16 hi = __float2bfloat16(v);
      tiles.x_hi[r][c] = hi;
      tiles.x_lo[r][c] = __float2bfloat16(v - __bfloat162float(hi));
    }
    for (int i = static_cast<int>(threadIdx.x); i < tile_n * tile_k; i += gemm_threads) {
      const int r = i / tile_k;
      const int c = i % tile_k;
      const std::int64_t row = n0 + r;
      const std::int64_t col = k0 + c;
      float v = 0.0f;
      if (row < p.rows && col < p.cols) {
        v = to_float(w[row * p.cols + col]);
        if (!fragment_scales && p.scales != nullptr) {
          v *= load_scale(p.scales, p.scale_type, row / p.block_rows * scale_cols + col / p.block_cols);
        }
      }
      const __nv_bfloat16 hi = __float2bfloat16(v);
      tiles.w_hi[r][c] = hi;
      if constexpr (split_w) tiles.w_lo[r][c] = __float2bfloat16(v - __bfloat162float(hi));
    }
    __syncthreads();

    auto& target = fragment_scales ? partial : acc;
    for (int kk = 0; kk < tile_k; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a_hi[2];
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a_lo[2];
      // B[k][n] = W[n][k]: the W tile read column-major.
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b_hi[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b_lo[2];
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a_hi[i], &tiles.x_hi[warp_m * 32 + i * 16][kk], ld_tile);
        wmma::load_matrix_sync(a_lo[i], &tiles.x_lo[warp_m * 32 + i * 16][kk], ld_tile);
        wmma::load_matrix_sync(b_hi[i], &tiles.w_hi[warp_n * 32 + i * 16][kk], ld_tile);
        if constexpr (split_w) wmma::load_matrix_sync(b_lo[i], &tiles.w_lo[warp_n * 32 + i * 16][kk], ld_tile);
      }
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 2; ++j) {
          wmma::mma_sync(target[i][j], a_hi[i], b_hi[j], target[i][j]);
          wmma::mma_sync(target[i][j], a_lo[i], b_hi[j], target[i][j]);
          if constexpr (split_w) wmma::mma_sync(target[i][j], a_hi[i], b_lo[j], target[i][j]);
        }
      }
    }
    __syncthreads();  // the tiles are rewritten by the next step

    if constexpr (fragment_scales) {
      const std::int64_t k_next = k0 + tile_k;
      if (k_next >= p.cols || k_next % p.block_cols == 0) {  // the end of a scale block of k
        const std::int64_t k_block = k0 / p.block_cols;
        for (int j = 0; j < 2; ++j) {
          const std::int64_t first_row = n0 + warp_n * 32 + j * 16;
          // A fragment wholly past the last row of W has no scale (and only zeros to scale).
          const float scale = first_row < p.rows
                                  ? load_scale(p.scales, p.scale_type, first_row / p.block_rows * scale_cols + k_block)
                                  : 0.0f;
          for (int i = 0; i < 2; ++i) {
            for (int e = 0; e < acc[i][j].num_elements; ++e) acc[i][j].x[e] += scale * partial[i][j].x[e];
            wmma::fill_fragment(partial[i][j], 0.0f);
          }
        }
      }
    }
  }

  // Through shared memory to global, so that the tile's edges (and out's alignment) need no care.
  float* staged = reinterpret_cast<float*>(base);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(staged + (warp_m * 32 + i * 16) * ld_out + warp_n * 32 + j * 16, acc[i][j], ld_out,
                              wmma::mem_row_major);
    }
  }
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < tile_m * tile_n; i += gemm_threads) {
    const int r = i / tile_n;
    const int c = i % tile_n;
    const std::int64_t row = m0 + r;
    const std::int64_t col = n0 + c;
    if (row < p.n && col < p.rows) p.out[row * p.rows + col] = staged[r * ld_out + c];
  }
#endif
}

template <typename W, bool split_w, bool fragment_scales>
result<void> launch_gemm(const cuda::matmul_args& a, CUstream_st* stream) {
  const bool scaled = a.w.scales != nullptr;
  const gemm_params p{a.out, a.x, a.w.data, a.w.scales, a.w.scale_type, a.w.rows, a.w.cols, a.n,
                      scaled ? a.w.block_rows : 1, scaled ? a.w.block_cols : 1};
  const dim3 grid(static_cast<unsigned>(ceil_div(a.w.rows, tile_n)), static_cast<unsigned>(ceil_div(a.n, tile_m)));
  return cuda::launch(gemm_kernel<W, split_w, fragment_scales>, grid, dim3(gemm_threads), 0, stream, p);
}

// Weights exact in bf16 (bf16, FP8): the scale per fragment when the blocks allow it, else folded and split.
template <typename W>
result<void> launch_exact_weights(const cuda::matmul_args& a, CUstream_st* stream) {
  if constexpr (!std::is_same_v<W, __nv_fp8_e4m3>) {  // FP8 always has scales (checked)
    if (a.w.scales == nullptr) return launch_gemm<W, false, false>(a, stream);
  }
  if (a.w.block_rows % 16 == 0 && a.w.block_cols % tile_k == 0) return launch_gemm<W, false, true>(a, stream);
  return launch_gemm<W, true, false>(a, stream);
}

}  // namespace

result<void> gemm(const cuda::matmul_args& args, CUstream_st* stream) {
  QCODER_CHECK(check_matrix_shape("gemm", args.w));
  if (args.n < 0 || ceil_div(args.n, tile_m) > 65535) {
    return fail(errc::invalid_argument, "gemm: {} rows of x is not a launchable shape", args.n);
  }
  if (args.n == 0) return ok();
  if (args.out == nullptr || args.x == nullptr || args.w.data == nullptr) {
    return fail(errc::invalid_argument, "gemm: null out, x or weights");
  }
  QCODER_TRY(const int capability, compute_capability());
  if (capability < min_wmma_capability) return ::QCODER_CUDA_NAMESPACE::gemv(args, stream);
  switch (args.w.type) {
    case cuda::element_type::f32: return launch_gemm<float, true, false>(args, stream);
    case cuda::element_type::f16: return launch_gemm<__half, true, false>(args, stream);
    case cuda::element_type::bf16: return launch_exact_weights<__nv_bfloat16>(args, stream);
    case cuda::element_type::f8_e4m3: return launch_exact_weights<__nv_fp8_e4m3>(args, stream);
  }
  return fail(errc::invalid_argument, "gemm: unknown weight type {}", static_cast<int>(args.w.type));
}

// gemv reads each weight row once per 4 rows of x and does its math on the CUDA cores, so its cost grows
// with n; gemm's 64-row tiles read W once per 64 rows of x on the tensor cores, at the price of the bf16
// tiles in shared memory and a barrier per 32 columns. From 16 rows of x gemv reads W 4 times over, which is
// where the tiles should be cheaper (a choice to be confirmed by timing on a card; none was at hand).
constexpr std::int64_t gemm_min_rows = 16;

result<void> matmul(const cuda::matmul_args& args, CUstream_st* stream) {
  // Qualified: argument-dependent lookup would also find the other build's declarations in qcoder::cuda.
  return args.n >= gemm_min_rows ? ::QCODER_CUDA_NAMESPACE::gemm(args, stream)
                                 : ::QCODER_CUDA_NAMESPACE::gemv(args, stream);
}

}  // namespace QCODER_CUDA_NAMESPACE
