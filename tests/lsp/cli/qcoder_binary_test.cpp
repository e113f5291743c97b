// Runs the real `qcoder` binary and checks what a person sees: help, version, usage errors, exit codes.
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <iterator>
#include <vector>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/lsp/cli/run_qcoder.h"

namespace {

using qcoder::testing_support::run_result;

run_result run(const std::string& args, bool merge_stderr = true, const std::string& env_prefix = "") {
  return qcoder::testing_support::run_qcoder(args, merge_stderr, env_prefix);
}

TEST(QcoderBinary, HelpListsCommands) {
  const run_result r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: qcoder <command>"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("version"), std::string::npos);
  EXPECT_NE(r.out.find("info"), std::string::npos);
}

TEST(QcoderBinary, NoArgumentsIsAUsageError) { EXPECT_EQ(run("").exit_code, 2); }

TEST(QcoderBinary, VersionReportsBuildCpuAndCuda) {
  const run_result r = run("version");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("qcoder 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("build: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cpu: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kernels"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cuda: "), std::string::npos) << r.out;
}

TEST(QcoderBinary, EveryCommandHasHelp) {
  for (const char* command : {"version", "info", "logits", "generate", "make-model", "bench decode"}) {
    const run_result r = run(std::string(command) + " --help", /*merge_stderr=*/false);
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find(std::string("usage: qcoder ") + command), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--log-level LEVEL"), std::string::npos) << r.out;
  }
}

TEST(QcoderBinary, UnknownCommandAndFlagAreUsageErrors) {
  run_result r = run("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos) << r.out;
  r = run("version --frob");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown flag --frob"), std::string::npos) << r.out;
  r = run("version --log-level loud");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown log level 'loud'"), std::string::npos) << r.out;
}

TEST(QcoderBinary, InfoWithoutModelSaysWhereItLookedAndFails) {
  // An empty HOME and no HF variables: there is certainly no model to find.
  const run_result r = run("info", /*merge_stderr=*/true, "env -u HF_HOME -u HF_HUB_CACHE HOME=/nonexistent-qcoder-home");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("no Qwen3-Coder-Next model found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/nonexistent-qcoder-home/.cache/huggingface/hub"), std::string::npos) << r.out;
}

TEST(QcoderBinary, InfoDescribesAModel) {
  const run_result r = run("info --model " + std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/fp8", false);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("FP8 e4m3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 (6 Gated DeltaNet, 2 gated attention)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16 per layer, top-4"), std::string::npos) << r.out;
}

TEST(QcoderBinary, BenchDecodeReportsItsFiguresAsJson) {
  const run_result r = run("bench decode --model " + std::string(QCODER_TEST_DATA_DIR) +
                               "/tiny-qwen3next/fp8 --tokens 4 --prompt-tokens 6 --repeat 2 --bandwidth-buffer 16MiB "
                               "--expert-cache-ram 1 --json --log-level warn",
                           false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_mean", "weight_gbps",
                          "memory_read_gbps", "bandwidth_fraction", "major_page_faults", "rss_anon_bytes",
                          "expert_hit_rate", "expert_disk_bytes_per_token"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["repeat"].get<int>(), 2);
  EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0.0);
  // One slot per layer and 4 of 16 experts per token: every run reads experts from the file.
  EXPECT_GT(j["expert_misses"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["expert_disk_bytes_per_token"].get<double>(), 0.0);
}

TEST(QcoderBinary, BenchDecodeTakesPerLayerExpertBudgets) {
  const std::string base = "bench decode --model " + std::string(QCODER_TEST_DATA_DIR) +
                           "/tiny-qwen3next/fp8 --tokens 2 --prompt-tokens 4 --repeat 1 --warmup 0 "
                           "--bandwidth-buffer 16MiB --log-level warn --expert-cache-ram 1MiB ";
  run_result r = run(base + "--expert-layer-budget 0-1=1,5=1 --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto slots = j["expert_slots_per_layer"].get<std::vector<int>>();
  ASSERT_EQ(slots.size(), 8u);
  EXPECT_EQ(slots[0], 1);
  EXPECT_EQ(slots[1], 1);
  EXPECT_EQ(slots[5], 1);
  // The other five layers share the rest of 1 MiB equally: 209,715 B each, several experts.
  EXPECT_GT(slots[2], 1);
  for (int l : {3, 4, 6, 7}) {
    EXPECT_EQ(slots[static_cast<std::size_t>(l)], slots[2]) << l;
  }
  // A layer the model does not have is an error that names it.
  r = run(base + "--expert-layer-budget 8=1KiB");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("layer 8 does not exist"), std::string::npos) << r.out;
  r = run(base + "--expert-layer-budget 0=2MiB");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("more than the expert cache"), std::string::npos) << r.out;
}

