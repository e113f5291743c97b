// Gated attention over the KV cache on the GPU (and on the emulator): the twins of the CPU model's
// attention_block (engine/model/qwen3_next.cpp) built from cpu::rms_norm, cpu::rope_neox and
// cpu::attention_head. See mixers.h for the contracts.
//
// - attention_prepare: one block per row. The row's RoPE angles are computed once, in double as
//   ref::rope_neox does (a float angle at position 4096 would be off by ~1e-4 rad), then one warp per head
//   normalises and rotates it in place and writes k and v into the segment's cache rows.
// - attention, decode shape (about one row per segment): one block per (row, query head), flash-decoding
//   inside the block. Its 8 warps take interleaved runs of 4 keys, each warp keeping an online softmax
//   (running max, sum and Σ p·v with the head's dims spread over the lanes), and the warps' partial results
//   are combined through shared memory at the end. Keys are read once per query head: the GQA group's other
//   heads read them again from L2.
// - attention, prefill shape: flash attention in fp32. A block takes a tile of up to 32 (head_dim ≤ 128) or
//   16 (≤ 256) consecutive query rows of one segment and one head, and walks the keys in tiles of 32 staged in
//   shared memory; each warp owns a few query rows, a lane one key of the tile for the scores and every 32nd
//   dim of the output. The causal mask falls out of the positions: row r (position p) keeps keys ≤ p.
// Both attention kernels are instantiated for head_dim ≤ 64, 128 and 256; a smaller head_dim runs in the next
// size with the extra dims zero.
//
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/attention.cpp) into
// qcoder_kernels_cuda_emu.
#include <cmath>
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mixers.h"

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();
constexpr std::int64_t max_head_dim = 256;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// ---- attention_prepare --------------------------------------------------------------------------------

// grid n, block 32 × min(heads + kv_heads, 8); dynamic shared: rot_dim floats (cos, then sin).
template <typename W>
__global__ void prepare_rows(cuda::attention_prepare_args a) {
  QCODER_DYNAMIC_SHARED(float, table);
  const std::int64_t t = blockIdx.x;
  const std::int64_t d = a.head_dim;
  const int segment = a.rows.row_segment[t];
  const std::int64_t pos = a.rows.start[segment] + (t - a.rows.first_row[segment]);
  const std::int64_t half = a.rot_dim / 2;
  for (std::int64_t i = threadIdx.x; i < half; i += blockDim.x) {  // as ref::rope_neox
    const double inv_freq = pow(a.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(a.rot_dim));
    const double angle = static_cast<double>(pos) * inv_freq;
    table[i] = static_cast<float>(cos(angle));
    table[half + i] = static_cast<float>(sin(angle));
  }
  __syncthreads();

  const unsigned lane = threadIdx.x % 32;
  const W* q_norm = static_cast<const W*>(a.q_norm.data);
  const W* k_norm = static_cast<const W*>(a.k_norm.data);
  for (std::int64_t head = threadIdx.x / 32; head < a.heads + a.kv_heads; head += blockDim.x / 32) {
    const bool is_q = head < a.heads;
    // q heads are the first half of each [q | gate] pair; k heads also go to the cache.
    float* x = is_q ? a.q_gate + (t * a.heads + head) * 2 * d : a.k + (t * a.kv_heads + head - a.heads) * d;
    float* cached = is_q ? nullptr : a.key_rows[segment] + pos * a.kv_stride + (head - a.heads) * d;
    const W* w = is_q ? q_norm : k_norm;
    float sum_sq = 0.0f;
    for (std::int64_t i = lane; i < d; i += 32) sum_sq += x[i] * x[i];
    const float inv = 1.0f / sqrtf(warp_sum(sum_sq) / static_cast<float>(d) + a.eps);
    // Each lane rewrites the pairs (i, i + half) and the unrotated dims it reads; the reads of the sum above
    // are complete once warp_sum has returned in every lane.
    for (std::int64_t i = lane; i < half; i += 32) {
      const float x0 = x[i] * inv * (1.0f + to_float(w[i]));
      const float x1 = x[i + half] * inv * (1.0f + to_float(w[i + half]));
      const float c = table[i];
      const float s = table[half + i];
      const float r0 = x0 * c - x1 * s;
      const float r1 = x1 * c + x0 * s;
      x[i] = r0;
      x[i + half] = r1;
      if (cached) {
        cached[i] = r0;
        cached[i + half] = r1;
      }
    }
    for (std::int64_t i = a.rot_dim + lane; i < d; i += 32) {
      const float y = x[i] * inv * (1.0f + to_float(w[i]));
      x[i] = y;
      if (cached) cached[i] = y;
    }
  }

  float* values = a.value_rows[segment] + pos * a.kv_stride;
  const float* v = a.v + t * a.kv_heads * d;
  for (std::int64_t i = threadIdx.x; i < a.kv_heads * d; i += blockDim.x) values[i] = v[i];
}

