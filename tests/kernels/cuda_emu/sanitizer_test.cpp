// The emulator's promises to the sanitizers.
// - AddressSanitizer: shared memory (static and dynamic) is a heap buffer of exactly its size, so one element
//   past it is a reported overflow, as is a read past a global buffer.
// - ThreadSanitizer: only __syncthreads orders memory across the warps of a block (warp collectives order
//   their own warp's lanes only), so a block reduction with its one __syncthreads removed is a reported race.
// Each group exists only in its sanitizer's build (the asan and tsan presets); elsewhere there is nothing to
// check, so nothing is compiled.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.h"

#if defined(__SANITIZE_ADDRESS__)

namespace qcoder::cuda {
namespace {

__global__ void read_past_dynamic_shared(float* out, unsigned count) {
  QCODER_DYNAMIC_SHARED(float, scratch);
  if (threadIdx.x == 0) out[0] = scratch[count];  // one past the launch's count floats
}

__global__ void read_past_static_shared(float* out) {
  QCODER_SHARED(float, tile, 64);
  // Through a pointer, as kernels index shared memory: indexing the array itself is caught even earlier, by
  // UBSan's bounds check, since the emulator keeps the array type.
  const float* p = tile;
  const volatile unsigned index = 64;  // past the end, hidden from the compiler's bounds warning
  if (threadIdx.x == 0) out[0] = p[index];
}

__global__ void read_past_global(float* out, const float* in, unsigned count) {
  if (threadIdx.x == 0) out[0] = in[count];
}

class AddressSanitizer : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }  // the emulator runs threads
};

TEST_F(AddressSanitizer, ReportsAReadPastDynamicSharedMemory) {
  float out = 0.0f;
  EXPECT_DEATH((void)launch(read_past_dynamic_shared, dim3(1), dim3(32), 16 * sizeof(float), nullptr, &out, 16u),
               "heap-buffer-overflow");
}

TEST_F(AddressSanitizer, ReportsAReadPastStaticSharedMemory) {
  float out = 0.0f;
  EXPECT_DEATH((void)launch(read_past_static_shared, dim3(1), dim3(32), 0, nullptr, &out), "heap-buffer-overflow");
}

TEST_F(AddressSanitizer, ReportsAReadPastAGlobalBuffer) {
  float out = 0.0f;
  std::vector<float> in(100, 1.0f);
  EXPECT_DEATH((void)launch(read_past_global, dim3(1), dim3(32), 0, nullptr, &out, in.data(), 100u),
               "heap-buffer-overflow");
}

}  // namespace
}  // namespace qcoder::cuda

#endif  // __SANITIZE_ADDRESS__

#if defined(__SANITIZE_THREAD__)

// Every report fails the run: a kernel test that races must not pass with a warning in its log, and the death
// test below needs the report to end the process.
extern "C" const char* __tsan_default_options() { return "halt_on_error=1"; }

namespace qcoder::cuda {
namespace {

// block_sum (block_reduce.cuh) written out, with its __syncthreads optional: each warp's lane 0 writes its
// warp's total, then every warp reads all the totals.
template <bool with_barrier>
__global__ void block_total(float* out) {
  QCODER_SHARED(float, warp_totals, 32);
  const unsigned lane = threadIdx.x % 32;
  const unsigned warp = threadIdx.x / 32;
  const float mine = cuda_emu::warp_sum(static_cast<float>(threadIdx.x));
  if (lane == 0) warp_totals[warp] = mine;
  if (with_barrier) __syncthreads();
  const float total = cuda_emu::warp_sum(lane < blockDim.x / 32 ? warp_totals[lane] : 0.0f);
  if (threadIdx.x == 0) *out = total;
}

class ThreadSanitizer : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }  // the emulator runs threads
};

TEST_F(ThreadSanitizer, IsQuietAboutTheReductionWithItsBarrier) {
  float out = 0.0f;
  ASSERT_TRUE(launch(block_total<true>, dim3(1), dim3(128), 0, nullptr, &out));
  EXPECT_EQ(out, 127.0f * 128.0f / 2.0f);
}

TEST_F(ThreadSanitizer, ReportsTheReductionWithoutItsBarrier) {
  float out = 0.0f;
  EXPECT_DEATH((void)launch(block_total<false>, dim3(1), dim3(128), 0, nullptr, &out), "ThreadSanitizer: data race");
}

}  // namespace
}  // namespace qcoder::cuda

#endif  // __SANITIZE_THREAD__
