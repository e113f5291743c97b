// The gated delta rule on the GPU (and on the emulator), per (segment, value head): the recurrent form
// (cpu::gated_delta_step, row after row) and the chunked form (cpu::gated_delta_rule_chunked). See mixers.h
// and kernels/cpu/delta_rule.h.
//
// Recurrent: the state S [dk, dv] lives in registers for the whole segment. Thread (j, g) of a block of
// ceil32(dv) × ceil(dk / 32) threads holds column j of rows 32g .. 32g + 31. Per token: the token's q, k, v,
// g, β are staged in shared memory (double-buffered by token parity, so one barrier per stage suffices);
// each thread decays its rows and sums its part of (Sᵀk)[j]; the groups' parts meet in shared memory; each
// thread applies the rank-1 update to its rows and sums its part of (Sᵀq)[j]; group 0 adds those up and
// writes o[j]. Three barriers and ~4·32 FMAs per thread per token; the state is read and written once per
// call (64 KiB per head at 128 × 128).
//
// Chunked (per chunk of C tokens, G_i the cumulative log decay; as kernels/cpu/delta_rule.cpp):
//   A[i][j] = −β_i (k_i·k_j) e^{G_i − G_j} (j < i),   M[i][j] = (q_i·k_j) e^{G_i − G_j} (j ≤ i)
//   V' = (I − A)⁻¹ R  with  R_i = β_i (v_i − e^{G_i} Sᵀk_i)
//      (the CPU's U − W·S = T(βV) − T(β e^G K) S, with T = (I − A)⁻¹, folded into one solve)
//   o_i = e^{G_i} Sᵀq_i + Σ_{j ≤ i} M[i][j] V'_j
//   S ← e^{G_C} S + Σ_j e^{G_C − G_j} k_j ⊗ V'_j
// A block of ceil32(dv) threads; thread j holds column j of S (all dk rows, in registers) and does the
// column-j part of every product, so after A and M are built (all threads, one barrier) the chunk needs no
// more barriers. This is the SIMT form of the matrix-shaped algorithm (fp32, no tensor cores): about the
// recurrent form's work per token with a quarter of its threads, and the layout a tensor-core version would
// start from.
//
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/delta_rule.cpp) into
// qcoder_kernels_cuda_emu.
#include <limits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/mixers.h"

// The most threads a kernel is launched with, so that nvcc keeps its registers within an SM's 64 K (the
// emulator has no registers to budget).

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr int rows_per_thread = 32;  // recurrent: state rows per thread
constexpr int max_chunk = 64;        // chunked: A and M are chunk × chunk in shared memory
constexpr int max_threads = 512;     // recurrent: ceil32(dv) × ceil(dk / 32), 128 × 128 at most
constexpr int max_chunk_threads = 256;  // chunked: ceil32(dv), each with up to 128 state registers

std::int64_t round_up_32(std::int64_t x) { return (x + 31) / 32 * 32; }

// ---- recurrent ----------------------------------------------------------------------------------------

// Floats of one token's staging area: q and k [rows: dk padded with zeros to the groups' 32 rows each], v [dv],
// g, β. The padding keeps the per-row loops free of bounds checks (and their registers).
__host__ __device__ inline std::int64_t stage_floats(std::int64_t rows, std::int64_t dv) { return 2 * rows + dv + 2; }