template <typename W>
result<void> launch_prepare(const cuda::attention_prepare_args& a, CUstream_st* stream) {
  const std::int64_t warps = a.heads + a.kv_heads < 8 ? a.heads + a.kv_heads : 8;
  return cuda::launch(prepare_rows<W>, dim3(static_cast<unsigned>(a.n)), dim3(static_cast<unsigned>(32 * warps)),
                      static_cast<std::size_t>(a.rot_dim) * sizeof(float), stream, a);
}

// ---- attention: shared by both shapes -------------------------------------------------------------------

// Where row t is: its segment and its position there (row t attends to keys 0..position).
struct row_place {
  int segment;
  std::int64_t position;
};

__device__ __forceinline__ row_place place_of(const cuda::row_segments& rows, std::int64_t t) {
  const int segment = rows.row_segment[t];
  return {segment, rows.start[segment] + (t - rows.first_row[segment])};
}

// out[d] = o[d] × sigmoid(gate[d]) when gated.
__device__ __forceinline__ float gate_output(float o, const float* gate, std::int64_t d, bool gated) {
  return gated ? o * sigmoid(gate[d]) : o;
}

// ---- attention, decode shape --------------------------------------------------------------------------

constexpr int decode_warps = 8;
constexpr int decode_keys_per_step = 4;  // keys a warp has in flight at once

// grid (heads, n), block 32 × decode_warps. Lane l holds dims l, l + 32, ... of q, of the running Σ p·v and
// of each key and value it reads (each load a coalesced 128 bytes across the warp).
template <int DMAX>
__global__ void attention_decode(cuda::attention_args a) {
  constexpr int per_lane = DMAX / 32;
  constexpr int step = decode_keys_per_step;
  QCODER_SHARED(float, part_acc, decode_warps * DMAX);
  QCODER_SHARED(float, part_max, decode_warps);
  QCODER_SHARED(float, part_sum, decode_warps);

  const std::int64_t head = blockIdx.x;
  const std::int64_t t = blockIdx.y;
  const std::int64_t d = a.head_dim;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const row_place at = place_of(a.rows, t);
  const std::int64_t n_keys = at.position + 1;
  const std::int64_t kv_head = head / (a.heads / a.kv_heads);
  const float* q = a.q_gate + (t * a.heads + head) * 2 * d;
  const float* keys = a.key_rows[at.segment] + kv_head * d;
  const float* values = a.value_rows[at.segment] + kv_head * d;

  float qr[per_lane];
#pragma unroll
  for (int i = 0; i < per_lane; ++i) qr[i] = lane + 32 * i < d ? q[lane + 32 * i] : 0.0f;

  float run_max = neg_inf, run_sum = 0.0f;
  float acc[per_lane] = {};
  for (std::int64_t base = static_cast<std::int64_t>(warp) * step; base < n_keys; base += decode_warps * step) {
    float kr[step][per_lane], vr[step][per_lane];
#pragma unroll
    for (int u = 0; u < step; ++u) {
      const bool live = base + u < n_keys;
      const float* k = keys + (base + u) * a.kv_stride;
      const float* v = values + (base + u) * a.kv_stride;
#pragma unroll
      for (int i = 0; i < per_lane; ++i) {
        const bool in = live && lane + 32 * i < d;
        kr[u][i] = in ? k[lane + 32 * i] : 0.0f;
        vr[u][i] = in ? v[lane + 32 * i] : 0.0f;
      }
    }
    float score[step];
#pragma unroll
    for (int u = 0; u < step; ++u) {
      score[u] = 0.0f;
#pragma unroll
      for (int i = 0; i < per_lane; ++i) score[u] += qr[i] * kr[u][i];
    }
    // The step's dot products summed over the lanes together (independent shuffle chains).
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
#pragma unroll
      for (int u = 0; u < step; ++u) score[u] += __shfl_xor_sync(full_warp_mask, score[u], offset);
    }
    float step_max = neg_inf;
#pragma unroll
    for (int u = 0; u < step; ++u) {
      score[u] = base + u < n_keys ? score[u] * a.scale : neg_inf;
      step_max = fmaxf(step_max, score[u]);
    }
    const float new_max = fmaxf(run_max, step_max);  // finite: key `base` is live
    const float alpha = expf(run_max - new_max);
    run_sum *= alpha;
#pragma unroll
    for (int i = 0; i < per_lane; ++i) acc[i] *= alpha;
#pragma unroll
    for (int u = 0; u < step; ++u) {
      const float p = expf(score[u] - new_max);
      run_sum += p;
#pragma unroll
      for (int i = 0; i < per_lane; ++i) acc[i] += p * vr[u][i];
    }
    run_max = new_max;
  }

  // Combine the warps: a warp that saw no key has max −inf and contributes nothing.
  if (lane == 0) {
    part_max[warp] = run_max;
    part_sum[warp] = run_sum;
  }
