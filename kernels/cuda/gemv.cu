// The decode-shaped matrix products: out[n, rows] = x[n, cols] @ Wᵀ with n small (gemv), and the routed
// experts of a MoE layer in one launch (expert_gemv). Both are bound by reading the weights once, so:
// - one warp per output row at a time (blocks of 4 warps, each warp striding over rows), the weight row read
//   in 16-byte vectors (4 f32, 8 bf16/f16 or 16 FP8 per lane per load; the last cols % vector columns
//   element by element). A row whose start is not 16-byte aligned (weights read in place from a mapped
//   checkpoint) gathers each vector from narrower loads but sums exactly as an aligned one: a product's
//   bits never depend on where its weights sit, which the VRAM expert tier relies on;
// - the FP8 block scale multiplies the partial dot of each vector (whose columns lie in one block unless
//   block_cols is not a multiple of the vector: then each element is scaled), which for the checkpoints' 128
//   columns is the dot of a 128-column block scaled once per lane and load;
// - up to 4 rows of x per pass over the weight row, each with its own float accumulator, so n rows of x read
//   the weights ceil(n / 4) times (the repeats from L1/L2); x is staged in shared memory when n × cols floats
//   fit in 48 KB, else read from global memory (where it stays cached);
// - the lanes' partial sums meet by a shuffle reduction (four at once when there are several rows of x).
// Float accumulation throughout (the reference uses double: the tests bound the difference).
//
// Per output row and x pass: cols × sizeof(W) bytes of weights (+ scales) read, 4 bytes written; for one
// token of a 2048×2048 FP8 projection that is 4 MiB + 1 KiB per launch, so the kernel should run at the
// card's memory bandwidth (not measured here: no GPU on the machines these were written on).
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/gemv.cpp) into
// qcoder_kernels_cuda_emu.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/matmul.h"

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr int gemv_threads = 128;
constexpr int gemv_warps = gemv_threads / 32;
constexpr int x_rows_per_pass = 4;
constexpr std::int64_t max_staged_x_bytes = 48 * 1024;  // what any card gives a block without opting in
constexpr std::int64_t max_gemv_blocks = 1024;          // beyond that, each warp takes several rows

__device__ __forceinline__ float bits_to_float(unsigned bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

// The 16 bytes at `raw` as 16 / sizeof(W) floats, exactly (every weight type widens to float losslessly).
template <typename W>
__device__ __forceinline__ void unpack16(const uint4& raw, float (&w)[16 / sizeof(W)]) {
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  QCODER_UNROLL
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<W, float>) {
      w[i] = bits_to_float(words[i]);
    } else if constexpr (std::is_same_v<W, __nv_bfloat16>) {
      // A bf16 is the top half of the float it widens to.
      w[2 * i] = bits_to_float(words[i] << 16);
      w[2 * i + 1] = bits_to_float(words[i] & 0xffff0000u);
    } else if constexpr (std::is_same_v<W, __half>) {
      w[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xffffu)));
      w[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] >> 16)));
    } else {
      static_assert(std::is_same_v<W, __nv_fp8_e4m3>);
      // Pairs through half2 (one instruction per pair on sm_89+); E4M3 is exact in half.
      QCODER_UNROLL
      for (int h = 0; h < 2; ++h) {
        const auto pair = static_cast<__nv_fp8x2_storage_t>((words[i] >> (16 * h)) & 0xffffu);
        const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
        w[4 * i + 2 * h] = f.x;
        w[4 * i + 2 * h + 1] = f.y;
      }
    }
  }
}

// The 16 bytes at `p`, whose address is `align`-byte aligned (16, 8, 4 or less), in the words a uint4 load
// of aligned bytes would give (little-endian).
__device__ __forceinline__ uint4 load16(const unsigned char* p, int align) {
  if (align >= 16) return *reinterpret_cast<const uint4*>(p);
  if (align >= 8) {
    const uint2 lo = reinterpret_cast<const uint2*>(p)[0];
    const uint2 hi = reinterpret_cast<const uint2*>(p)[1];
    return uint4{lo.x, lo.y, hi.x, hi.y};
  }
  unsigned words[4];
  QCODER_UNROLL
  for (int i = 0; i < 4; ++i) {
    if (align >= 4) {
      words[i] = reinterpret_cast<const unsigned*>(p)[i];
    } else {
      words[i] = static_cast<unsigned>(p[4 * i]) | static_cast<unsigned>(p[4 * i + 1]) << 8 |
                 static_cast<unsigned>(p[4 * i + 2]) << 16 | static_cast<unsigned>(p[4 * i + 3]) << 24;
    }
  }
  return uint4{words[0], words[1], words[2], words[3]};
}

