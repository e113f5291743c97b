// The one way host code launches a kernel, in both builds: `QCODER_TRY(launch(kernel, grid, block,
// dynamic_shared_bytes, stream, args...))` instead of `kernel<<<grid, block, bytes, stream>>>(args...)`.
// Under nvcc it is exactly that launch plus a check of the launch error (a bad configuration; errors inside
// the kernel surface at the next synchronising call). Under the emulator the launch is queued on the stream
// (emu/streams.h) with its arguments copied, as a GPU launch copies them; errors inside it (e.g. a barrier
// that only part of a block reached) surface at the stream's next synchronize. On the null stream it runs to
// completion before it returns, and returns that error. Thread-safe as the CUDA runtime is.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/common/result.h"
#include "kernels/cuda/kernel.cuh"

#if defined(__CUDACC__)
#include "kernels/cuda/check.cuh"
#else
#include <memory>
#include <source_location>
#include <string>

#include "kernels/cuda/emu/streams.h"
#endif

namespace qcoder::cuda {

#if defined(__CUDACC__)
using stream_t = cudaStream_t;

template <typename... Params, typename... Args>
result<void> launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                    stream_t stream, Args&&... args) {
  kernel<<<grid, block, dynamic_shared_bytes, stream>>>(std::forward<Args>(args)...);
  QCODER_CUDA_CHECK(cudaGetLastError());
  return ok();
}
#else
// The same type as cudaStream_t, so that host APIs take one stream type in both builds; the emulator never
// dereferences it (it runs every launch in order).
using stream_t = CUstream_st*;

// The grid, and where the launch was written: converted implicitly from dim3 at the call site, so the
// default argument records that site and the emulator's errors can name it (local kernels have no symbol).
struct grid_at {
  grid_at(dim3 dims, std::source_location site = std::source_location::current()) : dims(dims), site(site) {}  // NOLINT
  dim3 dims;
  std::source_location site;
};

template <typename... Params, typename... Args>
result<void> launch(void (*kernel)(Params...), grid_at grid, dim3 block, std::size_t dynamic_shared_bytes,
                    stream_t stream, Args&&... args) {
  // Converted to the parameter types once, as a launch does, and kept with the queued work.
  auto params = std::make_shared<const std::tuple<std::decay_t<Params>...>>(std::forward<Args>(args)...);
  auto name = std::make_shared<const std::string>(emu::kernel_name(reinterpret_cast<const void*>(kernel), grid.site));
  const dim3 grid_dims = grid.dims;
  return emu::submit(stream, [=]() -> result<void> {
    return emu::run_grid(name->c_str(), grid_dims, block, dynamic_shared_bytes, [&] { std::apply(kernel, *params); });
  });
}
#endif

// Lets `kernel` take `bytes` of dynamic shared memory: above 48 KiB a GPU needs an opt-in per kernel (the
// emulator takes up to sm_90's limit as it is). Call before launching with that much.
template <typename... Params>
result<void> allow_dynamic_shared(void (*kernel)(Params...), std::size_t bytes) {
#if defined(__CUDACC__)
  if (bytes > 48 * 1024) {
    QCODER_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
#else
  (void)kernel;
  (void)bytes;
#endif
  return ok();
}

}  // namespace qcoder::cuda