#pragma unroll
  for (int i = 0; i < per_lane; ++i) part_acc[warp * DMAX + lane + 32 * i] = acc[i];
  __syncthreads();
  float total_max = neg_inf;
  for (int w = 0; w < decode_warps; ++w) total_max = fmaxf(total_max, part_max[w]);
  float total_sum = 0.0f;
  for (int w = 0; w < decode_warps; ++w) total_sum += part_sum[w] * expf(part_max[w] - total_max);
  const float inv_sum = 1.0f / total_sum;
  float* out = a.out + (t * a.heads + head) * d;
  for (std::int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < decode_warps; ++w) o += part_acc[w * DMAX + i] * expf(part_max[w] - total_max);
    out[i] = gate_output(o * inv_sum, q + d, i, a.gated);
  }
}

// ---- attention, prefill shape -------------------------------------------------------------------------

constexpr int prefill_warps = 4;
constexpr int key_tile = 32;

// Query rows per warp: a tile of 32 rows up to head_dim 128, 16 at 256 (its shared memory stays < 99 KiB,
// which every target architecture allows a block).
template <int DMAX>
constexpr int rows_per_warp = DMAX <= 128 ? 8 : 4;

// Shared memory: Q [rows][DMAX], K [32][DMAX + 4] (padded so lanes' float4 reads of different keys do not
// share banks), V [32][DMAX], P [rows][32].
template <int DMAX>
constexpr std::size_t prefill_shared_bytes() {
  constexpr int rows = prefill_warps * rows_per_warp<DMAX>;
  return sizeof(float) * (rows * DMAX + key_tile * (DMAX + 4) + key_tile * DMAX + rows * key_tile);
}

