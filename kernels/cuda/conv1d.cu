// The Gated DeltaNet's ops before the delta rule: the depthwise causal conv1d + SiLU over each segment's
// rows (continuing from and updating its state), and the per-head L2 normalisation of q and k. Twins of
// cpu::causal_conv1d_silu and cpu::l2_norm (see mixers.h).
//
// The convolution is parallel over rows as well as channels: output row t needs only the inputs of rows
// t − (taps − 1) .. t, taken from x inside the segment and from the segment's state before its first row. So
// one kernel writes every output (reading the old state) and a second, ordered after it on the stream, moves
// the last taps − 1 inputs into the state. Memory traffic per call: x read ~taps times (L1/L2 hits after the
// first), out written once, the state read and written once.
//
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/conv1d.cpp) into
// qcoder_kernels_cuda_emu.
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mixers.h"

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr int max_taps = 8;             // as cpu::causal_conv1d_silu (Qwen3-Next uses 4)
constexpr unsigned conv_threads = 128;  // channels per block
constexpr std::int64_t conv_rows = 16;  // rows per block

// out[t, c] = silu(Σ_j w[c, j] · in(t − hist + j)) with hist = taps − 1, where in(u) is x[u] for rows u of
// t's segment and, before its first row f, the state's entry u − f + hist (oldest first).
// grid (ceil(channels / 128), ceil(n / conv_rows)); block 128: one channel per thread, conv_rows rows.
template <typename W>
__global__ void conv1d_silu_rows(float* out, const float* x, const W* weight, float* const* state,
                                 cuda::row_segments rows, std::int64_t n, std::int64_t channels, int taps) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;  // no barriers in this kernel
  const int hist = taps - 1;
  // The taps in registers: every index below is a compile-time constant once the loops are unrolled.
  float w[max_taps];
  float w_current = 0.0f;  // w[hist], the tap of the current token
#pragma unroll
  for (int j = 0; j < max_taps; ++j) {
    w[j] = j < taps ? to_float(weight[c * taps + j]) : 0.0f;
    if (j == hist) w_current = w[j];
  }

  const std::int64_t first = static_cast<std::int64_t>(blockIdx.y) * conv_rows;
  const std::int64_t last = first + conv_rows < n ? first + conv_rows : n;
  for (std::int64_t t = first; t < last; ++t) {
    const int segment = rows.row_segment[t];
    const std::int64_t f = rows.first_row[segment];
    const float* st = hist > 0 ? state[segment] + c * hist : nullptr;
    // The current token first, then the history oldest first, as cpu::causal_conv1d_silu sums.
    float sum = w_current * x[t * channels + c];
#pragma unroll
    for (int j = 0; j < max_taps - 1; ++j) {
      if (j < hist) {
        const std::int64_t u = t - hist + j;
        sum += w[j] * (u >= f ? x[u * channels + c] : st[u - f + hist]);
      }
    }
    out[t * channels + c] = sum / (1.0f + expf(-sum));
  }
}

// Each segment's state ← its last hist inputs: entry j is input len − hist + j of the segment (len rows),
// from x when that row is in the chunk, else from the old state (entry j + len, read before it is
// overwritten since j + len > j). grid (ceil(channels / 128), segments); block 128.
__global__ void conv1d_update_state(const float* x, float* const* state, cuda::row_segments rows,
                                    std::int64_t channels, int hist) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const std::int64_t segment = blockIdx.y;
  const std::int64_t f = rows.first_row[segment];
  const std::int64_t len = rows.first_row[segment + 1] - f;
  if (len == 0) return;
  float* st = state[segment] + c * hist;
  for (int j = 0; j < hist; ++j) {
    const std::int64_t u = len - hist + j;
    st[j] = u >= 0 ? x[(f + u) * channels + c] : st[j + len];
  }
}

