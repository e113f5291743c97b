// MoE routing (pointwise.h's router_top_k): one warp per token. Each lane holds the probabilities of experts
// lane, lane + 32, ... in registers (up to 16 of them: E ≤ 512), so the softmax and the k passes of argmax
// are register work plus warp shuffles, with no shared memory and no block barrier.
//
// The same steps as qwen3_next::moe_block: softmax in float (max, exp(x - max), sum, × 1/sum); then k passes
// that each take the largest probability not yet taken, ties to the lower expert id; then, when asked, each
// weight ÷ the float sum of the k taken, added in the order they were taken (as the CPU does). The softmax
// sum here is a warp reduction rather than a left-to-right sum, so a probability may differ from the CPU's in
// its last bit; equal logits always give equal probabilities, and so the same ties. Compiled by nvcc into
// qcoder_kernels_cuda and by the host compiler (emu/routing.cpp) into qcoder_kernels_cuda_emu.
#include <limits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/pointwise_math.cuh"

namespace QCODER_CUDA_NAMESPACE {

namespace {

constexpr int router_per_lane = 16;  // experts per lane: E ≤ 32 × 16 = 512
constexpr int router_max_k = 16;
constexpr unsigned router_warps_per_block = 4;

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(full_warp_mask, v, offset));
  return v;
}

// ids[n, k], weights[n, k] from logits[n, experts]; blockDim.x = 32 × router_warps_per_block.
__global__ void router_top_k_kernel(const float* logits, std::int32_t* ids, float* weights, std::int64_t n,
                                    int experts, int k, bool renormalize) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * router_warps_per_block + threadIdx.x / 32;
  if (row >= n) return;  // the whole warp leaves together: no collective below is left waiting
  const float* in = logits + row * experts;

  float p[router_per_lane];
QCODER_UNROLL
  for (int s = 0; s < router_per_lane; ++s) {
    const int e = lane + 32 * s;
    p[s] = e < experts ? in[e] : -float_infinity;
  }
  float m = p[0];
QCODER_UNROLL
  for (int s = 1; s < router_per_lane; ++s) m = fmaxf(m, p[s]);
  m = warp_max(m);
  float sum = 0.0f;
QCODER_UNROLL
  for (int s = 0; s < router_per_lane; ++s) {
    p[s] = lane + 32 * s < experts ? expf(p[s] - m) : 0.0f;
    sum += p[s];
  }
  const float inv = 1.0f / warp_sum(sum);
QCODER_UNROLL
  for (int s = 0; s < router_per_lane; ++s) p[s] *= inv;

  // k passes of argmax. A taken expert is marked in its lane's `taken` bits; untaken slots past `experts`
  // hold probability 0 and an id past every real one, so they never win while a real expert is left.
  unsigned taken = 0;
  float total = 0.0f;
  float mine = 0.0f;  // lane j keeps the weight of the j-th pick (k ≤ 16 ≤ 32)
  std::int32_t mine_id = 0;
  for (int j = 0; j < k; ++j) {
    float best = -1.0f;
    int best_id = int_max;
QCODER_UNROLL
    for (int s = 0; s < router_per_lane; ++s) {
      const int e = lane + 32 * s;
      // Ascending ids within the lane, so a strict > keeps the lower id on ties.
      if (e < experts && !(taken >> s & 1u) && p[s] > best) {
        best = p[s];
        best_id = e;
      }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(full_warp_mask, best, offset);
      const int other_id = __shfl_xor_sync(full_warp_mask, best_id, offset);
      if (other > best || (other == best && other_id < best_id)) {
        best = other;
        best_id = other_id;
      }
    }
    if (best_id % 32 == lane) taken |= 1u << (best_id / 32);
    total += best;
    if (lane == j) {
      mine = best;
      mine_id = best_id;
    }
  }
  if (lane < k) {
    ids[row * k + lane] = mine_id;
    weights[row * k + lane] = renormalize ? mine / total : mine;
  }
}

}  // namespace

result<void> router_top_k(const cuda::router_top_k_args& a, CUstream_st* stream) {
  if (a.n < 0 || a.experts <= 0 || a.experts > 32 * router_per_lane || a.k <= 0 || a.k > router_max_k ||
      a.k > a.experts) {
    return fail(errc::invalid_argument,
                "router_top_k: top-{} of {} experts is not supported (1 ≤ k ≤ {}, k ≤ experts ≤ {})", a.k, a.experts,
                router_max_k, 32 * router_per_lane);
  }
  const std::int64_t blocks = (a.n + router_warps_per_block - 1) / router_warps_per_block;
  if (blocks > std::numeric_limits<int>::max()) {
    return fail(errc::invalid_argument, "router_top_k: {} rows is more than one launch takes", a.n);
  }
  if (a.n == 0) return ok();
  return cuda::launch(router_top_k_kernel, dim3(static_cast<unsigned>(blocks)), dim3(32 * router_warps_per_block), 0,
                      stream, a.logits, a.ids, a.weights, a.n, static_cast<int>(a.experts), static_cast<int>(a.k),
                      a.renormalize);
}

}  // namespace QCODER_CUDA_NAMESPACE
