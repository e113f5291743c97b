// The one check every CUDA runtime call goes through. Failures become a qcoder::error carrying the CUDA
// error name and the call site, so a caller can fall back to the CPU backend instead of aborting.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/result.h"

#define QCODER_CUDA_CHECK(call)                                                                  \
  do {                                                                                           \
    if (cudaError_t qcoder_cuda_status = (call); qcoder_cuda_status != cudaSuccess) {           \
      return ::qcoder::fail(::qcoder::errc::io_error, "CUDA call {} failed at {}:{}: {} ({})", #call, \
                            __FILE__, __LINE__, cudaGetErrorName(qcoder_cuda_status),            \
                            cudaGetErrorString(qcoder_cuda_status));                             \
    }                                                                                            \
  } while (0)
