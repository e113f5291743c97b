// The debounce timer: functions run when due, in order; a cancelled one runs early (to answer), and
// stop() runs what is pending.
#include "lsp/server/timer_queue.h"

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

namespace qcoder::lsp {
namespace {
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

TEST(TimerQueue, RunsInDueOrderNotBefore) {
  timer_queue q;
  std::mutex m;
  std::vector<int> order;
  std::promise<void> both;
  const auto t0 = clock::now();
  clock::time_point second_ran;
  q.schedule(t0 + 60ms, {}, [&] {
    std::lock_guard lock(m);
    order.push_back(2);
    second_ran = clock::now();
    both.set_value();
  });
  q.schedule(t0 + 20ms, {}, [&] {
    std::lock_guard lock(m);
    order.push_back(1);
  });
  both.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(second_ran - t0, 60ms);
}

TEST(TimerQueue, ACancelledEntryRunsEarlyAndStopRunsThePending) {
  timer_queue q;
  std::stop_source cancel;
  std::promise<bool> ran;
  q.schedule(clock::now() + 1h, cancel.get_token(), [&] { ran.set_value(cancel.get_token().stop_requested()); });
  cancel.request_stop();
  auto f = ran.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(f.get());
  std::atomic<bool> pending_ran = false;
  q.schedule(clock::now() + 1h, {}, [&] { pending_ran = true; });
  q.stop();
  EXPECT_TRUE(pending_ran);
}

}  // namespace
}  // namespace qcoder::lsp
