// What every kernel source includes, in both builds: under nvcc the CUDA headers, under the host compiler
// the emulator (emu/emu.h). It also supplies the two shared-memory declarations kernels must use instead of
// a bare `__shared__`, because on the emulator each thread runs the kernel body on its own OS thread and a
// `__shared__` local would be private to it:
//   QCODER_SHARED(float, partial, 32);          // __shared__ float partial[32];
//   QCODER_SHARED(float[33], tile, 32);         // __shared__ float tile[32][33];
//   QCODER_DYNAMIC_SHARED(float, scratch);      // extern __shared__ float scratch[]; (the launch's bytes)
// On the emulator a QCODER_SHARED name is a reference to an array of the same type as on the GPU (sizeof and
// indexing behave alike), in a buffer that all threads of the block share: the declaration site is the key,
// as on the GPU one `__shared__` variable is one piece of memory per block.
//
// Names defined by kernel sources go in QCODER_CUDA_NAMESPACE (qcoder::cuda for nvcc, qcoder::cuda_emu for the
// emulator), so that a binary may link both libraries.
#pragma once

#include <cstddef>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <mma.h>
#else
#include "kernels/cuda/emu/emu.h"
#include "kernels/cuda/emu/wmma.h"
#endif

namespace qcoder::cuda {
// T[N] spelled so that T may itself be an array type (QCODER_SHARED(float[33], tile, 32)).
template <typename T, std::size_t N>
using shared_array = T[N];
}  // namespace qcoder::cuda

#if defined(__CUDACC__)
#define QCODER_CUDA_NAMESPACE qcoder::cuda
#define QCODER_SHARED(type, name, count) __shared__ ::qcoder::cuda::shared_array<type, count> name
#define QCODER_DYNAMIC_SHARED(type, name)                                       \
  extern __shared__ __align__(16) unsigned char qcoder_dynamic_shared_bytes[]; \
  type* name = reinterpret_cast<type*>(qcoder_dynamic_shared_bytes)
#else
#define QCODER_CUDA_NAMESPACE qcoder::cuda_emu
// The static local's address identifies the declaration site (one per template instantiation, like a GPU's
// __shared__ variable); it is never read or written.
#define QCODER_SHARED(type, name, count)                                                                    \
  static char QCODER_CONCAT(qcoder_shared_site_, name);                                                      \
  ::qcoder::cuda::shared_array<type, count>& name = *static_cast<::qcoder::cuda::shared_array<type, count>*>( \
      ::qcoder::cuda::emu::static_shared(&QCODER_CONCAT(qcoder_shared_site_, name),                          \
                                         sizeof(::qcoder::cuda::shared_array<type, count>)))
#define QCODER_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::qcoder::cuda::emu::dynamic_shared())
#endif

// Loop and launch hints. QCODER_UNROLL fully unrolls a loop (so that a register array stays in registers),
// spelled for either compiler; launch bounds mean nothing on the emulator.
#if defined(__CUDACC__)
#define QCODER_UNROLL _Pragma("unroll")
#define QCODER_LAUNCH_BOUNDS(...) __launch_bounds__(__VA_ARGS__)
#else
#define QCODER_UNROLL _Pragma("GCC unroll 16")
#define QCODER_LAUNCH_BOUNDS(...)
#endif

namespace QCODER_CUDA_NAMESPACE {

// A weight element as float, for every element type the checkpoints use.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__nv_fp8_e4m3 v) { return static_cast<float>(v); }

}  // namespace QCODER_CUDA_NAMESPACE