// Where one weight row's scales are: scales[base + c / block_cols] for column c; no scales when null.
struct scale_row {
  const void* scales;
  cuda::element_type type;
  std::int64_t base;
  std::int32_t block_cols;
};

// acc[j] += this lane's share of Σ_c W[row, c] × x[j, c] for j < count; the lanes of the warp together cover
// all cols. `x` rows are x_stride floats apart; x_vectorised: x and x_stride allow float4 loads.
template <typename W>
__device__ __forceinline__ void row_dot(float (&acc)[x_rows_per_pass], int count, const W* w_row,
                                        const scale_row& s, const float* x, std::int64_t x_stride,
                                        std::int64_t cols, bool x_vectorised) {
  constexpr int vec = 16 / sizeof(W);
  const int lane = static_cast<int>(threadIdx.x % 32);
  // Every vector of the row shares the row start's alignment (vectors are 16 bytes apart).
  const auto start = reinterpret_cast<std::uintptr_t>(w_row);
  const int align = start % 16 == 0 ? 16 : start % 8 == 0 ? 8 : start % 4 == 0 ? 4 : 1;
  const std::int64_t vector_end = cols / vec * vec;
  for (std::int64_t c0 = static_cast<std::int64_t>(lane) * vec; c0 < vector_end; c0 += 32 * vec) {
    float w[vec];
    unpack16<W>(load16(reinterpret_cast<const unsigned char*>(w_row + c0), align), w);
    float scale = 1.0f;
    if (s.scales != nullptr) {
      const std::int64_t first = c0 / s.block_cols;
      if (first == (c0 + vec - 1) / s.block_cols) {
        scale = load_scale(s.scales, s.type, s.base + first);
      } else {  // the vector straddles a block edge (block_cols not a multiple of the vector)
        QCODER_UNROLL
        for (int e = 0; e < vec; ++e) w[e] *= load_scale(s.scales, s.type, s.base + (c0 + e) / s.block_cols);
      }
    }
    QCODER_UNROLL
    for (int j = 0; j < x_rows_per_pass; ++j) {
      if (j < count) {
        const float* xj = x + j * x_stride + c0;
        float dot = 0.0f;
        if (x_vectorised) {
          QCODER_UNROLL
          for (int q = 0; q < vec / 4; ++q) {
            const float4 v = reinterpret_cast<const float4*>(xj)[q];
            dot += w[4 * q] * v.x + w[4 * q + 1] * v.y + w[4 * q + 2] * v.z + w[4 * q + 3] * v.w;
          }
        } else {
          QCODER_UNROLL
          for (int e = 0; e < vec; ++e) dot += w[e] * xj[e];
        }
        acc[j] += scale * dot;
      }
    }
  }
  for (std::int64_t c = vector_end + lane; c < cols; c += 32) {
    float w = to_float(w_row[c]);
    if (s.scales != nullptr) w *= load_scale(s.scales, s.type, s.base + c / s.block_cols);
    QCODER_UNROLL
    for (int j = 0; j < x_rows_per_pass; ++j) {
      if (j < count) acc[j] += w * x[j * x_stride + c];
    }
  }
}

// The warp-wide sums of four values with 6 shuffles instead of 4 × 5: the first two butterfly steps also halve
// the values each lane carries. Afterwards sum j is in the lanes whose bits 4 and 3 spell j (lanes 8j to
// 8j + 7, so lane 8j can write it).
__device__ __forceinline__ float warp_sum4(const float (&v)[x_rows_per_pass]) {
  static_assert(x_rows_per_pass == 4);
  const unsigned lane = threadIdx.x % 32;
  const bool upper16 = (lane & 16) != 0;  // keeps sums 2 and 3, sends 0 and 1 to lane ^ 16
  float keep0 = upper16 ? v[2] : v[0];
  float keep1 = upper16 ? v[3] : v[1];
  keep0 += __shfl_xor_sync(full_warp_mask, upper16 ? v[0] : v[2], 16);
  keep1 += __shfl_xor_sync(full_warp_mask, upper16 ? v[1] : v[3], 16);
  const bool upper8 = (lane & 8) != 0;
  float sum = upper8 ? keep1 : keep0;
  sum += __shfl_xor_sync(full_warp_mask, upper8 ? keep0 : keep1, 8);
  for (int offset = 4; offset > 0; offset /= 2) sum += __shfl_xor_sync(full_warp_mask, sum, offset);
  return sum;
}

