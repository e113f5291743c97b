// Picking the next token on the device (pointwise.h): argmax per row, and one sampled draw that reproduces
// engine::draw_token (engine/sampler.cpp) for the same logits and uniform number.
//
// argmax: one block per row; each thread keeps the best of a strided slice (float4 loads when the row
// allows), then a block reduction on (value, index) with ties to the lower index. NaN as engine::argmax
// treats it: its loop compares `x[i] > x[best]`, so a NaN never wins, and a NaN in column 0 wins outright
// (nothing compares greater than it).
//
// sample: one block. The CPU sorts the candidates by logit (ties: lower id first), takes softmax weights
// p = exp((logit − max) / T) in float, and runs three double-precision left-to-right sums over them (the
// total for top-p, the top-p mass, the kept mass and the walk to u × kept). Those sums are reproduced bit for
// bit by running them the same way, in the same order, on one thread, over candidates brought into shared
// memory in sorted chunks of `chunk` (a radix select on (logit, −id) finds each chunk's last member, a
// bitonic sort orders the chunk). Two facts keep the work to the candidates that matter:
// - every sum starts with p = 1 (the best candidate) and so stays ≥ 1, and the top-p mass stays ≥ its first
//   term; a p < 2^-55 is below half an ulp of all of them and changes none (only its rank matters, for the
//   cut-offs, which are counts);
// - min-p keeps p ≥ min_p × 1, a count over the row, no sort needed.
// With top_k ≤ chunk (the usual case) one chunk holds everything; top_k = 0 over a flat distribution walks the
// whole vocabulary in ~75 chunks (each re-gathered per sweep: slow, by estimate milliseconds; not measured).
// Where a GPU can differ from the CPU: p's exp. The emulator calls the host's expf, as the CPU sampler does;
// nvcc's code rounds the double exp to float, which equals the host's expf whenever both are correctly
// rounded (glibc's expf is within 0.502 ulp: on x86-64 it differs from (float)exp((double)x) for about 1 in
// 11,500 arguments in [−104, 0]; the rare argument where they round differently moves that p by
// one ulp and so the sums by ~2^-24 of that p: only a u within that distance of a cumulative boundary, or a
// top-p/min-p threshold that exact, can then pick a different token).
//
// Logits must hold no NaN and no +inf, and at least one finite value (−inf is fine: a masked token); the CPU
// sampler's sort and softmax have no meaning otherwise either.
// Not measured on a GPU yet. The likely cost centre of the top-k path is the radix select's first
// histogram, whose shared-memory atomics pile onto the few bins that a logit's sign and exponent fill.
//
// Compiled by nvcc into qcoder_kernels_cuda and by the host compiler (emu/sampling.cpp) into
// qcoder_kernels_cuda_emu.
#include <cstring>
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/pointwise_math.cuh"

namespace QCODER_CUDA_NAMESPACE {

namespace {

// ---- argmax ---------------------------------------------------------------------------------------------

// Whether (v, i) beats (best, best_i): larger, or equal with a lower index; a NaN never beats anything.
__device__ __forceinline__ bool beats(float v, std::int64_t i, float best, std::int64_t best_i) {
  return v > best || (v == best && i < best_i);
}

__global__ void QCODER_LONG_ROW_BOUNDS argmax_kernel(const float* x, std::int32_t* ids, std::int64_t count, bool vec) {
  QCODER_SHARED(float, warp_best, 32);
  QCODER_SHARED(std::int64_t, warp_index, 32);
  const float* row = x + static_cast<std::int64_t>(blockIdx.x) * count;
  float best = -float_infinity;
  std::int64_t best_i = count;  // "none yet": any real index wins a tie with it
  std::int64_t start = 0;
  if (vec) {  // ascending indices per thread, so a strict > keeps the lowest on ties
    const float4* row4 = reinterpret_cast<const float4*>(row);
    for (std::int64_t i = threadIdx.x; i < count / 4; i += blockDim.x) {
      const float4 v = row4[i];
      if (beats(v.x, 4 * i, best, best_i)) best = v.x, best_i = 4 * i;
      if (beats(v.y, 4 * i + 1, best, best_i)) best = v.y, best_i = 4 * i + 1;
      if (beats(v.z, 4 * i + 2, best, best_i)) best = v.z, best_i = 4 * i + 2;
      if (beats(v.w, 4 * i + 3, best, best_i)) best = v.w, best_i = 4 * i + 3;
    }
    start = count / 4 * 4;
  }
  for (std::int64_t i = start + threadIdx.x; i < count; i += blockDim.x) {
    if (beats(row[i], i, best, best_i)) best = row[i], best_i = i;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(full_warp_mask, best, offset);
    const std::int64_t other_i = __shfl_xor_sync(full_warp_mask, best_i, offset);
    if (beats(other, other_i, best, best_i)) best = other, best_i = other_i;
  }
  const unsigned lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_best[threadIdx.x / 32] = best;
    warp_index[threadIdx.x / 32] = best_i;
  }
  __syncthreads();
  if (threadIdx.x >= 32) return;
  best = lane < blockDim.x / 32 ? warp_best[lane] : -float_infinity;
  best_i = lane < blockDim.x / 32 ? warp_index[lane] : count;
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(full_warp_mask, best, offset);
    const std::int64_t other_i = __shfl_xor_sync(full_warp_mask, best_i, offset);
    if (beats(other, other_i, best, best_i)) best = other, best_i = other_i;
  }
  if (lane == 0) {
    // A row of −inf and NaN only finds nothing: index 0, as the CPU loop that never moves off it.
    if (best_i == count || row[0] != row[0]) best_i = 0;
    ids[blockIdx.x] = static_cast<std::int32_t>(best_i);
  }
}

