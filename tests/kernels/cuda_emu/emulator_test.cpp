// The emulator's own tests: it must run kernels written for 32-lane warps and block barriers the way a GPU
// does, and report what it claims to catch (a barrier reached by part of a block, mismatched warp
// collectives, bad masks) as an error instead of hanging. The AddressSanitizer checks are in
// sanitizer_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "kernels/cuda/launch.h"

namespace qcoder::cuda {
namespace {

constexpr unsigned full = 0xffffffffu;

// Runs a launch on another thread and aborts the test binary if it does not finish: an emulator hang must
// fail the suite, not stall it until CTest's timeout.
result<void> within_deadline(const std::function<result<void>()>& launch_fn) {
  auto done = std::make_shared<std::promise<result<void>>>();
  auto future = done->get_future();
  std::thread([done, launch_fn] { done->set_value(launch_fn()); }).detach();
  if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::fputs("emulated launch did not finish in 30 s: the emulator hung\n", stderr);
    std::abort();
  }
  return future.get();
}

// Per warp: the sum of the lanes' linear thread ids by a shuffle-down tree (lane 0 holds it); the block's
// total by atomicAdd.
__global__ void warp_sums(int* per_warp, int* total) {
  int value = static_cast<int>(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(full, value, offset);
  if (threadIdx.x % 32 == 0) {
    per_warp[threadIdx.x / 32] = value;
    atomicAdd(total, value);
  }
}

class WarpReduction : public testing::TestWithParam<unsigned> {};

TEST_P(WarpReduction, SumsEveryWarpAndTheBlock) {
  const unsigned threads = GetParam();
  std::vector<int> per_warp(threads / 32, -1);
  int total = 0;
  ASSERT_TRUE(launch(warp_sums, dim3(1), dim3(threads), 0, nullptr, per_warp.data(), &total));
  for (unsigned w = 0; w < threads / 32; ++w) {
    const int first = static_cast<int>(32 * w);
    EXPECT_EQ(per_warp[w], 32 * first + 31 * 32 / 2) << "warp " << w;
  }
  EXPECT_EQ(total, static_cast<int>(threads * (threads - 1) / 2));
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, WarpReduction, testing::Values(32u, 64u, 96u, 256u));

enum shuffle_case { up3, down5, xor6, idx7, up3_w8, down3_w8, xor16_w8, idx7_w8, shuffle_cases };

__global__ void shuffles(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  int* mine = out + lane * shuffle_cases;
  mine[up3] = __shfl_up_sync(full, lane, 3);
  mine[down5] = __shfl_down_sync(full, lane, 5);
  mine[xor6] = __shfl_xor_sync(full, lane, 6);
  mine[idx7] = __shfl_sync(full, lane, 7);
  mine[up3_w8] = __shfl_up_sync(full, lane, 3, 8);
  mine[down3_w8] = __shfl_down_sync(full, lane, 3, 8);
  mine[xor16_w8] = __shfl_xor_sync(full, lane, 16, 8);
  mine[idx7_w8] = __shfl_sync(full, lane, 7, 8);
}

// The source lanes as the CUDA Programming Guide defines them (a lane whose source is outside its segment
// keeps its own value; xor may reach earlier segments but not later ones).
TEST(WarpShuffle, ReadsTheLanesCudaSpecifies) {
  std::vector<int> out(32 * shuffle_cases, -1);
  ASSERT_TRUE(launch(shuffles, dim3(1), dim3(32), 0, nullptr, out.data()));
  for (int lane = 0; lane < 32; ++lane) {
    const int* got = out.data() + lane * shuffle_cases;
    const int segment = lane & ~7;
    EXPECT_EQ(got[up3], lane < 3 ? lane : lane - 3) << lane;
    EXPECT_EQ(got[down5], lane + 5 >= 32 ? lane : lane + 5) << lane;
    EXPECT_EQ(got[xor6], lane ^ 6) << lane;
    EXPECT_EQ(got[idx7], 7) << lane;
    EXPECT_EQ(got[up3_w8], lane % 8 < 3 ? lane : lane - 3) << lane;
    EXPECT_EQ(got[down3_w8], lane % 8 + 3 >= 8 ? lane : lane + 3) << lane;
    EXPECT_EQ(got[xor16_w8], lane < 16 ? lane : lane - 16) << lane;
    EXPECT_EQ(got[idx7_w8], segment + 7) << lane;
  }
}

__global__ void shuffle_floats(float* out) {
  const float v = static_cast<float>(threadIdx.x) + 0.5f;
  out[threadIdx.x] = __shfl_xor_sync(full, v, 1);
}

TEST(WarpShuffle, MovesFloatsBitForBit) {
  std::vector<float> out(64);
  ASSERT_TRUE(launch(shuffle_floats, dim3(1), dim3(64), 0, nullptr, out.data()));
  for (int t = 0; t < 64; ++t) EXPECT_EQ(out[static_cast<std::size_t>(t)], static_cast<float>(t ^ 1) + 0.5f);
}

__global__ void votes(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned ballot = __ballot_sync(full, lane % 3 == 0);
  const int any = __any_sync(full, lane == 31);
  const int none = __any_sync(full, 0);
  const int all = __all_sync(full, 1);
  const int not_all = __all_sync(full, lane < 31);
  if (lane == 0) {
    unsigned* o = out + threadIdx.x / 32 * 5;
    o[0] = ballot;
    o[1] = static_cast<unsigned>(any);
    o[2] = static_cast<unsigned>(none);
    o[3] = static_cast<unsigned>(all);
    o[4] = static_cast<unsigned>(not_all);
  }
}

TEST(WarpVote, BallotAnyAll) {
  std::vector<unsigned> out(2 * 5, 7);
  ASSERT_TRUE(launch(votes, dim3(1), dim3(64), 0, nullptr, out.data()));
  unsigned expected_ballot = 0;
  for (unsigned lane = 0; lane < 32; lane += 3) expected_ballot |= 1u << lane;
  for (int w = 0; w < 2; ++w) {
    const unsigned* o = out.data() + w * 5;
    EXPECT_EQ(o[0], expected_ballot);
    EXPECT_EQ(o[1], 1u);
    EXPECT_EQ(o[2], 0u);
    EXPECT_EQ(o[3], 1u);
    EXPECT_EQ(o[4], 0u);
  }
}

// A tree reduction through shared memory: correct only if every __syncthreads orders the writes of one
// step before the reads of the next, across warps. Each block adds its own offset, so a block that saw
// another block's shared memory would be caught.
__global__ void shared_tree_sum(long long* out) {
  QCODER_SHARED(long long, values, 256);
  const unsigned t = threadIdx.x;
  values[t] = 1000LL * blockIdx.x + t;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) values[t] += values[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = values[0];
}

TEST(SyncThreads, OrdersSharedMemoryAcrossWarps) {
  std::vector<long long> out(4, -1);
  ASSERT_TRUE(launch(shared_tree_sum, dim3(4), dim3(256), 0, nullptr, out.data()));
  for (long long b = 0; b < 4; ++b) EXPECT_EQ(out[static_cast<std::size_t>(b)], 256 * 1000 * b + 255 * 256 / 2);
}

__global__ void record_indices(unsigned* out) {
  const unsigned block_linear = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned thread_linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block_linear * threads + thread_linear] = block_linear * 1000 + thread_linear;
}

TEST(Launch, GivesEveryThreadOfEveryBlockItsIndices) {
  const dim3 grid(3, 2, 2);
  const dim3 block(8, 4, 2);
  std::vector<unsigned> out(12 * 64, 0xdeadbeef);
  ASSERT_TRUE(launch(record_indices, grid, block, 0, nullptr, out.data()));
  for (unsigned b = 0; b < 12; ++b) {
    for (unsigned t = 0; t < 64; ++t) EXPECT_EQ(out[b * 64 + t], b * 1000 + t);
  }
}

TEST(Launch, RejectsABlockNoGpuRuns) {
  auto r = launch(record_indices, dim3(1), dim3(2048), 0, nullptr, static_cast<unsigned*>(nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::invalid_argument);
  EXPECT_NE(r.err().message.find("not a valid CUDA block"), std::string::npos) << r.err().message;
}

// Dynamic shared memory: every byte the launch asked for is usable, and it starts as garbage (0xff), not
// zeros, as a GPU gives no guarantee either.
__global__ void dynamic_shared_sum(unsigned* out, unsigned bytes) {
  QCODER_DYNAMIC_SHARED(unsigned char, scratch);
  if (threadIdx.x == 0) {
    unsigned initial = 0;
    for (unsigned i = 0; i < bytes; ++i) initial += scratch[i];
    out[0] = initial;
  }
  __syncthreads();
  for (unsigned i = threadIdx.x; i < bytes; i += blockDim.x) scratch[i] = 1;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned sum = 0;
    for (unsigned i = 0; i < bytes; ++i) sum += scratch[i];
    out[1] = sum;
  }
}

TEST(DynamicShared, IsTheLaunchSizeAndStartsAsGarbage) {
  for (unsigned bytes : {1u, 100u, 4097u}) {
    std::vector<unsigned> out(2, 0);
    ASSERT_TRUE(launch(dynamic_shared_sum, dim3(2), dim3(64), bytes, nullptr, out.data(), bytes));
    EXPECT_EQ(out[0], 0xffu * bytes) << bytes;
    EXPECT_EQ(out[1], bytes) << bytes;
  }
}

__global__ void count_with_atomics(int* counter, float* sum, int* old_values) {
  const unsigned id = blockIdx.x * blockDim.x + threadIdx.x;
  old_values[id] = atomicAdd(counter, 1);
  atomicAdd(sum, 0.5f);
}

TEST(Atomics, AddFromEveryThreadOfEveryBlock) {
  int counter = 0;
  float sum = 0.0f;
  std::vector<int> old_values(4 * 128, -1);
  ASSERT_TRUE(launch(count_with_atomics, dim3(4), dim3(128), 0, nullptr, &counter, &sum, old_values.data()));
  EXPECT_EQ(counter, 512);
  EXPECT_EQ(sum, 256.0f);
  std::sort(old_values.begin(), old_values.end());
  std::vector<int> expected(512);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(old_values, expected);  // each thread saw a distinct old value
}

// --- what the emulator reports instead of hanging ---------------------------------------------------------

__global__ void half_block_returns_early(int* out) {
  if (threadIdx.x >= 48) return;  // the bug: these threads never reach the barrier below
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void half_warp_returns_early(int* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(full, static_cast<int>(threadIdx.x), 1);
}

__global__ void warp_split_between_barriers(int* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_xor_sync(full, 1, 1);
  } else {
    __syncthreads();
  }
}

__global__ void partial_mask(int* out) {
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 0);
}