// Copies rows [0, n) of x[n, cols] into shared memory, rows padded to a multiple of 4 floats (so that float4
// loads stay aligned); returns the stride. The whole block takes part and meets at a barrier.
__device__ __forceinline__ std::int64_t stage_x(float* staged, const float* x, std::int64_t n, std::int64_t cols) {
  const std::int64_t stride = (cols + 3) / 4 * 4;
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) staged[t * stride + c] = x[t * cols + c];
  }
  __syncthreads();
  return stride;
}

__device__ __forceinline__ bool float4_ok(const float* x, std::int64_t stride) {
  return reinterpret_cast<std::uintptr_t>(x) % 16 == 0 && stride % 4 == 0;
}

struct gemv_params {
  float* out;       // [n, rows]
  const float* x;   // [n, cols]
  const void* w;    // [rows, cols] of W
  const void* scales;
  cuda::element_type scale_type;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t n;
  std::int32_t block_rows;  // 1 when there are no scales
  std::int32_t block_cols;
  bool stage;  // x fits in the launch's dynamic shared memory
};

// grid.x blocks of gemv_threads; warp w of block b takes rows b × 4 + w, then + gridDim.x × 4, ...
// At least 6 blocks (24 warps) per SM: the loads in flight, not the math, set a gemv's speed (80 registers;
// 8 blocks would spill).
template <typename W>
__global__ void QCODER_LAUNCH_BOUNDS(gemv_threads, 6) gemv_kernel(gemv_params p) {
  QCODER_DYNAMIC_SHARED(float, staged);
  const float* x = p.x;
  std::int64_t x_stride = p.cols;
  if (p.stage) {
    x_stride = stage_x(staged, p.x, p.n, p.cols);
    x = staged;
  }
  const bool x_vectorised = float4_ok(x, x_stride);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::int64_t scale_cols = ceil_div(p.cols, p.block_cols);
  const W* w = static_cast<const W*>(p.w);
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * gemv_warps + warp; r < p.rows;
       r += static_cast<std::int64_t>(gridDim.x) * gemv_warps) {
    const scale_row s{p.scales, p.scale_type, r / p.block_rows * scale_cols, p.block_cols};
    for (std::int64_t t0 = 0; t0 < p.n; t0 += x_rows_per_pass) {
      const int count = static_cast<int>(p.n - t0 < x_rows_per_pass ? p.n - t0 : x_rows_per_pass);
      float acc[x_rows_per_pass] = {};
      row_dot<W>(acc, count, w + r * p.cols, s, x + t0 * x_stride, x_stride, p.cols, x_vectorised);
      // count is uniform over the warp, as the shuffles need.
      if (count == 1) {
        const float sum = warp_sum(acc[0]);
        if (lane == 0) p.out[t0 * p.rows + r] = sum;
      } else {
        const float sum = warp_sum4(acc);
        const int j = lane / 8;
        if (lane % 8 == 0 && j < count) p.out[(t0 + j) * p.rows + r] = sum;
      }
    }
  }
}

struct expert_params {
  float* out;                         // [count, rows]
  const float* x;                     // [count / x_row_divisor, cols]
  const std::int32_t* experts;        // [count]
  const cuda::expert_pointers* table;
  cuda::element_type scale_type;
  std::int64_t rows;
  std::int64_t cols;
  std::int32_t block_rows;  // of each expert's scales, where its table entry has them
  std::int32_t block_cols;
  std::int32_t x_row_divisor;
  bool stage;  // one row of x fits in the launch's dynamic shared memory
};

// grid.x = assignments, grid.y = groups of rows; warp w of group g takes rows g × 4 + w, + gridDim.y × 4, ...
template <typename W>
__global__ void QCODER_LAUNCH_BOUNDS(gemv_threads, 8) expert_gemv_kernel(expert_params p) {
  QCODER_DYNAMIC_SHARED(float, staged);
  const std::int64_t a = blockIdx.x;
  const std::int32_t expert = p.experts[a];
  if (expert < 0) return;  // the whole block: not this launch's assignment
  const cuda::expert_pointers weights = p.table[expert];
  const float* x = p.x + a / p.x_row_divisor * p.cols;
  if (p.stage) {
    stage_x(staged, x, 1, p.cols);
    x = staged;
  }
  const bool x_vectorised = float4_ok(x, 0);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::int64_t scale_cols = ceil_div(p.cols, p.block_cols);
  const W* w = static_cast<const W*>(weights.data);
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * gemv_warps + warp; r < p.rows;
       r += static_cast<std::int64_t>(gridDim.y) * gemv_warps) {
    const scale_row s{weights.scales, p.scale_type, r / p.block_rows * scale_cols, p.block_cols};
    float acc[x_rows_per_pass] = {};
    row_dot<W>(acc, 1, w + r * p.cols, s, x, 0, p.cols, x_vectorised);
    const float sum = warp_sum(acc[0]);
    if (lane == 0) p.out[a * p.rows + r] = sum;
  }
}

