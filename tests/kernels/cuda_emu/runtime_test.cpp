// The emulated runtime (kernels/cuda/runtime.h on the emulator): streams run their work in order and apart
// from the caller, kernel errors surface at synchronize, events order one stream after another, and a
// captured graph records work instead of running it and replays it per launch.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels/cuda/emu/streams.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/runtime.h"

namespace qcoder::cuda {
namespace {

__global__ void add_one(float* x, unsigned n) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}

__global__ void barrier_in_divergent_code() {
  if (threadIdx.x < 16) __syncthreads();
}

// Device memory, released at scope end.
struct device_floats {
  explicit device_floats(std::size_t n) : count(n) { data = static_cast<float*>(*cuda_emu::allocate(n * sizeof(float))); }
  ~device_floats() { cuda_emu::release(data); }
  float* data = nullptr;
  std::size_t count = 0;
};

struct stream_holder {
  stream_holder() : s(*cuda_emu::create_stream()) {}
  ~stream_holder() { cuda_emu::destroy_stream(s); }
  CUstream_st* s;
};

// Queues a pause on `stream`, so that work queued after it is still pending when the caller looks.
void queue_pause(CUstream_st* stream, std::chrono::milliseconds pause) {
  ASSERT_TRUE(emu::submit(stream, [pause]() -> result<void> {
    std::this_thread::sleep_for(pause);
    return ok();
  }));
}

TEST(EmulatedRuntime, CopiesAndKernelsRunInStreamOrderAfterTheCallReturns) {
  stream_holder stream;
  const std::vector<float> host(300, 2.0f);
  device_floats x(host.size());
  queue_pause(stream.s, std::chrono::milliseconds(50));
  ASSERT_TRUE(cuda_emu::copy(x.data, host.data(), host.size() * sizeof(float), stream.s));
  ASSERT_TRUE(launch(add_one, dim3(3), dim3(128), 0, stream.s, x.data, 300u));
  std::vector<float> back(host.size(), 0.0f);
  ASSERT_TRUE(cuda_emu::copy(back.data(), x.data, back.size() * sizeof(float), stream.s));
  EXPECT_EQ(back[0], 0.0f) << "work ran on the caller's thread instead of the stream's";
  ASSERT_TRUE(cuda_emu::synchronize(stream.s));
  EXPECT_EQ(back, std::vector<float>(host.size(), 3.0f));
}

TEST(EmulatedRuntime, AKernelErrorSurfacesAtSynchronizeOnce) {
  stream_holder stream;
  ASSERT_TRUE(launch(barrier_in_divergent_code, dim3(1), dim3(32), 0, stream.s));
  auto r = cuda_emu::synchronize(stream.s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message.find("runtime_test.cpp"), std::string::npos) << r.err().message;  // the launch site
  EXPECT_TRUE(cuda_emu::synchronize(stream.s));
}

TEST(EmulatedRuntime, AnEventOrdersOneStreamAfterAnother) {
  stream_holder producer, consumer;
  CUevent_st* ready = *cuda_emu::create_event();
  device_floats x(64);
  ASSERT_TRUE(cuda_emu::zero(x.data, 64 * sizeof(float), producer.s));
  queue_pause(producer.s, std::chrono::milliseconds(50));
  ASSERT_TRUE(launch(add_one, dim3(1), dim3(64), 0, producer.s, x.data, 64u));
  ASSERT_TRUE(cuda_emu::record_event(ready, producer.s));
  ASSERT_TRUE(cuda_emu::wait_event(consumer.s, ready));
  std::vector<float> back(64, -1.0f);
  ASSERT_TRUE(cuda_emu::copy(back.data(), x.data, 64 * sizeof(float), consumer.s));
  ASSERT_TRUE(cuda_emu::synchronize(consumer.s));
  EXPECT_EQ(back, std::vector<float>(64, 1.0f));  // without the wait the copy would see 0 or NaN bytes
  ASSERT_TRUE(cuda_emu::synchronize(producer.s));
  cuda_emu::destroy_event(ready);
}

TEST(EmulatedRuntime, ACapturedGraphRunsOnlyWhenLaunchedAndEachTime) {
  stream_holder stream;
  device_floats x(40);
  ASSERT_TRUE(cuda_emu::zero(x.data, 40 * sizeof(float), stream.s));
  ASSERT_TRUE(cuda_emu::synchronize(stream.s));
  ASSERT_TRUE(cuda_emu::begin_capture(stream.s));
  ASSERT_TRUE(launch(add_one, dim3(1), dim3(64), 0, stream.s, x.data, 40u));
  ASSERT_TRUE(launch(add_one, dim3(1), dim3(64), 0, stream.s, x.data, 40u));
  EXPECT_FALSE(cuda_emu::synchronize(stream.s)) << "synchronize during capture is an error, as in CUDA";
  auto graph = cuda_emu::end_capture(stream.s);
  ASSERT_TRUE(graph) << graph.err().message;
  ASSERT_TRUE(cuda_emu::synchronize(stream.s));
  EXPECT_EQ(x.data[0], 0.0f) << "captured work ran";
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cuda_emu::launch_graph(*graph, stream.s));
  ASSERT_TRUE(cuda_emu::synchronize(stream.s));
  EXPECT_EQ(std::vector<float>(x.data, x.data + 40), std::vector<float>(40, 6.0f));
  cuda_emu::destroy_graph(*graph);
}

TEST(EmulatedRuntime, NewDeviceMemoryIsNotZero) {
  device_floats x(8);
  std::uint32_t bits = 0;
  std::memcpy(&bits, x.data, 4);
  EXPECT_EQ(bits, 0xffffffffu);
}

}  // namespace
}  // namespace qcoder::cuda
