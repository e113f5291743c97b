// The emulator's promise to AddressSanitizer: shared memory (static and dynamic) is a heap buffer of exactly
// its size, so one element past it is a reported overflow, as is a read past a global buffer. These tests
// exist only in ASan builds (the asan preset); elsewhere there is nothing to check, so nothing is compiled.
#include <gtest/gtest.h>

#include <vector>

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
