// The one way host code launches a kernel, in both builds: `QCODER_TRY(launch(kernel, grid, block,
// dynamic_shared_bytes, stream, args...))` instead of `kernel<<<grid, block, bytes, stream>>>(args...)`.
// Under nvcc it is exactly that launch plus a check of the launch error (a bad configuration; errors inside
// the kernel surface at the next synchronising call). Under the emulator the launch runs to completion before
// it returns (streams are ignored: everything is in order) and returns the emulator's error, e.g. a barrier
// that only part of a block reached. Thread-safe as the CUDA runtime is.
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
#include <source_location>
#include <string>
struct CUstream_st;
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
                    stream_t /*stream*/, Args&&... args) {
  // Converted to the parameter types once, as a launch does; each thread then gets its own copy.
  const std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  const std::string name = emu::kernel_name(reinterpret_cast<const void*>(kernel), grid.site);
  return emu::run_grid(name.c_str(), grid.dims, block, dynamic_shared_bytes, [&] { std::apply(kernel, params); });
}
#endif

}  // namespace qcoder::cuda