// grid (v_heads, segments), block (ceil32(dv), ceil(dk / 32)); dynamic shared: two staging areas, then the
// groups' parts of Sᵀk and of Sᵀq ([groups][ceil32(dv)] each).
__global__ void QCODER_LAUNCH_BOUNDS(max_threads) delta_rule_steps(cuda::delta_rule_args a) {
  QCODER_DYNAMIC_SHARED(float, smem);
  const std::int64_t dk = a.dk, dv = a.dv;
  const int width = static_cast<int>(blockDim.x);
  const int groups = static_cast<int>(blockDim.y);
  const int j = static_cast<int>(threadIdx.x);
  const int group = static_cast<int>(threadIdx.y);
  const int tid = j + width * group;
  const int threads = width * groups;
  const std::int64_t padded = static_cast<std::int64_t>(groups) * rows_per_thread;
  const std::int64_t stage = stage_floats(padded, dv);
  float* part_kv = smem + 2 * stage;
  float* part_o = part_kv + groups * width;

  const std::int64_t vh = blockIdx.x;
  const std::int64_t kh = vh / (a.v_heads / a.k_heads);
  const std::int64_t segment = blockIdx.y;
  const std::int64_t first = a.rows.first_row[segment];
  const std::int64_t last = a.rows.first_row[segment + 1];
  const bool column = j < dv;
  const std::int64_t row0 = static_cast<std::int64_t>(group) * rows_per_thread;
  float* state = a.state[segment] + vh * dk * dv;

  float s[rows_per_thread];
#pragma unroll
  for (int r = 0; r < rows_per_thread; ++r) s[r] = column && row0 + r < dk ? state[(row0 + r) * dv + j] : 0.0f;

  for (std::int64_t t = first; t < last; ++t) {
    float* sq = smem + ((t - first) & 1) * stage;
    float* sk = sq + padded;
    float* sv = sk + padded;
    const float* in = a.qkv + t * a.row_stride;
    const float* in_q = in + kh * dk;
    const float* in_k = in + a.k_offset + kh * dk;
    const float* in_v = in + a.v_offset + vh * dv;
    for (int i = tid; i < static_cast<int>(padded); i += threads) {
      sq[i] = i < dk ? in_q[i] : 0.0f;
      sk[i] = i < dk ? in_k[i] : 0.0f;
    }
    for (int i = tid; i < static_cast<int>(dv); i += threads) sv[i] = in_v[i];
    if (tid == 0) {
      sv[dv] = a.g[t * a.v_heads + vh];
      sv[dv + 1] = a.beta[t * a.v_heads + vh];
    }
    __syncthreads();

    const float decay = expf(sv[dv]);
    const float* k = sk + row0;  // the thread's rows (zeros past dk, where its state is zero too)
    const float* q = sq + row0;
    float kv = 0.0f;
#pragma unroll
    for (int r = 0; r < rows_per_thread; ++r) {
      s[r] *= decay;
      kv += s[r] * k[r];
    }
    part_kv[group * width + j] = kv;
    __syncthreads();

    kv = 0.0f;
    for (int g = 0; g < groups; ++g) kv += part_kv[g * width + j];
    const float delta = column ? (sv[j] - kv) * sv[dv + 1] : 0.0f;
    float o = 0.0f;
#pragma unroll
    for (int r = 0; r < rows_per_thread; ++r) {
      s[r] += k[r] * delta;
      o += s[r] * q[r];
    }
    part_o[group * width + j] = o;
    __syncthreads();

    if (group == 0 && column) {
      o = 0.0f;
      for (int g = 0; g < groups; ++g) o += part_o[g * width + j];
      a.out[t * a.v_heads * dv + vh * dv + j] = o;
    }
  }

#pragma unroll
  for (int r = 0; r < rows_per_thread; ++r) {
    if (column && row0 + r < dk) state[(row0 + r) * dv + j] = s[r];
  }
}

// ---- chunked ------------------------------------------------------------------------------------------

// K rows in shared memory are padded to an odd stride, so that lanes reading the same dim of different keys
// hit different banks.
__host__ __device__ inline std::int64_t k_stride(std::int64_t dk) { return dk | 1; }

__host__ __device__ inline std::int64_t chunk_shared_floats(std::int64_t chunk, std::int64_t dk, std::int64_t dv) {
  return chunk * k_stride(dk) + chunk * dv + 2 * chunk * chunk + 2 * chunk;
}

