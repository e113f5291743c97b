// The CUDA emulator: lets a `.cu` kernel source compile with the host C++ compiler and run on the CPU, so
// kernels are checked against the reference ops (under ASan/UBSan/TSan) on machines without a GPU.
//
// Kernel sources do not include this directly: they include kernels/cuda/kernel.cuh, which picks this header
// or the real CUDA headers. What it supplies, and how each maps onto CPU threads:
// - The CUDA Toolkit's own headers give the qualifiers (`__global__`, `__device__`, ... expand to nothing or
//   to `inline` on the host), `dim3`/`uint3`, and the types `__nv_bfloat16`, `__half`, `__nv_fp8_e4m3` with
//   their conversions: those headers compile with g++, so the emulator computes with the very same types.
// - A launch (launch.h) runs the grid's blocks one after another on one OS thread; each GPU thread of a
//   block is a fiber with its own stack (emu.cpp), created once and reused. `threadIdx` and friends are the
//   running fiber's state.
// - `__syncthreads()` and every warp collective are barriers over the block's (or the warp's) threads: a
//   fiber that reaches one yields until the last participant arrives. A barrier that cannot complete
//   because some thread of the block has returned, or a block where no thread can go on, is an error that
//   names the kernel, block and thread, and the launch returns it: it never hangs. ThreadSanitizer sees the
//   fibers as threads ordered only by those barriers (see emu.cpp).
// - Shared memory is declared through QCODER_SHARED / QCODER_DYNAMIC_SHARED (kernel.cuh), because a plain
//   `__shared__` local would be private to each emulated thread. Every declaration gets one heap buffer per
//   block, of exactly its size, filled with 0xff bytes (CUDA does not zero shared memory; NaN-filled floats
//   make a kernel that relies on zeros fail its test), and freed when the block ends, so AddressSanitizer
//   reports an overflow or a use after the block.
// Thread-safety: a launch is confined to the OS thread that runs it; launches from different host threads
// (or streams) are independent.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <string>
#include <type_traits>

#include "kernels/common/result.h"