// ---- sample ---------------------------------------------------------------------------------------------

constexpr int chunk = 2048;           // sorted candidates held in shared memory at a time
constexpr int cached_bounds = 128;    // chunk boundaries remembered between sweeps (vocab ≤ 262,144)
constexpr float negligible_p = 0x1p-55f;

__device__ __forceinline__ unsigned float_bits(float v) {
  unsigned u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}
__device__ __forceinline__ float bits_float(unsigned u) {
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The sort key: larger key ⇔ earlier candidate (larger logit; equal logits: lower id). −0 and +0 are one
// logit, as the CPU's comparisons see them.
__device__ __forceinline__ unsigned long long candidate_key(float logit, std::int64_t id) {
  const unsigned u = float_bits(logit == 0.0f ? 0.0f : logit);
  const unsigned ordered = (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
  return static_cast<unsigned long long>(ordered) << 32 | (0xffffffffu - static_cast<unsigned>(id));
}
__device__ __forceinline__ float key_logit(unsigned long long key) {
  const unsigned ordered = static_cast<unsigned>(key >> 32);
  return bits_float((ordered & 0x80000000u) != 0 ? (ordered & 0x7fffffffu) : ~ordered);
}
__device__ __forceinline__ std::int32_t key_id(unsigned long long key) {
  return static_cast<std::int32_t>(0xffffffffu - static_cast<unsigned>(key));
}

// p of a logit, as the CPU computes it: exp((logit − max) / temperature) in float (see the file comment).
__device__ __forceinline__ float softmax_weight(float logit, float max, float temperature) {
#if defined(__CUDACC__)
  return static_cast<float>(exp(static_cast<double>((logit - max) / temperature)));
#else
  return std::exp((logit - max) / temperature);
#endif
}

struct sample_shared {
  unsigned long long keys[chunk];  // the loaded chunk, sorted by key, descending
  float probs[chunk];              // its p
  unsigned long long bounds[cached_bounds];  // the key of each chunk's last member
  unsigned hist[256];
  float warp_float[32];
  unsigned warp_count[32][2];
  unsigned long long prefix;  // radix select: the key bits found so far
  unsigned long long found;
  unsigned remaining;  // radix select: the rank still to skip inside the prefix
  unsigned single;     // radix select: exactly one key left under the prefix
  unsigned gathered;
  int loaded;      // the chunk now in keys/probs, −1 for none
  int bounds_known;
  int stop;        // thread 0 to all: the sweep is over
  std::int64_t keep;
  double target;
};

struct sample_view {
  const float* logits;
  std::int64_t vocab;
  float max;
  float temperature;
};

// The key of the candidate with exactly `rank` candidates before it: a most-significant-digit radix select,
// 8 bits a pass; it stops early once one key is left under the prefix (the usual case after the logit's
// bytes). All threads call it; the result is in every thread.
__device__ unsigned long long select_rank(const sample_view& v, std::int64_t rank, sample_shared& s) {
  if (threadIdx.x == 0) {
    s.prefix = 0;
    s.remaining = static_cast<unsigned>(rank);
    s.single = 0;
  }
  unsigned long long mask = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) s.hist[b] = 0;
    __syncthreads();
    const unsigned long long prefix = s.prefix;
    const unsigned remaining = s.remaining;  // read before the barrier after which warp 0 rewrites it
    if (s.single != 0) {  // one key left: find it
      for (std::int64_t i = threadIdx.x; i < v.vocab; i += blockDim.x) {
        const unsigned long long key = candidate_key(v.logits[i], i);
        if ((key & mask) == prefix) s.found = key;
      }
      __syncthreads();
      const unsigned long long found = s.found;
      __syncthreads();  // before a later select_rank may overwrite it
      return found;
    }
    for (std::int64_t i = threadIdx.x; i < v.vocab; i += blockDim.x) {
      const unsigned long long key = candidate_key(v.logits[i], i);
      if ((key & mask) == prefix) atomicAdd(&s.hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // warp 0: lane L scans digits 255 − 8L down to 248 − 8L
      const unsigned lane = threadIdx.x;
      unsigned mine = 0;
      for (int d = 0; d < 8; ++d) mine += s.hist[255 - 8 * lane - d];
      unsigned before = mine;  // inclusive scan over lanes, then made exclusive
      for (int offset = 1; offset < 32; offset *= 2) {
        const unsigned up = __shfl_up_sync(full_warp_mask, before, offset);
        if (lane >= static_cast<unsigned>(offset)) before += up;
      }
      before -= mine;
      if (remaining >= before && remaining < before + mine) {
        unsigned skipped = before;
        for (int d = 0; d < 8; ++d) {
          const unsigned digit = 255 - 8 * lane - d;
          const unsigned here = s.hist[digit];
          if (remaining < skipped + here) {
            s.prefix = prefix | static_cast<unsigned long long>(digit) << shift;
            s.remaining = remaining - skipped;
            s.single = here == 1 ? 1u : 0u;
            break;
          }
          skipped += here;
        }
      }
    }
    mask |= 0xffull << shift;
    __syncthreads();
  }
  const unsigned long long found = s.prefix;
  __syncthreads();
  return found;
}

// The key of the last member of chunk j (ranks [j chunk, min((j + 1) chunk, count))).
__device__ unsigned long long chunk_bound(const sample_view& v, int j, std::int64_t count, sample_shared& s) {
  const std::int64_t last = ((static_cast<std::int64_t>(j) + 1) * chunk < count ? (static_cast<std::int64_t>(j) + 1) * chunk : count) - 1;
  if (j < s.bounds_known) return s.bounds[j];
  const unsigned long long key = select_rank(v, last, s);
  if (j == s.bounds_known && j < cached_bounds) {
    __syncthreads();
    if (threadIdx.x == 0) {
      s.bounds[j] = key;
      s.bounds_known = j + 1;
    }
    __syncthreads();
  }
  return key;
}

// Brings chunk j into shared memory, sorted, with its p. All threads call it.
__device__ void load_chunk(const sample_view& v, int j, std::int64_t count, sample_shared& s) {
  if (s.loaded == j) return;
  const unsigned long long upper = j == 0 ? ~0ull : chunk_bound(v, j - 1, count, s);
  const unsigned long long lower = chunk_bound(v, j, count, s);
  const bool first = j == 0;
  if (threadIdx.x == 0) s.gathered = 0;
  __syncthreads();
  for (std::int64_t i = threadIdx.x; i < v.vocab; i += blockDim.x) {
    const unsigned long long key = candidate_key(v.logits[i], i);
    if (key >= lower && (first || key < upper)) s.keys[atomicAdd(&s.gathered, 1u)] = key;
  }
  __syncthreads();
  const unsigned n = s.gathered;
  unsigned size = 2;
  while (size < n) size *= 2;
  for (unsigned i = n + threadIdx.x; i < size; i += blockDim.x) s.keys[i] = 0;  // pads sort last
  __syncthreads();
  // Bitonic sort of keys[0, size), descending.
  for (unsigned width = 2; width <= size; width *= 2) {
    for (unsigned stride = width / 2; stride > 0; stride /= 2) {
      for (unsigned t = threadIdx.x; t < size / 2; t += blockDim.x) {
        const unsigned lo = 2 * t - (t & (stride - 1));
        const unsigned hi = lo + stride;
        const bool descending = (lo & width) == 0;
        const unsigned long long a = s.keys[lo];
        const unsigned long long b = s.keys[hi];
        if ((a < b) == descending) {
          s.keys[lo] = b;
          s.keys[hi] = a;
        }
      }
      __syncthreads();
    }
  }
  for (unsigned i = threadIdx.x; i < n; i += blockDim.x) {
    s.probs[i] = softmax_weight(key_logit(s.keys[i]), v.max, v.temperature);
  }
  if (threadIdx.x == 0) s.loaded = j;
  __syncthreads();
}

// Sums a value over the block into every thread (two counts at once).
__device__ void block_counts(unsigned a, unsigned b, sample_shared& s, unsigned& total_a, unsigned& total_b) {
  for (int offset = 16; offset > 0; offset /= 2) {
    a += __shfl_xor_sync(full_warp_mask, a, offset);
    b += __shfl_xor_sync(full_warp_mask, b, offset);
  }
  if (threadIdx.x % 32 == 0) {
    s.warp_count[threadIdx.x / 32][0] = a;
    s.warp_count[threadIdx.x / 32][1] = b;
  }
  __syncthreads();
  total_a = 0;
  total_b = 0;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) {
    total_a += s.warp_count[w][0];
    total_b += s.warp_count[w][1];
  }
  __syncthreads();
}

