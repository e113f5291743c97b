// `qcoder bench matmul`: one weight matrix of a chosen type and shape through the CPU backend, repeated;
// prints the time per call, the weight GB/s and (for n > 1) GFLOP/s, against this machine's measured read
// bandwidth. The matrix is far larger than the caches by default, as decode sees it.
#include <chrono>
#include <random>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/common/cpu_features.h"
#include "kernels/cpu/bandwidth.h"
#include "kernels/cpu/cpu_backend.h"
#include "lsp/cli/bench_command.h"

namespace qcoder::cli {

int run_bench_matmul(args_view args) {
  std::string type_name = "fp8";
  std::int64_t rows = 16384, cols = 2048;
  int tokens = 1, threads = 0, repeat = 20;
  bool json = false;
  arg_parser parser("bench matmul [--dtype fp8|bf16|f16|f32] [--rows R] [--cols C] [--tokens N] [--threads N]",
                    "Time out[N, R] = x[N, C] · Wᵀ with W stored as DTYPE (FP8 with 128x128 block scales) and report\n"
                    "the weight bandwidth it reaches against the machine's measured read bandwidth.");
  int rows_arg = static_cast<int>(rows), cols_arg = static_cast<int>(cols);
  parser.option("dtype", "TYPE", "weight type", &type_name)
      .option("rows", "R", "output features", &rows_arg)
      .option("cols", "C", "input features", &cols_arg)
      .option("tokens", "N", "tokens per call (1 = decode)", &tokens)
      .option("threads", "N", "threads (0 = all)", &threads)
      .option("repeat", "K", "timed calls", &repeat)
      .flag("json", "print one JSON object instead of the table", &json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  rows = rows_arg;
  cols = cols_arg;
  const std::optional<dtype> type = type_name == "fp8"    ? std::optional(dtype::f8_e4m3)
                                    : type_name == "bf16" ? std::optional(dtype::bf16)
                                    : type_name == "f16"  ? std::optional(dtype::f16)
                                    : type_name == "f32"  ? std::optional(dtype::f32)
                                                          : std::nullopt;
  if (!type || rows < 1 || cols < 1 || tokens < 1 || repeat < 1) {
    return report_failure(fail(errc::invalid_argument, "--dtype must be fp8, bf16, f16 or f32; sizes ≥ 1"));
  }

  std::mt19937 rng(3);
  std::vector<std::uint8_t> data(static_cast<std::size_t>(rows * cols) * dtype_size(*type));
  for (std::uint8_t& b : data) b = static_cast<std::uint8_t>(rng() & 0x77);  // finite in every format
  std::vector<std::uint16_t> scales(static_cast<std::size_t>(((rows + 127) / 128) * ((cols + 127) / 128)),
                                    f32_to_bf16(0.01f));
  weight_matrix w{*type, data.data(), rows, cols};
  if (*type == dtype::f8_e4m3) {
    w.scale_type = dtype::bf16;
    w.scales = scales.data();
  }
  std::vector<float> x(static_cast<std::size_t>(tokens * cols), 0.5f), out(static_cast<std::size_t>(tokens * rows));

  cpu::cpu_backend backend(threads);
  cpu::bandwidth_result bandwidth;
  {
    cpu::thread_pool pool(threads);
    bandwidth = cpu::measure_bandwidth(pool);
  }
  backend.matmul(out.data(), x.data(), w, tokens);  // warm-up
  double best = 1e9;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    backend.matmul(out.data(), x.data(), w, tokens);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double gbps = static_cast<double>(w.bytes()) / best / 1e9;
  const double gflops = 2.0 * static_cast<double>(rows * cols) * tokens / best / 1e9;
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"dtype", type_name}, {"rows", rows}, {"cols", cols}, {"tokens", tokens},
                                      {"threads", backend.threads()}, {"kernels", kernel_family()},
                                      {"seconds", best}, {"weight_gbps", gbps}, {"gflops", gflops},
                                      {"memory_read_gbps", bandwidth.read_gbps},
                                      {"bandwidth_fraction", gbps / bandwidth.read_gbps}}
                               .dump());
    return exit_ok;
  }
  fmt::print("matmul           {} [{} x {}] x {} token(s), {} threads, {} kernels\n", type_name, rows, cols, tokens,
             backend.threads(), kernel_family());
  fmt::print("best call        {:>10.3f} ms\n", best * 1e3);
  fmt::print("weights          {:>10.2f} GB/s   ({:.1f}% of the measured {:.2f} GB/s read bandwidth)\n", gbps,
             100.0 * gbps / bandwidth.read_gbps, bandwidth.read_gbps);
  fmt::print("compute          {:>10.2f} GFLOP/s\n", gflops);
  return exit_ok;
}

}  // namespace qcoder::cli