std::string launch_error(void (*kernel)(int*), unsigned threads) {
  std::vector<int> out(threads, 0);
  auto r = within_deadline([&] { return launch(kernel, dim3(2), dim3(threads), 0, nullptr, out.data()); });
  return r ? std::string("(no error)") : r.err().message;
}

TEST(EmulatorErrors, BarrierReachedByPartOfTheBlock) {
  const std::string message = launch_error(half_block_returns_early, 64);
  EXPECT_NE(message.find("__syncthreads"), std::string::npos) << message;
  EXPECT_NE(message.find("divergent"), std::string::npos) << message;
  EXPECT_NE(message.find("emulator_test.cpp"), std::string::npos) << message;  // names the launch site
  EXPECT_NE(message.find("block (0,0,0)"), std::string::npos) << message;
}

TEST(EmulatorErrors, ShuffleAfterHalfTheWarpReturned) {
  const std::string message = launch_error(half_warp_returns_early, 64);
  EXPECT_NE(message.find("__shfl_xor_sync"), std::string::npos) << message;
}

TEST(EmulatorErrors, WarpSplitBetweenShuffleAndSyncthreadsIsADeadlock) {
  const std::string message = launch_error(warp_split_between_barriers, 32);
  EXPECT_NE(message.find("deadlock"), std::string::npos) << message;
}

TEST(EmulatorErrors, PartialMaskIsReportedNotGuessed) {
  const std::string message = launch_error(partial_mask, 32);
  EXPECT_NE(message.find("0x0000ffff"), std::string::npos) << message;
}

TEST(EmulatorErrors, TheNextLaunchRunsNormally) {
  (void)launch_error(half_block_returns_early, 64);
  std::vector<long long> out(4, -1);
  ASSERT_TRUE(launch(shared_tree_sum, dim3(4), dim3(256), 0, nullptr, out.data()));
  EXPECT_EQ(out[0], 255 * 256 / 2);
}

}  // namespace
}  // namespace qcoder::cuda
