#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder::cpu {
namespace {

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  thread_pool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (std::int64_t n : {0, 1, 3, 100, 10007}) {
    for (std::int64_t grain : {1, 7, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      std::atomic<int> bad_index{0};
      pool.parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end, int thread) {
        if (thread < 0 || thread >= 4) bad_index.fetch_add(1);
        for (std::int64_t i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
      });
      for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << n << " " << i;
      EXPECT_EQ(bad_index.load(), 0);
    }
  }
}

TEST(ThreadPool, ManySmallJobsInARow) {
  thread_pool pool(2);
  std::int64_t total = 0;
  std::atomic<std::int64_t> sum{0};
  for (int job = 0; job < 20000; ++job) {
    pool.parallel_for(4, 1, [&](std::int64_t begin, std::int64_t end, int) { sum.fetch_add(end - begin); });
    total += 4;
  }
  EXPECT_EQ(sum.load(), total);
}

TEST(ThreadPool, SingleThreadRunsInline) {
  thread_pool pool(1);
  int calls = 0;
  pool.parallel_for(10, 1, [&](std::int64_t begin, std::int64_t end, int thread) {
    EXPECT_EQ(thread, 0);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace qcoder::cpu