// grid (v_heads, segments), block ceil32(dv); dynamic shared: K [C][k_stride], V then R then V' [C][dv],
// A [C][C], M [C][C], G [C], β [C]. DK is dk rounded up to 32, 64 or 128 (the state column's registers).
template <int DK>
__global__ void QCODER_LAUNCH_BOUNDS(max_chunk_threads) delta_rule_chunks(cuda::delta_rule_args a) {
  QCODER_DYNAMIC_SHARED(float, smem);
  const std::int64_t dk = a.dk, dv = a.dv, chunk = a.chunk;
  const std::int64_t ks_stride = k_stride(dk);
  float* ks = smem;
  float* vs = ks + chunk * ks_stride;
  float* as = vs + chunk * dv;
  float* ms = as + chunk * chunk;
  float* cum = ms + chunk * chunk;
  float* bet = cum + chunk;

  const int j = static_cast<int>(threadIdx.x);
  const int threads = static_cast<int>(blockDim.x);
  const bool column = j < dv;
  const std::int64_t vh = blockIdx.x;
  const std::int64_t kh = vh / (a.v_heads / a.k_heads);
  const std::int64_t segment = blockIdx.y;
  const std::int64_t first = a.rows.first_row[segment];
  const std::int64_t last = a.rows.first_row[segment + 1];
  float* state = a.state[segment] + vh * dk * dv;
  auto q_row = [&](std::int64_t t) { return a.qkv + t * a.row_stride + kh * dk; };

  float s[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) s[i] = column && i < dk ? state[i * dv + j] : 0.0f;

  for (std::int64_t c0 = first; c0 < last; c0 += chunk) {
    const int len = static_cast<int>(last - c0 < chunk ? last - c0 : chunk);
    // Stage K, V, β and the cumulative decay (summed in token order, as the CPU does).
    for (std::int64_t idx = j; idx < len * dk; idx += threads) {
      const std::int64_t i = idx / dk, d = idx % dk;
      ks[i * ks_stride + d] = a.qkv[(c0 + i) * a.row_stride + a.k_offset + kh * dk + d];
    }
    for (std::int64_t idx = j; idx < len * dv; idx += threads) {
      const std::int64_t i = idx / dv, d = idx % dv;
      vs[idx] = a.qkv[(c0 + i) * a.row_stride + a.v_offset + vh * dv + d];
    }
    if (j == 0) {
      float running = 0.0f;
      for (int i = 0; i < len; ++i) {
        running += a.g[(c0 + i) * a.v_heads + vh];
        cum[i] = running;
        bet[i] = a.beta[(c0 + i) * a.v_heads + vh];
      }
    }
    __syncthreads();

    // A and M, lower triangles (consecutive threads take consecutive j of a row i).
    for (int idx = j; idx < len * len; idx += threads) {
      const int i = idx / len, jj = idx % len;
      if (jj > i) continue;
      const float* ki = ks + i * ks_stride;
      const float* kj = ks + jj * ks_stride;
      const float* qi = q_row(c0 + i);
      float kk = 0.0f, qk = 0.0f;
      for (std::int64_t d = 0; d < dk; ++d) {
        kk += ki[d] * kj[d];
        qk += qi[d] * kj[d];
      }
      const float decay = expf(cum[i] - cum[jj]);
      as[i * chunk + jj] = -bet[i] * kk * decay;
      ms[i * chunk + jj] = qk * decay;
    }
    __syncthreads();

    if (column) {
      // R = β (V − e^G Sᵀk), and the inter-chunk part of the outputs e^G Sᵀq.
      for (int i = 0; i < len; ++i) {
        const float* ki = ks + i * ks_stride;
        const float* qi = q_row(c0 + i);
        float sk = 0.0f, sq = 0.0f;
#pragma unroll
        for (int d = 0; d < DK; ++d) {
          if (d < dk) {
            sk += ki[d] * s[d];
            sq += qi[d] * s[d];
          }
        }
        const float e = expf(cum[i]);
        vs[i * dv + j] = bet[i] * (vs[i * dv + j] - e * sk);
        a.out[(c0 + i) * a.v_heads * dv + vh * dv + j] = e * sq;
      }
      // V' = (I − A)⁻¹ R by forward substitution down column j.
      for (int i = 1; i < len; ++i) {
        float acc = vs[i * dv + j];
        for (int jj = 0; jj < i; ++jj) acc += as[i * chunk + jj] * vs[jj * dv + j];
        vs[i * dv + j] = acc;
      }
      // The intra-chunk part of the outputs.
      for (int i = 0; i < len; ++i) {
        float o = a.out[(c0 + i) * a.v_heads * dv + vh * dv + j];
        for (int jj = 0; jj <= i; ++jj) o += ms[i * chunk + jj] * vs[jj * dv + j];
        a.out[(c0 + i) * a.v_heads * dv + vh * dv + j] = o;
      }
      // S ← e^{G_C} S + Σ_i e^{G_C − G_i} k_i ⊗ V'_i.
      const float total = expf(cum[len - 1]);
#pragma unroll
      for (int d = 0; d < DK; ++d) s[d] *= total;
      for (int i = 0; i < len; ++i) {
        const float w = expf(cum[len - 1] - cum[i]) * vs[i * dv + j];
        const float* ki = ks + i * ks_stride;
#pragma unroll
        for (int d = 0; d < DK; ++d) {
          if (d < dk) s[d] += ki[d] * w;
        }
      }
    }
    __syncthreads();  // the next chunk overwrites K, V and the decays
  }

#pragma unroll
  for (int i = 0; i < DK; ++i) {
    if (column && i < dk) state[i * dv + j] = s[i];
  }
}

