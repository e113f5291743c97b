// The memory-bound small ops of the forward pass (pointwise.h): embedding lookup, axpy, SiLU-GLU, the gated
// RMSNorm, the DeltaNet's input split and the MoE combine. Each is a grid-stride loop (or one block per row
// for the norm) whose loads are coalesced; axpy, SiLU-GLU and the combine use 16-byte vectors when the
// pointers and sizes allow (checked on the host, so one launch never mixes the two paths).
//
// The math follows the CPU code operation for operation (cpu::axpy, cpu::silu_glu, cpu::rms_norm_gated,
// qwen3_next::deltanet_block, qwen3_next::moe_block's combine); where the order of a float sum differs (the
// norm's block reduction, the combine's order of experts) the tests bound the difference. Compiled by nvcc
// into qcoder_kernels_cuda and by the host compiler (emu/pointwise.cpp) into qcoder_kernels_cuda_emu.
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/pointwise_math.cuh"

namespace QCODER_CUDA_NAMESPACE {

namespace {

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_threads() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// out[n, cols] = table[tokens[t], :] × its block scale; one thread per output element, grid-stride.
__global__ void embedding_kernel(float* out, const std::int32_t* tokens, cuda::device_matrix table, std::int64_t n) {
  const std::int64_t cols = table.cols;
  const std::int64_t scale_cols = (cols + table.block_cols - 1) / table.block_cols;
  for (std::int64_t i = global_thread(); i < n * cols; i += grid_threads()) {
    const std::int64_t t = i / cols;
    const std::int64_t c = i - t * cols;
    const std::int64_t row = tokens[t];
    float v = load_element(table.type, table.data, row * cols + c);
    if (table.scales != nullptr) {
      v *= load_element(table.scale_type, table.scales, (row / table.block_rows) * scale_cols + c / table.block_cols);
    }
    out[i] = v;
  }
}

// y[i] += a × x[i]; with `vec`, in float4 (count / 4 of them) and then the scalar tail.
template <bool vec>
__global__ void axpy_kernel(float* y, const float* x, float a, std::int64_t count) {
  std::int64_t done = 0;
  if constexpr (vec) {
    float4* y4 = reinterpret_cast<float4*>(y);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (std::int64_t i = global_thread(); i < count / 4; i += grid_threads()) {
      float4 o = y4[i];
      const float4 v = x4[i];
      o.x += a * v.x;
      o.y += a * v.y;
      o.z += a * v.z;
      o.w += a * v.w;
      y4[i] = o;
    }
    done = count / 4 * 4;
  }
  for (std::int64_t i = done + global_thread(); i < count; i += grid_threads()) y[i] += a * x[i];
}

// out[i] = silu(gate[i]) × up[i]; out may alias gate (each element is read before it is written, by the same
// thread).
template <bool vec>
__global__ void silu_glu_kernel(float* out, const float* gate, const float* up, std::int64_t count) {
  std::int64_t done = 0;
  if constexpr (vec) {
    float4* o4 = reinterpret_cast<float4*>(out);
    const float4* g4 = reinterpret_cast<const float4*>(gate);
    const float4* u4 = reinterpret_cast<const float4*>(up);
    for (std::int64_t i = global_thread(); i < count / 4; i += grid_threads()) {
      const float4 g = g4[i];
      const float4 u = u4[i];
      o4[i] = make_float4(silu_of(g.x) * u.x, silu_of(g.y) * u.y, silu_of(g.z) * u.z, silu_of(g.w) * u.w);
    }
    done = count / 4 * 4;
  }
  for (std::int64_t i = done + global_thread(); i < count; i += grid_threads()) out[i] = silu_of(gate[i]) * up[i];
}

// out[rows, dim] = x × rsqrt(mean(x²) + eps) × w × silu(z), one block per row (the float sum of squares is a
// block reduction, not the CPU's left-to-right sum).
__global__ void rms_norm_gated_kernel(float* out, const float* x, const float* z, cuda::device_vector weight,
                                      std::int64_t dim, float eps) {
  QCODER_SHARED(float, warp_sums, 32);
  const std::int64_t row = blockIdx.x;
  const float* in = x + row * dim;
  float sum_sq = 0.0f;
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += in[i] * in[i];
  sum_sq = block_sum(sum_sq, warp_sums);
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(dim) + eps);
  const float* gate = z + row * dim;
  float* o = out + row * dim;
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    o[i] = in[i] * inv * load_element(weight.type, weight.data, i) * silu_of(gate[i]);
  }
}