TEST(QcoderBinary, BenchGpuModelPrintsARowPerCard) {
  const run_result r = run("bench gpu-model --tokens 120 --warmup 20 --policy lru", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("PREDICTIONS"), std::string::npos) << r.out;
  for (const char* card : {"rtx3070ti-8g", "rtx4070-12g", "rtx4090-24g", "h100", "h200"}) {
    const std::size_t at = r.out.find(std::string("\n") + card + " ");
    ASSERT_NE(at, std::string::npos) << card << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("does not fit"), std::string::npos) << r.out;  // the 8 GB card cannot hold every expert
  EXPECT_NE(r.out.find("1.21 tok/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("~210 tok/s"), std::string::npos) << r.out;

  const run_result one = run("bench gpu-model --gpu custom:bw=448,pcie=31.5,vram=8GiB --tokens 120 --warmup 20 --json", false);
  ASSERT_EQ(one.exit_code, 0) << one.out;
  const auto j = nlohmann::json::parse(one.out);
  EXPECT_TRUE(j["prediction"].get<bool>());
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_GT(j["predicted_tokens_per_s"].get<double>(), 0.0);
  EXPECT_LT(j["predicted_tokens_per_s"].get<double>(), j["ceiling_tokens_per_s"].get<double>());
  EXPECT_EQ(j["routed_bytes_per_token"].get<std::int64_t>(), 48 * 10 * 3146112);

  // The same card over 24 GiB of RAM for experts (the rest on a disk): eager (no graph), part of the misses
  // read from disk first, slower than with every expert in RAM.
  const run_result ram = run("bench gpu-model --gpu custom:bw=448,pcie=31.5,vram=8GiB --tokens 120 --warmup 20 "
                             "--ram 24GiB --json",
                             false);
  ASSERT_EQ(ram.exit_code, 0) << ram.out;
  const auto k = nlohmann::json::parse(ram.out);
  EXPECT_FALSE(k["graphs"].get<bool>());
  EXPECT_LT(k["host_slots_per_layer"].get<std::int64_t>(), 512);
  EXPECT_GT(k["disk_fraction"].get<double>(), 0.0);
  EXPECT_GT(k["disk_bytes_per_token"].get<double>(), 0.0);
  EXPECT_LT(k["predicted_tokens_per_s"].get<double>(), j["predicted_tokens_per_s"].get<double>());
  EXPECT_EQ(run("bench gpu-model --ram 0").exit_code, 2);

  EXPECT_EQ(run("bench gpu-model --gpu custom:bw=448").exit_code, 2);
  EXPECT_EQ(run("bench gpu-model --gpu rtx9090").exit_code, 2);
  EXPECT_EQ(run("bench gpu-model --quant int4").exit_code, 2);
  EXPECT_EQ(run("bench gpu-model --gpu h100 --measure-disk").exit_code, 2);

  // The CPU card with its disk measured on the model's own experts (the tiny FP8 checkpoint): the measured
  // figures are printed and used.
  const run_result cpu = run("bench gpu-model --gpu cpu --measure-disk --vram 4MiB --model " +
                                 std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/fp8 --tokens 64 --warmup 8",
                             /*merge_stderr=*/false);
  ASSERT_EQ(cpu.exit_code, 0) << cpu.out;
  EXPECT_NE(cpu.out.find("disk (measured)"), std::string::npos) << cpu.out;
  EXPECT_NE(cpu.out.find("predicted"), std::string::npos) << cpu.out;
}

TEST(QcoderBinary, BenchExpertCacheReportsTimedAndInTimeFigures) {
  // 4 layers of 64 experts, top-4, 8 slots. A read (1 MB at 0.1 GB/s: 10 ms) is 10 times a layer, so most
  // prefetches arrive late: the timed hit rate is below the in-time bound.
  const run_result r = run(
      "bench expert-cache --synthetic --layers 4 --experts 64 --top-k 4 --tokens 300 --slots 8 --warmup 50 "
      "--policy lru --expert-bytes 1MB --layer-compute-ms 1 --read-gbps 0.1 --disk-gbps 0.1 --loader-threads 1 --json",
      false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["timing"]["loader_threads"].get<int>(), 1);
  ASSERT_EQ(j["results"].size(), 2u);
  const auto& off = j["results"][0];
  const auto& on = j["results"][1];
  EXPECT_FALSE(off["prefetch"].get<bool>());
  EXPECT_TRUE(on["prefetch"].get<bool>());
  EXPECT_FALSE(off.contains("hidden_wait_fraction"));
  EXPECT_TRUE(on.contains("hidden_wait_fraction"));
  EXPECT_GT(off["wait_ms_per_token"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(off["hit_rate"].get<double>(), off["in_time_hit_rate"].get<double>());
  EXPECT_LT(on["hit_rate"].get<double>(), on["in_time_hit_rate"].get<double>());
  EXPECT_GT(on["late_rate"].get<double>(), 0.0);
  // A clock without a disk is a usage error.
  EXPECT_EQ(run("bench expert-cache --tokens 10 --disk-gbps 0").exit_code, 2);
}

// The largest absolute difference between two files of little-endian float32; nullopt when their sizes differ.
std::optional<float> worst_difference(const std::string& path_a, const std::string& path_b) {
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  const std::vector<char> a = read(path_a), b = read(path_b);
  if (a.size() != b.size()) return std::nullopt;
  float worst = 0.0f;
  for (std::size_t i = 0; i + 4 <= a.size(); i += 4) {
    float x, y;
    std::memcpy(&x, a.data() + i, 4);
    std::memcpy(&y, b.data() + i, 4);
    worst = std::max(worst, std::fabs(x - y));
  }
  return worst;
}

TEST(QcoderBinary, LogitsCommandWritesGoldenLogitsInBothModes) {
  const std::string model = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/fp8";
  const std::string golden = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/golden/fp8/logits_p1.bin";
  const std::string out = ::testing::TempDir() + "qcoder-logits-test.bin";
  for (const char* mode : {"", " --step"}) {
    const run_result r = run("logits --model " + model + " --ids 630,17,66,799,483,353,868 --out " + out + mode +
                             " --log-level warn");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const std::optional<float> worst = worst_difference(out, golden);
    ASSERT_TRUE(worst) << mode << ": the files differ in length";
    EXPECT_LE(*worst, 5e-4f) << mode;
  }
  std::remove(out.c_str());
}

#if defined(QCODER_HAVE_CUDA_EMU)
// The same command on the emulated CUDA backend: every kernel of the forward pass runs as CUDA source on the
// CPU emulator, and the logits still match the independent implementation's (the bound is the emulated
// backend's, 1e-3: its kernels sum in other orders and its GEMM splits activations into bf16 pairs).
TEST(QcoderBinary, LogitsOnTheEmulatedCudaBackendMatchTheGoldenLogits) {
  const std::string model = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/fp8";
  const std::string golden = std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/golden/fp8/logits_p1.bin";
  const std::string out = ::testing::TempDir() + "qcoder-logits-emu-test.bin";
  // All experts uploaded; a VRAM expert budget of 64 KiB (a few slots per layer, the rest read in place);
  // then that over a RAM budget of one expert per layer (the rest read from disk), with every miss
  // computed on the CPU.
  for (const char* mode : {"", " --step --expert-cache-vram 64KiB",
                           " --step --expert-cache-vram 64KiB --expert-cache-ram 1 --expert-cpu-misses always"}) {
    const run_result r = run("logits --backend cuda-emu --model " + model + " --ids 630,17,66,799,483,353,868 --out " +
                             out + mode + " --log-level warn");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const std::optional<float> worst = worst_difference(out, golden);
    ASSERT_TRUE(worst) << mode << ": the files differ in length";
    EXPECT_LE(*worst, 1e-3f) << mode;
  }
  std::remove(out.c_str());
}
#endif

TEST(QcoderBinary, AnUnknownBackendOrAServerUrlForALocalCommandIsAClearError) {
  const std::string base = "logits --model " + std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/fp8 --ids 1,2 --out " +
                           ::testing::TempDir() + "qcoder-unused.bin --backend ";
  run_result r = run(base + "gpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown compute backend 'gpu'"), std::string::npos) << r.out;
  r = run(base + "http://127.0.0.1:9/v1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("runs the model here"), std::string::npos) << r.out;
  r = run(base + "cpu --expert-cache-vram 1GiB");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("needs a CUDA backend"), std::string::npos) << r.out;
  r = run(base + "cuda-emu --expert-vram-layer-budget 0=1MiB");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("needs --expert-cache-vram"), std::string::npos) << r.out;
  r = run(base + "cuda-emu --expert-cache-ram 1MiB");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("host tier under the VRAM one: it needs --expert-cache-vram"), std::string::npos) << r.out;
  r = run(base + "cuda-emu --expert-cache-vram 1MiB --expert-cpu-misses sometimes");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unknown CPU miss mode 'sometimes'"), std::string::npos) << r.out;
}

// bench decode on the emulated device with both expert tiers: the VRAM tier's counts are reported, and with
// copies to the device never preferred (cpu misses off) the CPU tier computed nothing.
TEST(QcoderBinary, BenchDecodeReportsTheVramTier) {
  const std::string base = "bench decode --model " + std::string(QCODER_TEST_DATA_DIR) +
                           "/tiny-qwen3next/bf16 --backend cuda-emu --tokens 2 --prompt-tokens 3 --repeat 1 --warmup 0 "
                           "--bandwidth-buffer 16MiB --log-level warn --expert-cache-vram 1 --expert-cache-ram 1 --json";
  for (const char* cpu : {"never", "always"}) {
    const run_result r = run(base + " --expert-cpu-misses " + cpu, false);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["vram_expert_slots"].get<int>(), 8) << cpu;  // one per layer
    // 2 tokens × 8 layers × 4 experts, one VRAM slot per layer: at least 3 of a layer's 4 are misses (copied,
    // read in place or computed on the CPU), 48 in all.
    EXPECT_GT(j["vram_misses"].get<std::uint64_t>() + j["vram_direct"].get<std::uint64_t>(), 40u) << cpu;
    EXPECT_GT(j["expert_misses"].get<std::uint64_t>(), 0u) << cpu;  // read from disk into the RAM tier
    if (std::string(cpu) == "never") {
      EXPECT_EQ(j["vram_cpu"].get<std::uint64_t>(), 0u);
    } else {
      EXPECT_GT(j["vram_cpu"].get<std::uint64_t>(), 40u);
    }
  }
}

TEST(QcoderBinary, GenerateStreamsTextAndStopsBeforeAStopString) {
  const std::string base = "generate --model " + std::string(QCODER_TEST_DATA_DIR) +
                           "/tiny-qwen3next/bf16 --prompt 'def fib(n):' --max-tokens 20 --greedy --log-level warn";
  const run_result full = run(base, /*merge_stderr=*/false);
  ASSERT_EQ(full.exit_code, 0) << full.out;
  ASSERT_GT(full.out.size(), 12u);
  // Stop at a piece of the greedy output itself: what is printed must be exactly the text before it.
  const std::string stop = full.out.substr(8, 4);
  const std::size_t at = full.out.find(stop);
  const run_result cut = run(base + " --stop '" + stop + "'", /*merge_stderr=*/false);
  ASSERT_EQ(cut.exit_code, 0) << cut.out;
  EXPECT_EQ(cut.out, full.out.substr(0, at) + "\n");

  const run_result ids = run("generate --model x --ids 1 --prompt y");
  EXPECT_EQ(ids.exit_code, 2);
  EXPECT_NE(ids.out.find("exactly one of --ids and --prompt"), std::string::npos);
}

}  // namespace
