// The CUDA runtime calls the backend makes, behind one interface for both builds: qcoder::cuda (the real
// runtime, compiled by nvcc) and qcoder::cuda_emu (the emulator: device memory is host memory, a stream is
// a host thread running its work in order, an event a mark in that order, a graph a recorded list of work
// replayed by a launch). Every call returns a result; a failed CUDA call names itself and its site.
//
// Semantics are CUDA's, emulated faithfully where a test could tell: work on one stream runs in order and
// asynchronously to the caller (so a host read before synchronize() is a bug the tests can catch); errors
// inside a kernel surface at the next synchronize() of its stream; a null stream runs work synchronously
// (the emulator's shortcut for the legacy default stream; the backend always uses its own streams).
// A third build, qcoder::cuda_cost (kernels/cuda/cost/), hands out device addresses that are never
// dereferenced and counts them, for the time model.
// Plain C++17 with no CUDA headers. Thread-safe as the CUDA runtime is.
#pragma once

#include <cstddef>

#include "kernels/common/result.h"
#include "kernels/cuda/types.h"

struct CUevent_st;      // cudaEvent_t
struct CUgraphExec_st;  // cudaGraphExec_t

#define QCODER_CUDA_RUNTIME_ENTRIES                                                                      \
  /* Device memory (cudaMalloc); uninitialised. */                                                       \
  result<void*> allocate(std::size_t bytes);                                                             \
  /* Memory both the host and the device may touch (cudaMallocManaged), for state the host snapshots. */ \
  result<void*> allocate_managed(std::size_t bytes);                                                     \
  /* cudaFree; nullptr is ignored. */                                                                    \
  void release(void* pointer);                                                                           \
  /* Page-locked host memory (cudaMallocHost), the source or target of truly asynchronous copies. */    \
  result<void*> allocate_host(std::size_t bytes);                                                        \
  void release_host(void* pointer);                                                                      \
  /* Lets kernels read [host, host + bytes) of existing host memory (e.g. the mapped checkpoint) in place, */ \
  /* and copies from it run as DMA: pins its pages (cudaHostRegister, read-only, mapped) and returns the */ \
  /* device address of `host`. The range is widened to whole pages. unmap_host takes the same `host`. */  \
  result<const void*> map_host(const void* host, std::size_t bytes);                                     \
  void unmap_host(const void* host);                                                                     \
  /* cudaMemcpyAsync with cudaMemcpyDefault: any direction, ordered on `stream`. */                      \
  result<void> copy(void* destination, const void* source, std::size_t bytes, CUstream_st* stream);      \
  /* cudaMemsetAsync to zero. */                                                                         \
  result<void> zero(void* destination, std::size_t bytes, CUstream_st* stream);                          \
  result<CUstream_st*> create_stream();                                                                  \
  void destroy_stream(CUstream_st* stream);                                                              \
  /* Waits for everything queued on `stream`; returns the first error of its work since the last call. */ \
  result<void> synchronize(CUstream_st* stream);                                                         \
  result<CUevent_st*> create_event();                                                                    \
  void destroy_event(CUevent_st* event);                                                                 \
  result<void> record_event(CUevent_st* event, CUstream_st* stream);                                     \
  /* Later work on `stream` waits until the event's recorded point has run. */                           \
  result<void> wait_event(CUstream_st* stream, CUevent_st* event);                                       \
  /* Whether the event's last recorded point has run (cudaEventQuery), without waiting. */               \
  result<bool> event_done(CUevent_st* event);                                                            \
  /* Graph capture: work queued on `stream` between the two calls is recorded, not run. */               \
  result<void> begin_capture(CUstream_st* stream);                                                       \
  result<CUgraphExec_st*> end_capture(CUstream_st* stream);                                              \
  result<void> launch_graph(CUgraphExec_st* graph, CUstream_st* stream);                                 \
  void destroy_graph(CUgraphExec_st* graph);                                                            \
  /* The current device's compute capability as 10 × major + minor (75: Turing, 90: Hopper). The */      \
  /* emulator reports emu::emulated_compute_capability() (90 unless a test sets another). */             \
  result<int> compute_capability();

namespace qcoder::cuda {
QCODER_CUDA_RUNTIME_ENTRIES
}  // namespace qcoder::cuda
namespace qcoder::cuda_emu {
QCODER_CUDA_RUNTIME_ENTRIES
}  // namespace qcoder::cuda_emu
namespace qcoder::cuda_cost {
QCODER_CUDA_RUNTIME_ENTRIES
}  // namespace qcoder::cuda_cost
#undef QCODER_CUDA_RUNTIME_ENTRIES
