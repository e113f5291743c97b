// The scheduler: generations from many threads decoded together give what each gives alone, a full queue
// refuses, a stopped generation ends without holding up the others, repeated prompts come from the prefix
// cache, and an unavailable model refuses what is queued.
#include "serve/scheduler.h"

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/tiny_engine.h"

namespace qcoder::serve {
namespace {


result<service::loaded_engine> load_tiny() { return testing_support::load_tiny_engine(); }

std::vector<std::vector<std::int32_t>> prompts() { return testing_support::golden_prompts(); }

engine::generation_request request(const std::vector<std::int32_t>& prompt, int i) {
  engine::generation_request r;
  r.prompt = prompt;
  r.max_tokens = 10 + i;
  r.sampling.greedy = i % 2 == 0;
  r.sampling.seed = 100 + static_cast<std::uint64_t>(i);
  return r;
}

std::vector<std::int32_t> alone(const engine::generation_request& r) {
  result<service::loaded_engine> e = load_tiny();
  EXPECT_TRUE(e);
  engine::sequence_state state = e->model->new_state(static_cast<std::int64_t>(r.prompt.size()) + r.max_tokens + 1);
  result<engine::generation_result> out = engine::generate(*e->model, state, r);
  EXPECT_TRUE(out);
  return out ? out->tokens : std::vector<std::int32_t>{};
}

std::future<result<engine::generation_result>> submit(scheduler& s, engine::generation_request r, bool* accepted = nullptr) {
  auto done = std::make_shared<std::promise<result<engine::generation_result>>>();
  std::future<result<engine::generation_result>> f = done->get_future();
  const bool ok = s.submit({std::move(r), [done](result<engine::generation_result> out) { done->set_value(std::move(out)); }});
  if (accepted != nullptr) *accepted = ok;
  return f;
}

TEST(Scheduler, GenerationsFromManyThreadsGetWhatEachGetsAlone) {
  service::inference_worker worker(load_tiny);
  scheduler s(worker, {.max_queue = 16, .max_running = 3});
  const auto all = prompts();
  std::vector<engine::generation_request> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(request(all[static_cast<std::size_t>(i) % all.size()], i));
  std::vector<std::future<result<engine::generation_result>>> futures(requests.size());
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] { futures[i] = submit(s, requests[i]); });
  }
  for (std::thread& t : clients) t.join();
  std::size_t prompt_tokens = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    result<engine::generation_result> out = futures[i].get();
    ASSERT_TRUE(out) << out.err().message;
    EXPECT_EQ(out->tokens, alone(requests[i])) << "request " << i;
    prompt_tokens += requests[i].prompt.size();
  }
  const scheduler_stats stats = s.stats();
  EXPECT_EQ(stats.submitted, 6u);
  EXPECT_EQ(stats.finished, 6u);
  EXPECT_EQ(stats.prompt_tokens, prompt_tokens);
  EXPECT_GT(stats.generated_tokens, 0u);
  EXPECT_GT(stats.steps, 0u);
  // Prompts 4 and 5 repeat prompts 0 and 1 (four golden prompts), so parts came from the prefix cache.
  EXPECT_GT(stats.cached_prompt_tokens, 0u);
  EXPECT_EQ(stats.running, 0u);
  EXPECT_EQ(stats.queued, 0u);
}

TEST(Scheduler, AFullQueueRefusesAndAStoppedGenerationEndsAlone) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  service::inference_worker worker([gate] {
    gate.wait();  // the model "loads" until the queue is full
    return load_tiny();
  });
  scheduler s(worker, {.max_queue = 2, .max_running = 4});
  const auto all = prompts();
  std::stop_source stop;
  engine::generation_request stopped = request(all[0], 0);
  stopped.max_tokens = 200;
  stopped.stop = stop.get_token();
  bool accepted = false;
  auto first = submit(s, stopped, &accepted);
  EXPECT_TRUE(accepted);
  auto second = submit(s, request(all[1], 1), &accepted);
  EXPECT_TRUE(accepted);
  auto third = submit(s, request(all[2], 2), &accepted);
  EXPECT_FALSE(accepted) << "the queue holds two";
  EXPECT_EQ(s.stats().refused, 1u);
  EXPECT_EQ(s.stats().queued, 2u);
  stop.request_stop();
  release.set_value();
  result<engine::generation_result> a = first.get();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->reason, engine::finish_reason::cancelled);
  result<engine::generation_result> b = second.get();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->tokens, alone(request(all[1], 1)));
  EXPECT_EQ(s.stats().cancelled, 1u);
}

TEST(Scheduler, AModelThatFailsToLoadRefusesWhatIsQueued) {
  service::inference_worker worker([]() -> result<service::loaded_engine> { return fail(errc::not_found, "no model here"); });
  scheduler s(worker, {});
  auto f = submit(s, request(prompts()[0], 0));
  result<engine::generation_result> out = f.get();
  ASSERT_FALSE(out);
  EXPECT_NE(out.err().message.find("no model here"), std::string::npos) << out.err().message;
}

}  // namespace
}  // namespace qcoder::serve