template <int DK>
result<void> launch_chunks(const cuda::delta_rule_args& a, CUstream_st* stream) {
  const std::size_t bytes = static_cast<std::size_t>(chunk_shared_floats(a.chunk, a.dk, a.dv)) * sizeof(float);
  QCODER_CHECK(cuda::allow_dynamic_shared(delta_rule_chunks<DK>, bytes));
  return cuda::launch(delta_rule_chunks<DK>, dim3(static_cast<unsigned>(a.v_heads), static_cast<unsigned>(a.rows.segments)),
                      dim3(static_cast<unsigned>(round_up_32(a.dv))), bytes, stream, a);
}

result<void> validate(const cuda::delta_rule_args& a, const char* name) {
  if (a.n < 0 || a.k_heads <= 0 || a.v_heads <= 0 || a.v_heads % a.k_heads != 0 || a.dk <= 0 || a.dv <= 0 ||
      a.v_heads > std::numeric_limits<int>::max() || a.row_stride < a.v_offset + a.v_heads * a.dv ||
      a.k_offset + a.k_heads * a.dk > a.row_stride || (a.n > 0 && (a.rows.segments < 1 || a.rows.segments > 65535))) {
    return fail(errc::invalid_argument,
                "{}: {} rows in {} segments, {} key heads of {} / {} value heads of {}, qkv rows of {} floats "
                "(k at {}, v at {})",
                name, a.n, a.rows.segments, a.k_heads, a.dk, a.v_heads, a.dv, a.row_stride, a.k_offset, a.v_offset);
  }
  return ok();
}

}  // namespace

result<void> delta_rule_recurrent(const cuda::delta_rule_args& a, CUstream_st* stream) {
  QCODER_CHECK(validate(a, "delta_rule_recurrent"));
  const std::int64_t width = round_up_32(a.dv);
  const std::int64_t groups = (a.dk + rows_per_thread - 1) / rows_per_thread;
  if (width * groups > max_threads) {
    return fail(errc::invalid_argument, "delta_rule_recurrent: a {} × {} state needs {} threads, over {}", a.dk,
                a.dv, width * groups, max_threads);
  }
  if (a.n == 0) return ok();
  const std::int64_t stage = stage_floats(groups * rows_per_thread, a.dv);
  const std::size_t bytes = static_cast<std::size_t>(2 * stage + 2 * groups * width) * sizeof(float);
  QCODER_CHECK(cuda::allow_dynamic_shared(delta_rule_steps, bytes));
  return cuda::launch(delta_rule_steps, dim3(static_cast<unsigned>(a.v_heads), static_cast<unsigned>(a.rows.segments)),
                      dim3(static_cast<unsigned>(width), static_cast<unsigned>(groups)), bytes, stream, a);
}

result<void> delta_rule_chunked(const cuda::delta_rule_args& a, CUstream_st* stream) {
  QCODER_CHECK(validate(a, "delta_rule_chunked"));
  if (a.chunk < 1 || a.chunk > max_chunk || a.dk > 128 || round_up_32(a.dv) > max_chunk_threads) {
    return fail(errc::invalid_argument,
                "delta_rule_chunked: chunk {} (1..{}) with a {} × {} state (dk ≤ 128, dv ≤ {})", a.chunk, max_chunk,
                a.dk, a.dv, max_chunk_threads);
  }
  if (a.n == 0) return ok();
  if (a.dk <= 32) return launch_chunks<32>(a, stream);
  if (a.dk <= 64) return launch_chunks<64>(a, stream);
  return launch_chunks<128>(a, stream);
}

}  // namespace QCODER_CUDA_NAMESPACE
