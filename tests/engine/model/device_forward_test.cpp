// The whole model on the emulated CUDA backend (--backend cuda-emu: the CUDA kernel sources run on the CPU
// emulator) against the CPU backend, on both tiny checkpoints (BF16, and FP8 with 128×128 block scales):
// prompt logits, logits step by step, greedy tokens, several sequences in one batch, and prompts longer than
// a chunk. The CPU backend itself is checked against an independent implementation (qwen3_next_test.cpp).
#include "engine/model/device_forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "engine/sampler.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;

const fs::path data_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";
// The bound. The emulated kernels sum in other orders than the CPU's (warp trees, split products),
// and the GEMM rounds activations to a bf16 pair: differences of ~1e-5 per op, far inside it.
constexpr float tolerance = 1e-3f;

std::unique_ptr<qwen3_next> load(const fs::path& dir, compute_device device, std::int64_t max_batch) {
  model_options options;
  options.device = device;
  options.threads = 2;
  options.max_batch = max_batch;
  result<std::unique_ptr<qwen3_next>> model = qwen3_next::load(dir, options);
  EXPECT_TRUE(model) << (model ? "" : model.err().message);
  return model ? std::move(model).value() : nullptr;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// A prompt of `n` ids spread over the vocabulary (deterministic).
std::vector<std::int32_t> prompt(std::int64_t n, std::int64_t vocab, std::int32_t seed) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((seed + 7919 * i) % vocab);
  return ids;
}

class EmulatedCuda : public testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return data_dir / GetParam(); }
};

// A prompt of 20 tokens in chunks of 16 (so the prefill GEMM, the decode GEMV and a chunk boundary all
// run), logits of every token; then 4 greedy steps, each token's logits compared and the tokens equal.
// (Sizes are small because the emulator runs every GPU thread: ~0.25 s per token here, 6x that under ASan.)
TEST_P(EmulatedCuda, MatchesTheCpuLogitsForPromptAndStepsAndTheGreedyTokens) {
  auto cpu = load(dir(), compute_device::cpu, 16);
  auto emu = load(dir(), compute_device::cuda_emu, 16);
  ASSERT_TRUE(cpu && emu);
  const std::int64_t vocab = cpu->config().vocab_size;
  const std::vector<std::int32_t> ids = prompt(20, vocab, 11);
  sequence_state cpu_state = cpu->new_state(64);
  sequence_state emu_state = emu->new_state(64);
  std::vector<float> cpu_logits(ids.size() * static_cast<std::size_t>(vocab));
  std::vector<float> emu_logits(cpu_logits.size(), std::nanf(""));
  ASSERT_TRUE(cpu->forward(ids, cpu_state, cpu_logits.data(), logits_mode::all));
  auto r = emu->forward(ids, emu_state, emu_logits.data(), logits_mode::all);
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_LE(max_abs_diff(cpu_logits, emu_logits), tolerance);
  EXPECT_EQ(emu_state.length(), 20);

  std::vector<float> cpu_last(static_cast<std::size_t>(vocab)), emu_last(static_cast<std::size_t>(vocab));
  std::copy(cpu_logits.end() - vocab, cpu_logits.end(), cpu_last.begin());
  std::copy(emu_logits.end() - vocab, emu_logits.end(), emu_last.begin());
  for (int step = 0; step < 4; ++step) {
    const std::int32_t cpu_token = argmax(cpu_last.data(), vocab);
    ASSERT_EQ(argmax(emu_last.data(), vocab), cpu_token) << "step " << step;
    ASSERT_TRUE(cpu->forward(std::span(&cpu_token, 1), cpu_state, cpu_last.data(), logits_mode::last));
    ASSERT_TRUE(emu->forward(std::span(&cpu_token, 1), emu_state, emu_last.data(), logits_mode::last));
    EXPECT_LE(max_abs_diff(cpu_last, emu_last), tolerance) << "step " << step;
  }
}

// Three sequences in one pass (two decoding, one mid-prompt), each row attending only to its own memory.
TEST_P(EmulatedCuda, BatchesSequencesAsTheCpuDoes) {
  auto cpu = load(dir(), compute_device::cpu, 32);
  auto emu = load(dir(), compute_device::cuda_emu, 32);
  ASSERT_TRUE(cpu && emu);
  const std::int64_t vocab = cpu->config().vocab_size;
  const std::vector<std::vector<std::int32_t>> prefixes = {prompt(3, vocab, 1), prompt(5, vocab, 2), prompt(2, vocab, 3)};
  const std::vector<std::vector<std::int32_t>> next = {prompt(1, vocab, 4), prompt(1, vocab, 5), prompt(4, vocab, 6)};
  std::vector<sequence_state> cpu_states, emu_states;
  for (const auto& p : prefixes) {
    cpu_states.push_back(cpu->new_state(32));
    emu_states.push_back(emu->new_state(32));
    ASSERT_TRUE(cpu->forward(p, cpu_states.back(), nullptr, logits_mode::none));
    ASSERT_TRUE(emu->forward(p, emu_states.back(), nullptr, logits_mode::none));
  }
  const logits_mode modes[] = {logits_mode::last, logits_mode::last, logits_mode::all};
  std::vector<sequence_step> cpu_steps, emu_steps;
  for (std::size_t i = 0; i < next.size(); ++i) {
    cpu_steps.push_back({next[i], &cpu_states[i], modes[i]});
    emu_steps.push_back({next[i], &emu_states[i], modes[i]});
  }
  const std::size_t rows = 1 + 1 + 4;
  std::vector<float> cpu_logits(rows * static_cast<std::size_t>(vocab)), emu_logits(cpu_logits.size(), std::nanf(""));
  ASSERT_TRUE(cpu->forward_batch(cpu_steps, cpu_logits.data()));
  auto r = emu->forward_batch(emu_steps, emu_logits.data());
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_LE(max_abs_diff(cpu_logits, emu_logits), tolerance);
}

INSTANTIATE_TEST_SUITE_P(TinyCheckpoints, EmulatedCuda, testing::Values("bf16", "fp8"));

TEST(ComputeDevice, NamesParseAndUnknownOnesAreRefused) {
  EXPECT_EQ(*parse_compute_device("cuda-emu"), compute_device::cuda_emu);
  EXPECT_EQ(compute_device_name(*parse_compute_device("cuda")), "cuda");
  EXPECT_FALSE(parse_compute_device("gpu"));
  EXPECT_TRUE(compute_device_built(compute_device::cpu));
  EXPECT_TRUE(compute_device_built(compute_device::cuda_emu));  // this test is built only with the emulator
}

// On a device the RAM expert cache is the host tier under the VRAM one: without a VRAM budget (every
// expert uploaded) it would hold nothing, and is refused with a message that says what it needs.
TEST(ComputeDevice, TheExpertCacheNeedsAVramBudgetOffTheCpu) {
  model_options options;
  options.device = compute_device::cuda_emu;
  options.experts.ram_budget = 1 << 20;
  auto model = qwen3_next::load(data_dir / "bf16", options);
  ASSERT_FALSE(model);
  EXPECT_EQ(model.err().code, errc::invalid_argument);
  EXPECT_NE(model.err().message.find("it needs --expert-cache-vram"), std::string::npos) << model.err().message;
}

}  // namespace
}  // namespace qcoder::engine