// grid (tiles, heads), block 32 × prefill_warps; grid.x is an upper bound on the number of query tiles
// (ceil(n / rows) + segments): each segment's rows are cut into tiles of its own, in order, and a block past
// the last tile returns at once.
template <int DMAX>
__global__ void attention_prefill(cuda::attention_args a) {
  constexpr int rpw = rows_per_warp<DMAX>;
  constexpr int tile_rows = prefill_warps * rpw;
  constexpr int per_lane = DMAX / 32;
  constexpr int k_stride = DMAX + 4;
  QCODER_DYNAMIC_SHARED(float, smem);
  float* qs = smem;
  float* ks = qs + tile_rows * DMAX;
  float* vs = ks + key_tile * k_stride;
  float* ps = vs + key_tile * DMAX;
  QCODER_SHARED(std::int64_t, tile, 3);  // segment (−1: none), first row, rows

  if (threadIdx.x == 0) {
    std::int64_t index = blockIdx.x;
    tile[0] = -1;
    for (std::int64_t s = 0; s < a.rows.segments; ++s) {
      const std::int64_t len = a.rows.first_row[s + 1] - a.rows.first_row[s];
      const std::int64_t tiles = (len + tile_rows - 1) / tile_rows;
      if (index < tiles) {
        tile[0] = s;
        tile[1] = a.rows.first_row[s] + index * tile_rows;
        tile[2] = len - index * tile_rows < tile_rows ? len - index * tile_rows : tile_rows;
        break;
      }
      index -= tiles;
    }
  }
  __syncthreads();
  if (tile[0] < 0) return;  // the whole block
  const std::int64_t segment = tile[0];
  const std::int64_t first = tile[1];
  const int rows = static_cast<int>(tile[2]);

  const std::int64_t head = blockIdx.y;
  const std::int64_t d = a.head_dim;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::int64_t first_pos = a.rows.start[segment] + (first - a.rows.first_row[segment]);
  const std::int64_t n_keys = first_pos + rows;  // the last row's keys; earlier rows mask the rest
  const std::int64_t kv_head = head / (a.heads / a.kv_heads);
  const float* keys = a.key_rows[segment] + kv_head * d;
  const float* values = a.value_rows[segment] + kv_head * d;

  for (int idx = threadIdx.x; idx < tile_rows * DMAX; idx += blockDim.x) {
    const int r = idx / DMAX;
    const int i = idx % DMAX;
    qs[idx] = r < rows && i < d ? a.q_gate[((first + r) * a.heads + head) * 2 * d + i] : 0.0f;
  }

  float run_max[rpw], run_sum[rpw], acc[rpw][per_lane];
#pragma unroll
  for (int r = 0; r < rpw; ++r) {
    run_max[r] = neg_inf;
    run_sum[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < per_lane; ++i) acc[r][i] = 0.0f;
  }

  for (std::int64_t k0 = 0; k0 < n_keys; k0 += key_tile) {
    __syncthreads();  // the previous tile's K, V and P are no longer read
    for (int idx = threadIdx.x; idx < key_tile * DMAX; idx += blockDim.x) {
      const int j = idx / DMAX;
      const int i = idx % DMAX;
      const bool in = k0 + j < n_keys && i < d;
      ks[j * k_stride + i] = in ? keys[(k0 + j) * a.kv_stride + i] : 0.0f;
      vs[j * DMAX + i] = in ? values[(k0 + j) * a.kv_stride + i] : 0.0f;
    }
    __syncthreads();

    // Scores of the warp's rows against key k0 + lane.
    float score[rpw] = {};
    const float4* k4 = reinterpret_cast<const float4*>(ks + lane * k_stride);
    for (int i4 = 0; i4 < DMAX / 4; ++i4) {
      const float4 kv = k4[i4];
#pragma unroll
      for (int r = 0; r < rpw; ++r) {
        const float4 qv = reinterpret_cast<const float4*>(qs + (warp * rpw + r) * DMAX)[i4];
        score[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
      }
    }
#pragma unroll
    for (int r = 0; r < rpw; ++r) {
      const int row = warp * rpw + r;
      const bool live = row < rows && k0 + lane <= first_pos + row;
      const float s = live ? score[r] * a.scale : neg_inf;
      const float new_max = fmaxf(run_max[r], warp_max(s));
      const float base = new_max == neg_inf ? 0.0f : new_max;  // a row with no live key yet (or ever)
      const float alpha = expf(run_max[r] - base);
      const float p = expf(s - base);
      run_sum[r] = run_sum[r] * alpha + warp_sum(p);
      run_max[r] = new_max;
#pragma unroll
      for (int i = 0; i < per_lane; ++i) acc[r][i] *= alpha;
      ps[row * key_tile + lane] = p;
    }
    __syncthreads();

    const int live_keys = n_keys - k0 < key_tile ? static_cast<int>(n_keys - k0) : key_tile;
    for (int j = 0; j < live_keys; ++j) {
      float v[per_lane];
#pragma unroll
      for (int i = 0; i < per_lane; ++i) v[i] = vs[j * DMAX + lane + 32 * i];
#pragma unroll
      for (int r = 0; r < rpw; ++r) {
        const float p = ps[(warp * rpw + r) * key_tile + j];
#pragma unroll
        for (int i = 0; i < per_lane; ++i) acc[r][i] += p * v[i];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < rpw; ++r) {
    const int row = warp * rpw + r;
    if (row >= rows) continue;
    const std::int64_t t = first + row;
    const float* gate = a.q_gate + (t * a.heads + head) * 2 * d + d;
    float* out = a.out + (t * a.heads + head) * d;
    const float inv_sum = 1.0f / run_sum[r];
#pragma unroll
    for (int i = 0; i < per_lane; ++i) {
      const std::int64_t dim = lane + 32 * i;
      if (dim < d) out[dim] = gate_output(acc[r][i] * inv_sum, gate, dim, a.gated);
    }
  }
}

template <int DMAX>
result<void> launch_attention(const cuda::attention_args& a, CUstream_st* stream) {
  // About one row per segment: the decode kernel; more: query tiles. Both are exact for any shape.
  if (a.n <= 4 * a.rows.segments && a.n <= 65535) {
    return cuda::launch(attention_decode<DMAX>, dim3(static_cast<unsigned>(a.heads), static_cast<unsigned>(a.n)),
                        dim3(32 * decode_warps), 0, stream, a);
  }
  constexpr int tile_rows = prefill_warps * rows_per_warp<DMAX>;
  constexpr std::size_t bytes = prefill_shared_bytes<DMAX>();
  const std::int64_t tiles = (a.n + tile_rows - 1) / tile_rows + a.rows.segments;
  if (tiles > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "attention: {} rows in {} segments is not a launchable shape", a.n,
                a.rows.segments);
  }
  QCODER_CHECK(cuda::allow_dynamic_shared(attention_prefill<DMAX>, bytes));
  return cuda::launch(attention_prefill<DMAX>, dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(a.heads)),
                      dim3(32 * prefill_warps), bytes, stream, a);
}

bool valid_heads(std::int64_t heads, std::int64_t kv_heads, std::int64_t head_dim, std::int64_t kv_stride) {
  return heads > 0 && heads <= 65535 && kv_heads > 0 && heads % kv_heads == 0 && head_dim > 0 &&
         kv_stride >= kv_heads * head_dim;
}

}  // namespace