unsigned gemv_blocks(std::int64_t rows, std::int64_t cap) {
  const std::int64_t groups = ceil_div(rows, gemv_warps);
  return static_cast<unsigned>(groups < cap ? groups : cap);
}

template <typename W>
result<void> launch_gemv(const cuda::matmul_args& a, CUstream_st* stream) {
  const bool scaled = a.w.scales != nullptr;
  const std::int64_t staged_bytes = a.n * ((a.w.cols + 3) / 4 * 4) * static_cast<std::int64_t>(sizeof(float));
  const bool stage = staged_bytes <= max_staged_x_bytes;
  const gemv_params p{a.out, a.x, a.w.data, a.w.scales, a.w.scale_type, a.w.rows, a.w.cols, a.n,
                      scaled ? a.w.block_rows : 1, scaled ? a.w.block_cols : 1, stage};
  return cuda::launch(gemv_kernel<W>, dim3(gemv_blocks(a.w.rows, max_gemv_blocks)), dim3(gemv_threads),
                      stage ? static_cast<std::size_t>(staged_bytes) : 0, stream, p);
}

template <typename W>
result<void> launch_expert_gemv(const cuda::expert_gemv_args& a, CUstream_st* stream) {
  const cuda::device_matrix& m = a.shape;
  const std::int64_t staged_bytes = m.cols * static_cast<std::int64_t>(sizeof(float));
  const bool stage = staged_bytes <= max_staged_x_bytes;
  const expert_params p{a.out, a.x, a.experts, a.table, m.scale_type, m.rows, m.cols,
                        m.block_rows, m.block_cols, a.x_row_divisor, stage};
  const dim3 grid(static_cast<unsigned>(a.count), gemv_blocks(m.rows, 65535));
  return cuda::launch(expert_gemv_kernel<W>, grid, dim3(gemv_threads), stage ? static_cast<std::size_t>(staged_bytes) : 0,
                      stream, p);
}

}  // namespace

result<void> gemv(const cuda::matmul_args& args, CUstream_st* stream) {
  QCODER_CHECK(check_matrix_shape("gemv", args.w));
  if (args.n < 0 || args.n > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "gemv: {} rows of x", args.n);
  }
  if (args.n == 0) return ok();
  if (args.out == nullptr || args.x == nullptr || args.w.data == nullptr) {
    return fail(errc::invalid_argument, "gemv: null out, x or weights");
  }
  switch (args.w.type) {
    case cuda::element_type::f32: return launch_gemv<float>(args, stream);
    case cuda::element_type::f16: return launch_gemv<__half>(args, stream);
    case cuda::element_type::bf16: return launch_gemv<__nv_bfloat16>(args, stream);
    case cuda::element_type::f8_e4m3: return launch_gemv<__nv_fp8_e4m3>(args, stream);
  }
  return fail(errc::invalid_argument, "gemv: unknown weight type {}", static_cast<int>(args.w.type));
}

// The table's entries and each experts[a] (< the table's length) are the caller's to keep valid: they are
// device memory that the host does not read.
result<void> expert_gemv(const cuda::expert_gemv_args& args, CUstream_st* stream) {
  // The shape's data and scales are unused: each expert's scales, when its table entry has them, come with
  // the shape's block sizes and scale type, which are therefore always checked.
  cuda::device_matrix checked = args.shape;
  checked.scales = args.table;
  QCODER_CHECK(check_matrix_shape("expert_gemv", checked));
  if (args.count < 0 || args.count > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "expert_gemv: {} assignments", args.count);
  }
  if (args.x_row_divisor <= 0) {
    return fail(errc::invalid_argument, "expert_gemv: x_row_divisor {}", args.x_row_divisor);
  }
  if (args.count == 0) return ok();
  if (args.out == nullptr || args.x == nullptr || args.experts == nullptr || args.table == nullptr) {
    return fail(errc::invalid_argument, "expert_gemv: null out, x, experts or table");
  }
  switch (args.shape.type) {
    case cuda::element_type::f32: return launch_expert_gemv<float>(args, stream);
    case cuda::element_type::f16: return launch_expert_gemv<__half>(args, stream);
    case cuda::element_type::bf16: return launch_expert_gemv<__nv_bfloat16>(args, stream);
    case cuda::element_type::f8_e4m3: return launch_expert_gemv<__nv_fp8_e4m3>(args, stream);
  }
  return fail(errc::invalid_argument, "expert_gemv: unknown weight type {}", static_cast<int>(args.shape.type));
}

}  // namespace QCODER_CUDA_NAMESPACE