__global__ void QCODER_LONG_ROW_BOUNDS sample_kernel(const float* logits, std::int32_t* out, std::int64_t vocab, float temperature,
                              std::int32_t top_k, float top_p, float min_p, double uniform) {
  QCODER_SHARED(sample_shared, shared, 1);
  sample_shared& s = shared[0];

  // The largest logit.
  float m = -float_infinity;
  for (std::int64_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, logits[i]);
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(full_warp_mask, m, offset));
  if (threadIdx.x % 32 == 0) s.warp_float[threadIdx.x / 32] = m;
  if (threadIdx.x == 0) {
    s.loaded = -1;
    s.bounds_known = 0;
  }
  __syncthreads();
  for (unsigned w = 0; w < blockDim.x / 32; ++w) m = fmaxf(m, s.warp_float[w]);
  const sample_view v{logits, vocab, m, temperature};

  // Counts: candidates whose p matters to a sum, and those min-p keeps (p of the best is exactly 1).
  const float floor = min_p;
  unsigned significant = 0, above_floor = 0;
  for (std::int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float p = softmax_weight(logits[i], m, temperature);
    significant += p >= negligible_p ? 1u : 0u;
    above_floor += p >= floor ? 1u : 0u;
  }
  block_counts(significant, above_floor, s, significant, above_floor);

  const std::int64_t k = top_k > 0 && top_k < vocab ? top_k : vocab;
  const std::int64_t ks = k < significant ? k : significant;  // ranks past ks change no sum
  std::int64_t keep_min_p = k;
  if (min_p > 0.0f) keep_min_p = above_floor < 1 ? 1 : (above_floor < k ? static_cast<std::int64_t>(above_floor) : k);
  const std::int64_t limit = ks < keep_min_p ? ks : keep_min_p;
  const int chunks_total = static_cast<int>((ks + chunk - 1) / chunk);
  const int chunks_limit = static_cast<int>((limit + chunk - 1) / chunk);

  // Sweep 1 (top-p only): the total over the top k.
  double total = 0.0;
  if (top_p < 1.0f) {
    for (int j = 0; j < chunks_total; ++j) {
      load_chunk(v, j, ks, s);
      if (threadIdx.x == 0) {
        const std::int64_t n = ks - static_cast<std::int64_t>(j) * chunk < chunk ? ks - static_cast<std::int64_t>(j) * chunk : chunk;
        for (std::int64_t i = 0; i < n; ++i) total += s.probs[i];
      }
    }
  }
  // Sweep 2: the top-p cut (the first rank whose mass reaches top_p) and the kept mass, up to where min-p or
  // the negligible tail ends the candidates anyway.
  std::int64_t keep = keep_min_p;
  double kept = 0.0;
  double mass = 0.0;
  if (threadIdx.x == 0) s.stop = 0;
  __syncthreads();
  for (int j = 0; j < chunks_limit; ++j) {
    load_chunk(v, j, ks, s);
    if (threadIdx.x == 0) {
      const std::int64_t base = static_cast<std::int64_t>(j) * chunk;
      const std::int64_t n = limit - base < chunk ? limit - base : chunk;
      for (std::int64_t i = 0; i < n; ++i) {
        kept += s.probs[i];
        if (top_p < 1.0f) {
          mass += s.probs[i] / total;
          if (mass >= top_p) {
            keep = base + i + 1;
            s.stop = 1;
            break;
          }
        }
      }
    }
    __syncthreads();
    const bool stop = s.stop != 0;
    __syncthreads();
    if (stop) break;
  }
  // Sweep 3: the walk to u × kept, over ranks [0, min(keep, ks)): past ks the sum no longer grows.
  if (threadIdx.x == 0) {
    s.stop = 0;
    s.keep = keep;
    s.target = uniform * kept;
  }
  __syncthreads();
  keep = s.keep;
  const double target = s.target;
  const std::int64_t walk = keep < ks ? keep : ks;
  const int chunks_walk = static_cast<int>((walk + chunk - 1) / chunk);
  double acc = 0.0;
  for (int j = 0; j < chunks_walk; ++j) {
    load_chunk(v, j, ks, s);
    if (threadIdx.x == 0) {
      const std::int64_t base = static_cast<std::int64_t>(j) * chunk;
      const std::int64_t n = walk - base < chunk ? walk - base : chunk;
      for (std::int64_t i = 0; i < n; ++i) {
        acc += s.probs[i];
        if (target < acc) {
          out[0] = key_id(s.keys[i]);
          s.stop = 1;
          break;
        }
      }
    }
    __syncthreads();
    const bool stop = s.stop != 0;
    __syncthreads();
    if (stop) return;
  }
  // u × kept rounded up to kept (u within an ulp of 1): the CPU returns the last kept candidate.
  const unsigned long long last = select_rank(v, keep - 1, s);
  if (threadIdx.x == 0) out[0] = key_id(last);
}

}  // namespace