result<void> attention_prepare(const cuda::attention_prepare_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.n > std::numeric_limits<int>::max() || !valid_heads(a.heads, a.kv_heads, a.head_dim, a.kv_stride) ||
      a.rot_dim < 0 || a.rot_dim % 2 != 0 || a.rot_dim > a.head_dim || a.rot_dim > 4096 || a.q_norm.type != a.k_norm.type) {
    return fail(errc::invalid_argument,
                "attention_prepare: {} rows, {} heads / {} kv heads of {} (rotating {}), kv rows of {} floats, "
                "norm weights of types {} and {}",
                a.n, a.heads, a.kv_heads, a.head_dim, a.rot_dim, a.kv_stride, static_cast<int>(a.q_norm.type),
                static_cast<int>(a.k_norm.type));
  }
  if (a.n == 0) return ok();
  switch (a.q_norm.type) {
    case cuda::element_type::f32: return launch_prepare<float>(a, stream);
    case cuda::element_type::f16: return launch_prepare<__half>(a, stream);
    case cuda::element_type::bf16: return launch_prepare<__nv_bfloat16>(a, stream);
    case cuda::element_type::f8_e4m3: return launch_prepare<__nv_fp8_e4m3>(a, stream);
  }
  return fail(errc::invalid_argument, "attention_prepare: unknown norm weight type {}", static_cast<int>(a.q_norm.type));
}

result<void> attention(const cuda::attention_args& a, CUstream_st* stream) {
  if (a.n < 0 || !valid_heads(a.heads, a.kv_heads, a.head_dim, a.kv_stride) ||
      (a.n > 0 && a.rows.segments < 1)) {
    return fail(errc::invalid_argument,
                "attention: {} rows in {} segments, {} heads / {} kv heads of {}, kv rows of {} floats", a.n,
                a.rows.segments, a.heads, a.kv_heads, a.head_dim, a.kv_stride);
  }
  if (a.head_dim > max_head_dim) {
    return fail(errc::invalid_argument, "attention: head_dim {} is over {}, the largest the kernels hold",
                a.head_dim, max_head_dim);
  }
  if (a.n == 0) return ok();
  if (a.head_dim <= 64) return launch_attention<64>(a, stream);
  if (a.head_dim <= 128) return launch_attention<128>(a, stream);
  return launch_attention<256>(a, stream);
}

}  // namespace QCODER_CUDA_NAMESPACE