// The DeltaNet split, one thread per element of qkvz (copied to mixed or z) and then one per (token, value
// head) for β and g. Reads are contiguous; each key head's four slices land in contiguous runs.
struct split_shape {
  std::int64_t n, k_heads, v_heads, dk, dv;
};

__global__ void deltanet_split_kernel(const float* qkvz, const float* ba, float* mixed, float* z, float* beta,
                                      float* g, cuda::device_vector a_log, cuda::device_vector dt_bias,
                                      split_shape s) {
  const std::int64_t r = s.v_heads / s.k_heads;
  const std::int64_t group = 2 * s.dk + 2 * r * s.dv;
  const std::int64_t width = s.k_heads * group;
  const std::int64_t key_dim = s.k_heads * s.dk;
  const std::int64_t value_dim = s.v_heads * s.dv;
  const std::int64_t conv_dim = 2 * key_dim + value_dim;
  for (std::int64_t i = global_thread(); i < s.n * width; i += grid_threads()) {
    const std::int64_t t = i / width;
    const std::int64_t within = i - t * width;
    const std::int64_t kh = within / group;
    const std::int64_t o = within - kh * group;
    const float v = qkvz[i];
    float* mixed_row = mixed + t * conv_dim;
    if (o < s.dk) {
      mixed_row[kh * s.dk + o] = v;
    } else if (o < 2 * s.dk) {
      mixed_row[key_dim + kh * s.dk + (o - s.dk)] = v;
    } else if (o < 2 * s.dk + r * s.dv) {
      mixed_row[2 * key_dim + kh * r * s.dv + (o - 2 * s.dk)] = v;
    } else {
      z[t * value_dim + kh * r * s.dv + (o - 2 * s.dk - r * s.dv)] = v;
    }
  }
  for (std::int64_t i = global_thread(); i < s.n * s.v_heads; i += grid_threads()) {
    const std::int64_t t = i / s.v_heads;
    const std::int64_t vh = i - t * s.v_heads;
    const std::int64_t kh = vh / r;
    const std::int64_t j = vh - kh * r;
    const float* row = ba + t * 2 * s.v_heads + kh * 2 * r;
    beta[i] = sigmoid_of(row[j]);
    g[i] = -expf(load_element(a_log.type, a_log.data, vh)) *
           softplus_of(row[r + j] + load_element(dt_bias.type, dt_bias.data, vh));
  }
}

// out[t, :] = Σ_j weights[t, j] × down[t k + j, :] + sigmoid(shared_gate[t]) × shared[t, :]; with `vec`, in
// float4 (dim a multiple of 4).
template <bool vec>
__global__ void moe_combine_kernel(float* out, const float* down, const float* weights, const float* shared,
                                   const float* shared_gate, std::int64_t n, std::int64_t k, std::int64_t dim) {
  if constexpr (vec) {
    const std::int64_t dim4 = dim / 4;
    for (std::int64_t i = global_thread(); i < n * dim4; i += grid_threads()) {
      const std::int64_t t = i / dim4;
      const std::int64_t c = i - t * dim4;
      float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      for (std::int64_t j = 0; j < k; ++j) {
        const float w = weights[t * k + j];
        const float4 d = reinterpret_cast<const float4*>(down + (t * k + j) * dim)[c];
        acc.x += w * d.x;
        acc.y += w * d.y;
        acc.z += w * d.z;
        acc.w += w * d.w;
      }
      const float gate = sigmoid_of(shared_gate[t]);
      const float4 sh = reinterpret_cast<const float4*>(shared + t * dim)[c];
      acc.x += gate * sh.x;
      acc.y += gate * sh.y;
      acc.z += gate * sh.z;
      acc.w += gate * sh.w;
      reinterpret_cast<float4*>(out + t * dim)[c] = acc;
    }
  } else {
    for (std::int64_t i = global_thread(); i < n * dim; i += grid_threads()) {
      const std::int64_t t = i / dim;
      const std::int64_t c = i - t * dim;
      float acc = 0.0f;
      for (std::int64_t j = 0; j < k; ++j) acc += weights[t * k + j] * down[(t * k + j) * dim + c];
      out[i] = acc + sigmoid_of(shared_gate[t]) * shared[i];
    }
  }
}

bool bad_count(std::int64_t count) { return count < 0; }

}  // namespace

result<void> embedding(const cuda::embedding_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.table.rows <= 0 || a.table.cols <= 0 ||
      (a.table.scales != nullptr && (a.table.block_rows <= 0 || a.table.block_cols <= 0))) {
    return fail(errc::invalid_argument, "embedding: {} tokens from a [{}, {}] table (blocks {}x{}) is not a valid shape",
                a.n, a.table.rows, a.table.cols, a.table.block_rows, a.table.block_cols);
  }
  if (a.n == 0) return ok();
  return cuda::launch(embedding_kernel, dim3(elementwise_blocks(a.n * a.table.cols)), dim3(elementwise_threads), 0,
                      stream, a.out, a.tokens, a.table, a.n);
}

