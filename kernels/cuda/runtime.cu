// The runtime interface (runtime.h) for both builds: under nvcc the CUDA runtime, each call through
// QCODER_CUDA_CHECK; under the host compiler the emulator (emu/streams.h), where device memory is host memory
// filled with 0xff bytes when allocated (cudaMalloc does not zero, and NaN-filled floats make code that
// relies on zeros fail its test).
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/runtime.h"

#if !defined(__CUDACC__)
#include <cstdlib>
#include <cstring>
#include <thread>
#endif

namespace QCODER_CUDA_NAMESPACE {

#if defined(__CUDACC__)

result<void*> allocate(std::size_t bytes) {
  void* p = nullptr;
  QCODER_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

result<void*> allocate_managed(std::size_t bytes) {
  void* p = nullptr;
  QCODER_CUDA_CHECK(cudaMallocManaged(&p, bytes));
  return p;
}

void release(void* pointer) { (void)cudaFree(pointer); }

result<void*> allocate_host(std::size_t bytes) {
  void* p = nullptr;
  QCODER_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}

void release_host(void* pointer) { (void)cudaFreeHost(pointer); }

namespace {
constexpr std::uintptr_t page_bytes = 4096;
void* page_start(const void* host) {
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(host) / page_bytes * page_bytes);
}
}  // namespace

result<const void*> map_host(const void* host, std::size_t bytes) {
  void* start = page_start(host);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(host) + bytes + page_bytes - 1) / page_bytes * page_bytes;
  QCODER_CUDA_CHECK(cudaHostRegister(start, end - reinterpret_cast<std::uintptr_t>(start),
                                     cudaHostRegisterMapped | cudaHostRegisterReadOnly));
  void* device = nullptr;
  QCODER_CUDA_CHECK(cudaHostGetDevicePointer(&device, start, 0));
  return static_cast<const void*>(static_cast<const std::byte*>(device) +
                                  (reinterpret_cast<std::uintptr_t>(host) - reinterpret_cast<std::uintptr_t>(start)));
}

void unmap_host(const void* host) { (void)cudaHostUnregister(page_start(host)); }

result<void> copy(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDefault, stream));
  return ok();
}

result<void> zero(void* destination, std::size_t bytes, CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaMemsetAsync(destination, 0, bytes, stream));
  return ok();
}

result<CUstream_st*> create_stream() {
  cudaStream_t s = nullptr;
  QCODER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void destroy_stream(CUstream_st* stream) { (void)cudaStreamDestroy(stream); }

result<void> synchronize(CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaStreamSynchronize(stream));
  return ok();
}

result<CUevent_st*> create_event() {
  cudaEvent_t e = nullptr;
  QCODER_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

void destroy_event(CUevent_st* event) { (void)cudaEventDestroy(event); }

result<void> record_event(CUevent_st* event, CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaEventRecord(event, stream));
  return ok();
}

result<void> wait_event(CUstream_st* stream, CUevent_st* event) {
  QCODER_CUDA_CHECK(cudaStreamWaitEvent(stream, event, 0));
  return ok();
}

result<bool> event_done(CUevent_st* event) {
  const cudaError_t status = cudaEventQuery(event);
  if (status == cudaErrorNotReady) return false;
  QCODER_CUDA_CHECK(status);
  return true;
}

result<void> begin_capture(CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  return ok();
}

result<CUgraphExec_st*> end_capture(CUstream_st* stream) {
  cudaGraph_t graph = nullptr;
  QCODER_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph keeps what it needs
  QCODER_CUDA_CHECK(status);
  return exec;
}

result<void> launch_graph(CUgraphExec_st* graph, CUstream_st* stream) {
  QCODER_CUDA_CHECK(cudaGraphLaunch(graph, stream));
  return ok();
}

void destroy_graph(CUgraphExec_st* graph) { (void)cudaGraphExecDestroy(graph); }

result<int> compute_capability() {
  int device = 0;
  QCODER_CUDA_CHECK(cudaGetDevice(&device));
  // Asked before every GEMM: each device's answer is kept (it never changes while the process runs).
  static std::array<std::atomic<int>, 64> known{};
  const bool cached = device >= 0 && device < static_cast<int>(known.size());
  if (cached) {
    if (const int c = known[static_cast<std::size_t>(device)].load(std::memory_order_relaxed); c != 0) return c;
  }
  int major = 0;
  int minor = 0;
  QCODER_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  QCODER_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const int capability = 10 * major + minor;
  if (cached) known[static_cast<std::size_t>(device)].store(capability, std::memory_order_relaxed);
  return capability;
}

#else

namespace {
constexpr std::size_t alignment = 256;  // what cudaMalloc guarantees

result<void*> allocate_filled(std::size_t bytes) {
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (p == nullptr) return fail(errc::io_error, "out of (emulated device) memory allocating {} bytes", bytes);
  std::memset(p, 0xff, bytes);
  return p;
}
}  // namespace

result<void*> allocate(std::size_t bytes) { return allocate_filled(bytes); }
result<void*> allocate_managed(std::size_t bytes) { return allocate_filled(bytes); }
void release(void* pointer) { std::free(pointer); }
result<void*> allocate_host(std::size_t bytes) { return allocate_filled(bytes); }
void release_host(void* pointer) { std::free(pointer); }
// Host memory is device memory on the emulator.
result<const void*> map_host(const void* host, std::size_t /*bytes*/) { return host; }
void unmap_host(const void* /*host*/) {}

result<void> copy(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) {
  const auto delay = cuda::emu::copy_delay();
  return cuda::emu::submit(stream, [=]() -> result<void> {
    if (bytes == 0) return ok();
    if (stream != nullptr && delay.count() > 0) {
      // A slow copy (tests): the destination holds garbage for a while before the bytes land, so that
      // whatever reads it before the copy's event sees neither the old nor the new contents.
      std::memset(destination, 0xff, bytes);
      std::this_thread::sleep_for(delay);
    }
    std::memcpy(destination, source, bytes);
    return ok();
  });
}

result<void> zero(void* destination, std::size_t bytes, CUstream_st* stream) {
  return cuda::emu::submit(stream, [=]() -> result<void> {
    if (bytes > 0) std::memset(destination, 0, bytes);
    return ok();
  });
}

result<CUstream_st*> create_stream() { return cuda::emu::new_stream(); }
void destroy_stream(CUstream_st* stream) { cuda::emu::delete_stream(stream); }
result<void> synchronize(CUstream_st* stream) { return cuda::emu::wait_stream(stream); }
result<CUevent_st*> create_event() { return cuda::emu::new_event(); }
void destroy_event(CUevent_st* event) { cuda::emu::delete_event(event); }
result<void> record_event(CUevent_st* event, CUstream_st* stream) { return cuda::emu::record(event, stream); }
result<void> wait_event(CUstream_st* stream, CUevent_st* event) { return cuda::emu::wait_for(stream, event); }
result<bool> event_done(CUevent_st* event) { return cuda::emu::query(event); }
result<void> begin_capture(CUstream_st* stream) { return cuda::emu::begin_capture(stream); }
result<CUgraphExec_st*> end_capture(CUstream_st* stream) { return cuda::emu::end_capture(stream); }
result<void> launch_graph(CUgraphExec_st* graph, CUstream_st* stream) { return cuda::emu::launch_graph(graph, stream); }
void destroy_graph(CUgraphExec_st* graph) { cuda::emu::delete_graph(graph); }
result<int> compute_capability() { return cuda::emu::emulated_compute_capability(); }

#endif

}  // namespace QCODER_CUDA_NAMESPACE
