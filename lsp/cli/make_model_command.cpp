// `qcoder make-model`: writes a random qwen3_next checkpoint (see engine/make_model.h) and prints where it
// went and how big it is on stdout. Runs on the main thread; make_model uses its own worker threads.
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "engine/make_model.h"
#include "lsp/cli/command.h"

#ifndef QCODER_QWEN3_TOKENIZER_DIR
#define QCODER_QWEN3_TOKENIZER_DIR ""
#endif

namespace qcoder::cli {

int run_make_model(args_view args) {
  std::string out;
  std::string preset = "tiny";
  std::string dtype_text = "bf16";
  int layers = 0;
  int experts = 0;
  int shards = 1;
  int threads = 0;
  std::uint64_t seed = 0;
  std::string tokenizer = QCODER_QWEN3_TOKENIZER_DIR;
  arg_parser parser(
      "make-model --out DIR [--preset tiny|slice] [--dtype bf16|fp8] [--layers N] [--experts N] [--shards N] [--seed S]",
      "Write a randomly initialised qwen3_next checkpoint in the Hugging Face layout: config.json,\n"
      "generation_config.json, model.safetensors (or N shards + model.safetensors.index.json) and a tokenizer\n"
      "for its vocabulary. `tiny` has the dimensions of tests/data/tiny-qwen3next; `slice` has the real\n"
      "Qwen3-Coder-Next dimensions with 4 layers (about 9.5 GB at FP8, 18 GB at BF16, mtp layer included).");
  parser.option("out", "DIR", "output folder (created if needed; model files of an earlier run are replaced)", &out);
  parser.option("preset", "NAME", "tiny or slice", &preset);
  parser.option("dtype", "TYPE", "bf16, or fp8 (E4M3 weights with a BF16 scale per 128x128 block)", &dtype_text);
  parser.option("layers", "N", "number of layers (0: the preset's: 8 for tiny, 4 for slice)", &layers);
  parser.option("experts", "N", "routed experts per layer (0: the preset's: 16 for tiny, 512 for slice)", &experts);
  parser.option("shards", "N", "number of safetensors files", &shards);
  parser.option("seed", "S", "random seed; the same seed gives the same bytes", &seed);
  parser.option("tokenizer", "DIR", "folder with the real Qwen3 tokenizer.json + tokenizer_config.json ('none': write no tokenizer)", &tokenizer);
  parser.option("threads", "N", "worker threads (0: all cores)", &threads);
  parser.required("out");
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  if (dtype_text != "bf16" && dtype_text != "fp8") {
    fmt::print(stderr, "qcoder: --dtype '{}': expected bf16 or fp8\n", dtype_text);
    return exit_usage;
  }
  if (preset != "tiny" && preset != "slice") {
    fmt::print(stderr, "qcoder: --preset '{}': expected tiny or slice\n", preset);
    return exit_usage;
  }
  if (layers < 0 || experts < 0 || shards < 1 || threads < 0) {
    fmt::print(stderr, "qcoder: --layers, --experts and --threads must be >= 0 and --shards >= 1\n");
    return exit_usage;
  }
  engine::make_model_options options;
  options.out_dir = out;
  options.preset = preset;
  options.fp8 = dtype_text == "fp8";
  options.layers = layers;
  options.experts = experts;
  options.shards = shards;
  options.seed = seed;
  options.threads = threads;
  if (tokenizer != "none" && !tokenizer.empty()) options.tokenizer_dir = tokenizer;

  result<engine::make_model_summary> made = engine::make_model(options);
  if (!made) return report_failure(made.err());
  fmt::print("wrote {}: {} tensors, {:.3f} GB of weights in {} files, {:.1f} s\n", out, made->tensors, made->bytes / 1e9,
             made->files.size(), made->seconds);
  return exit_ok;
}

}  // namespace qcoder::cli