result<void> argmax(const cuda::argmax_args& a, CUstream_st* stream) {
  if (a.rows < 0 || a.rows > std::numeric_limits<int>::max() || a.count <= 0 ||
      a.count > std::numeric_limits<std::int32_t>::max()) {
    return fail(errc::invalid_argument, "argmax: {} rows of {} is not a launchable shape", a.rows, a.count);
  }
  if (a.rows == 0) return ok();
  const bool vec = a.count % 4 == 0 && aligned16(a.x);
  return cuda::launch(argmax_kernel, dim3(static_cast<unsigned>(a.rows)), dim3(long_row_threads), 0, stream, a.x,
                      a.ids, a.count, vec);
}

result<void> sample(const cuda::sample_args& a, CUstream_st* stream) {
  if (a.vocab <= 0 || a.vocab > static_cast<std::int64_t>(cached_bounds) * chunk) {
    return fail(errc::invalid_argument, "sample: a vocabulary of {} is not supported (1 to {})", a.vocab,
                static_cast<std::int64_t>(cached_bounds) * chunk);
  }
  if (!(a.temperature > 0.0f) || a.top_k < 0 || !(a.top_p > 0.0f && a.top_p <= 1.0f) ||
      !(a.min_p >= 0.0f && a.min_p < 1.0f) || !(a.uniform >= 0.0 && a.uniform < 1.0)) {
    return fail(errc::invalid_argument,
                "sample: temperature {} (> 0), top_k {} (≥ 0), top_p {} (in (0, 1]), min_p {} (in [0, 1)), uniform {} "
                "(in [0, 1)) out of range",
                a.temperature, a.top_k, a.top_p, a.min_p, a.uniform);
  }
  return cuda::launch(sample_kernel, dim3(1), dim3(long_row_threads), 0, stream, a.logits, a.id, a.vocab,
                      a.temperature, a.top_k, a.top_p, a.min_p, a.uniform);
}

}  // namespace QCODER_CUDA_NAMESPACE