result<void> axpy(const cuda::axpy_args& a, CUstream_st* stream) {
  if (bad_count(a.count)) return fail(errc::invalid_argument, "axpy: count {} is negative", a.count);
  if (a.count == 0) return ok();
  if (aligned16(a.y) && aligned16(a.x)) {
    return cuda::launch(axpy_kernel<true>, dim3(elementwise_blocks(a.count / 4 + 1)), dim3(elementwise_threads), 0,
                        stream, a.y, a.x, a.a, a.count);
  }
  return cuda::launch(axpy_kernel<false>, dim3(elementwise_blocks(a.count)), dim3(elementwise_threads), 0, stream,
                      a.y, a.x, a.a, a.count);
}

result<void> silu_glu(const cuda::silu_glu_args& a, CUstream_st* stream) {
  if (bad_count(a.count)) return fail(errc::invalid_argument, "silu_glu: count {} is negative", a.count);
  if (a.count == 0) return ok();
  if (aligned16(a.out) && aligned16(a.gate) && aligned16(a.up)) {
    return cuda::launch(silu_glu_kernel<true>, dim3(elementwise_blocks(a.count / 4 + 1)), dim3(elementwise_threads),
                        0, stream, a.out, a.gate, a.up, a.count);
  }
  return cuda::launch(silu_glu_kernel<false>, dim3(elementwise_blocks(a.count)), dim3(elementwise_threads), 0, stream,
                      a.out, a.gate, a.up, a.count);
}

result<void> rms_norm_gated(const cuda::rms_norm_gated_args& a, CUstream_st* stream) {
  if (a.rows < 0 || a.rows > std::numeric_limits<int>::max() || a.dim <= 0) {
    return fail(errc::invalid_argument, "rms_norm_gated: {} rows of {} is not a launchable shape", a.rows, a.dim);
  }
  if (a.rows == 0) return ok();
  const std::int64_t rounded = (a.dim + 31) / 32 * 32;
  const unsigned threads = static_cast<unsigned>(rounded < 256 ? rounded : 256);
  return cuda::launch(rms_norm_gated_kernel, dim3(static_cast<unsigned>(a.rows)), dim3(threads), 0, stream, a.out,
                      a.x, a.z, a.weight, a.dim, a.eps);
}

result<void> deltanet_split(const cuda::deltanet_split_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.k_heads <= 0 || a.v_heads <= 0 || a.dk <= 0 || a.dv <= 0 || a.v_heads % a.k_heads != 0) {
    return fail(errc::invalid_argument,
                "deltanet_split: {} tokens, {} key heads of {}, {} value heads of {} (value heads must be a multiple "
                "of key heads)",
                a.n, a.k_heads, a.dk, a.v_heads, a.dv);
  }
  if (a.n == 0) return ok();
  const std::int64_t width = 2 * a.k_heads * a.dk + 2 * a.v_heads * a.dv;
  return cuda::launch(deltanet_split_kernel, dim3(elementwise_blocks(a.n * width)), dim3(elementwise_threads), 0,
                      stream, a.qkvz, a.ba, a.mixed, a.z, a.beta, a.g, a.a_log, a.dt_bias,
                      split_shape{a.n, a.k_heads, a.v_heads, a.dk, a.dv});
}

result<void> moe_combine(const cuda::moe_combine_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.k < 0 || a.dim <= 0) {
    return fail(errc::invalid_argument, "moe_combine: {} tokens of {} experts, rows of {} is not a valid shape", a.n,
                a.k, a.dim);
  }
  if (a.n == 0) return ok();
  if (a.dim % 4 == 0 && aligned16(a.out) && aligned16(a.down) && aligned16(a.shared)) {
    return cuda::launch(moe_combine_kernel<true>, dim3(elementwise_blocks(a.n * a.dim / 4)),
                        dim3(elementwise_threads), 0, stream, a.out, a.down, a.weights, a.shared, a.shared_gate, a.n,
                        a.k, a.dim);
  }
  return cuda::launch(moe_combine_kernel<false>, dim3(elementwise_blocks(a.n * a.dim)), dim3(elementwise_threads), 0,
                      stream, a.out, a.down, a.weights, a.shared, a.shared_gate, a.n, a.k, a.dim);
}

}  // namespace QCODER_CUDA_NAMESPACE
