// The inference thread: background load, bounded waits, jobs in order, refusals, and the clean shutdown
// that saves the prefix cache.
#include "service/inference_worker.h"

#include <atomic>
#include <future>
#include <latch>

#include <gtest/gtest.h>

#include "engine/generate.h"
#include "tests/support/tiny_engine.h"

namespace qcoder::service {
namespace {
using namespace std::chrono_literals;


result<loaded_engine> load_tiny() { return testing_support::load_tiny_engine(); }

TEST(InferenceWorker, LoadsInTheBackgroundAndRunsJobsInOrder) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<model_state> states;
  std::mutex states_mutex;
  inference_worker worker(
      [gate] {
        gate.wait();  // the load takes as long as the test wants
        return load_tiny();
      },
      [&](model_state s, const std::string&) {
        std::lock_guard lock(states_mutex);
        states.push_back(s);
      });
  const result<void> early = worker.wait_ready(20ms);
  ASSERT_FALSE(early);
  EXPECT_NE(early.err().message.find("still loading"), std::string::npos);

  std::vector<int> order;
  std::latch done(3);
  for (int i = 0; i < 3; ++i) {
    worker.post(
        [&order, &done, i](loaded_engine& e) {
          EXPECT_NE(e.cache, nullptr);
          engine::qwen3_next& model = *e.model;
          engine::sequence_state state = model.new_state(8);
          std::vector<float> logits(static_cast<std::size_t>(model.config().vocab_size));
          const std::int32_t tokens[] = {1, 2, 3};
          EXPECT_TRUE(model.forward(tokens, state, logits.data(), engine::logits_mode::last));
          order.push_back(i);
          done.count_down();
        },
        [](const error& e) { ADD_FAILURE() << e.message; });
  }
  EXPECT_EQ(worker.queued(), 3u);  // nothing runs before the model is there
  release.set_value();
  done.wait();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(worker.wait_ready(0ms));
  std::lock_guard lock(states_mutex);
  EXPECT_EQ(states, std::vector<model_state>{model_state::ready});
}

TEST(InferenceWorker, FailedLoadRefusesQueuedAndLaterJobs) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  inference_worker worker([gate]() -> result<loaded_engine> {
    gate.wait();
    return fail(errc::not_found, "no model here");
  });
  std::promise<std::string> refused_early;
  worker.post([](loaded_engine&) { ADD_FAILURE() << "ran without a model"; },
              [&](const error& e) { refused_early.set_value(e.message); });
  release.set_value();
  EXPECT_NE(refused_early.get_future().get().find("no model here"), std::string::npos);
  const result<void> ready = worker.wait_ready(1s);
  ASSERT_FALSE(ready);
  EXPECT_NE(ready.err().message.find("no model here"), std::string::npos);
  std::string later;
  worker.post([](loaded_engine&) { ADD_FAILURE(); }, [&](const error& e) { later = e.message; });
  EXPECT_NE(later.find("failed to load"), std::string::npos);
}

TEST(InferenceWorker, ShutdownDrainsTheQueueAndSavesTheCache) {
  std::atomic<int> saved{0};
  std::atomic<int> ran{0};
  {
    inference_worker worker([&saved]() -> result<loaded_engine> {
      QCODER_TRY(loaded_engine e, load_tiny());
      e.save_cache = [&saved](const engine::prefix_cache&) -> result<void> {
        ++saved;
        return ok();
      };
      return e;
    });
    for (int i = 0; i < 4; ++i) {
      worker.post([&ran](loaded_engine&) { ++ran; }, [](const error&) { ADD_FAILURE(); });
    }
    EXPECT_TRUE(worker.shutdown());
    EXPECT_EQ(ran.load(), 4);
    EXPECT_EQ(saved.load(), 1);
    std::string refused;
    worker.post([](loaded_engine&) { ADD_FAILURE(); }, [&](const error& e) { refused = e.message; });
    EXPECT_NE(refused.find("shutting down"), std::string::npos);
  }
  EXPECT_EQ(saved.load(), 1);  // the destructor after shutdown does not save again
}

TEST(InferenceWorker, DestructionWithoutShutdownRefusesQueuedJobsAndDoesNotSave) {
  std::atomic<int> saved{0};
  std::atomic<int> refused{0};
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  {
    inference_worker worker([&saved, gate]() -> result<loaded_engine> {
      gate.wait();
      QCODER_TRY(loaded_engine e, load_tiny());
      e.save_cache = [&saved](const engine::prefix_cache&) -> result<void> {
        ++saved;
        return ok();
      };
      return e;
    });
    worker.post([](loaded_engine&) {}, [&refused](const error&) { ++refused; });
    worker.post([](loaded_engine&) {}, [&refused](const error&) { ++refused; });
    release.set_value();
    // The destructor may find the jobs queued (refused) or already run; either way none is lost silently.
  }
  EXPECT_EQ(saved.load(), 0);
  EXPECT_LE(refused.load(), 2);
}

}  // namespace
}  // namespace qcoder::service