template <typename W>
result<void> launch_conv(const cuda::causal_conv1d_args& a, CUstream_st* stream) {
  const unsigned channel_blocks = static_cast<unsigned>((a.channels + conv_threads - 1) / conv_threads);
  const int taps = static_cast<int>(a.taps);
  QCODER_CHECK(cuda::launch(conv1d_silu_rows<W>, dim3(channel_blocks, static_cast<unsigned>((a.n + conv_rows - 1) / conv_rows)),
                            dim3(conv_threads), 0, stream, a.out, a.x, static_cast<const W*>(a.weight.data), a.state,
                            a.rows, a.n, a.channels, taps));
  if (taps == 1) return ok();  // no history to keep
  return cuda::launch(conv1d_update_state, dim3(channel_blocks, static_cast<unsigned>(a.rows.segments)),
                      dim3(conv_threads), 0, stream, a.x, a.state, a.rows, a.channels, taps - 1);
}

// x[r, h*dim : (h+1)*dim] *= scale / sqrt(Σx² + eps): one warp per (row, head), 4 warps per block.
__global__ void l2_norm_heads(float* x, std::int64_t count, std::int64_t row_stride, std::int64_t heads,
                              std::int64_t dim, float eps, float scale) {
  const std::int64_t task = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (task >= count) return;  // whole warps only; no block barriers
  const unsigned lane = threadIdx.x % 32;
  float* v = x + (task / heads) * row_stride + (task % heads) * dim;
  float sum_sq = 0.0f;
  for (std::int64_t i = lane; i < dim; i += 32) sum_sq += v[i] * v[i];
  const float inv = scale / sqrtf(warp_sum(sum_sq) + eps);
  for (std::int64_t i = lane; i < dim; i += 32) v[i] *= inv;
}

}  // namespace

result<void> causal_conv1d_silu(const cuda::causal_conv1d_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.channels <= 0 || a.taps < 1 || a.taps > max_taps) {
    return fail(errc::invalid_argument, "causal_conv1d_silu: {} rows of {} channels with {} taps (1..{})", a.n,
                a.channels, a.taps, max_taps);
  }
  if (a.n == 0) return ok();
  if (a.rows.segments < 1 || a.rows.segments > 65535 || (a.n + conv_rows - 1) / conv_rows > 65535 ||
      a.channels > std::int64_t{conv_threads} * std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "causal_conv1d_silu: {} rows in {} segments of {} channels is not a launchable shape",
                a.n, a.rows.segments, a.channels);
  }
  switch (a.weight.type) {
    case cuda::element_type::f32: return launch_conv<float>(a, stream);
    case cuda::element_type::f16: return launch_conv<__half>(a, stream);
    case cuda::element_type::bf16: return launch_conv<__nv_bfloat16>(a, stream);
    case cuda::element_type::f8_e4m3: return launch_conv<__nv_fp8_e4m3>(a, stream);
  }
  return fail(errc::invalid_argument, "causal_conv1d_silu: unknown weight type {}", static_cast<int>(a.weight.type));
}

result<void> l2_norm(const cuda::l2_norm_args& a, CUstream_st* stream) {
  if (a.rows < 0 || a.heads <= 0 || a.dim <= 0 || a.row_stride < a.heads * a.dim) {
    return fail(errc::invalid_argument, "l2_norm: {} rows of {} heads × {} in rows of {} floats", a.rows, a.heads,
                a.dim, a.row_stride);
  }
  const std::int64_t count = a.rows * a.heads;
  constexpr unsigned warps = 4;
  const std::int64_t blocks = (count + warps - 1) / warps;
  if (blocks > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "l2_norm: {} rows of {} heads is not a launchable shape", a.rows, a.heads);
  }
  if (count == 0) return ok();
  return cuda::launch(l2_norm_heads, dim3(static_cast<unsigned>(blocks)), dim3(32 * warps), 0, stream, a.x, count,
                      a.row_stride, a.heads, a.dim, a.eps, a.scale);
}

}  // namespace QCODER_CUDA_NAMESPACE