namespace qcoder::cuda::emu {

inline constexpr int warp_size = 32;

struct block_state;  // emu.cpp: the barriers, warp exchange areas and shared buffers of the running block

// What one emulated thread knows about itself; set by the launch before the kernel body runs.
struct thread_state {
  uint3 thread_idx{};
  uint3 block_idx{};
  dim3 block_dim{};
  dim3 grid_dim{};
  int linear_id = 0;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
  block_state* block = nullptr;
};

// The calling emulated thread's state; a kernel builtin used outside a launch is a bug, caught here.
thread_state& this_thread();

// __syncthreads(): waits until every thread of the block has arrived.
void sync_threads();

// Copies `bytes` of the calling lane's value into the warp's exchange area, waits for all lanes of the
// warp, and copies lane `source(lane)`'s value out; `mask` must name exactly the warp's lanes (partial masks
// are not emulated: they are reported as an error rather than given a guessed meaning).
void warp_exchange(std::uint32_t mask, const void* in, void* out, std::size_t bytes,
                   const std::function<int(int lane)>& source, const char* op);

// The 32-bit vote: bit i set when lane i's predicate is non-zero.
std::uint32_t warp_ballot(std::uint32_t mask, bool predicate, const char* op);

// The block's buffer for the shared-memory declaration identified by `key` (one per declaration site),
// allocated by the first thread of the block to get there.
void* static_shared(const void* key, std::size_t bytes);

// The launch's dynamic shared memory: exactly the bytes the launch asked for (nullptr when none).
void* dynamic_shared();

// Runs `body` on every thread of every block of the grid; an error when a barrier could not complete or the
// configuration is not one CUDA would accept (e.g. more than 1024 threads per block).
result<void> run_grid(const char* kernel_name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                      const std::function<void()>& body);

// A printable name for a kernel: its symbol when the dynamic linker knows it (exported functions of a
// program linked with -rdynamic), else its address; and the source line of the launch.
std::string kernel_name(const void* function, const std::source_location& launched_at);

inline int lane_id() { return this_thread().linear_id % warp_size; }

template <typename T>
void check_shuffle_type() {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of 8 bytes or less");
}

// `width` splits the warp into segments of that many lanes (a power of two ≤ 32), as in CUDA.
template <typename T>
T shfl_sync(std::uint32_t mask, T var, int src_lane, int width = warp_size) {
  check_shuffle_type<T>();
  T out;
  warp_exchange(mask, &var, &out, sizeof(T),
                [&](int lane) { return (lane & ~(width - 1)) + (src_lane & (width - 1)); }, "__shfl_sync");
  return out;
}

template <typename T>
T shfl_up_sync(std::uint32_t mask, T var, unsigned delta, int width = warp_size) {
  check_shuffle_type<T>();
  T out;
  warp_exchange(mask, &var, &out, sizeof(T),
                [&](int lane) {
                  const int in_segment = lane & (width - 1);
                  return in_segment < static_cast<int>(delta) ? lane : lane - static_cast<int>(delta);
                },
                "__shfl_up_sync");
  return out;
}

template <typename T>
T shfl_down_sync(std::uint32_t mask, T var, unsigned delta, int width = warp_size) {
  check_shuffle_type<T>();
  T out;
  warp_exchange(mask, &var, &out, sizeof(T),
                [&](int lane) {
                  const int in_segment = lane & (width - 1);
                  return in_segment + static_cast<int>(delta) >= width ? lane : lane + static_cast<int>(delta);
                },
                "__shfl_down_sync");
  return out;
}

// A lane whose partner lies in a later segment (or past the warp) keeps its own value, as CUDA specifies.
template <typename T>
T shfl_xor_sync(std::uint32_t mask, T var, int lane_mask, int width = warp_size) {
  check_shuffle_type<T>();
  T out;
  warp_exchange(mask, &var, &out, sizeof(T),
                [&](int lane) {
                  const int partner = lane ^ lane_mask;
                  const int segment_end = ((lane / width) + 1) * width;
                  return partner >= segment_end || partner >= warp_size ? lane : partner;
                },
                "__shfl_xor_sync");
  return out;
}

inline unsigned ballot_sync(std::uint32_t mask, int predicate) {
  return warp_ballot(mask, predicate != 0, "__ballot_sync");
}
inline int any_sync(std::uint32_t mask, int predicate) {
  return warp_ballot(mask, predicate != 0, "__any_sync") != 0 ? 1 : 0;
}
inline int all_sync(std::uint32_t mask, int predicate) {
  return warp_ballot(mask, predicate != 0, "__all_sync") == mask ? 1 : 0;
}

// Device atomics return the old value, like CUDA's; relaxed order is what CUDA's atomicAdd guarantees.
template <typename T>
T atomic_add(T* address, T value) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, unsigned> || std::is_same_v<T, float> ||
                    std::is_same_v<T, unsigned long long> || std::is_same_v<T, double>,
                "atomicAdd is emulated for int, unsigned, unsigned long long, float and double");
  return std::atomic_ref<T>(*address).fetch_add(value, std::memory_order_relaxed);
}

}  // namespace qcoder::cuda::emu

// The CUDA builtins, as the names kernel code uses. Macros (not globals) so that the emulator's state stays in
// its namespace and each name reads the calling thread's state.
#define threadIdx (::qcoder::cuda::emu::this_thread().thread_idx)
#define blockIdx (::qcoder::cuda::emu::this_thread().block_idx)
#define blockDim (::qcoder::cuda::emu::this_thread().block_dim)
#define gridDim (::qcoder::cuda::emu::this_thread().grid_dim)
#define warpSize (::qcoder::cuda::emu::warp_size)
#define __syncthreads() ::qcoder::cuda::emu::sync_threads()
#define __shfl_sync ::qcoder::cuda::emu::shfl_sync
#define __shfl_up_sync ::qcoder::cuda::emu::shfl_up_sync
#define __shfl_down_sync ::qcoder::cuda::emu::shfl_down_sync
#define __shfl_xor_sync ::qcoder::cuda::emu::shfl_xor_sync
#define __ballot_sync ::qcoder::cuda::emu::ballot_sync
#define __any_sync ::qcoder::cuda::emu::any_sync
#define __all_sync ::qcoder::cuda::emu::all_sync
#define atomicAdd ::qcoder::cuda::emu::atomic_add

// The toolkit's host headers define __shared__ as nothing, which would silently give each emulated thread its
// own copy; make a bare `__shared__` a compile error that names the fix instead.
#undef __shared__
#define __shared__ static_assert(false, "declare shared memory with QCODER_SHARED / QCODER_DYNAMIC_SHARED");
