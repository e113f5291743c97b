// `qcoder make-model`: writes a randomly initialised qwen3_next checkpoint in the real Hugging Face layout
// (config.json, generation_config.json, model.safetensors or shards + model.safetensors.index.json, and a
// tokenizer cut down to the vocabulary), so that every code path can run without downloading 80 GB.
//
// Tensor names, order, dtypes and the FP8 conventions are those of the tiny test checkpoints in
// tests/data/tiny-qwen3next, which follow the published Qwen3-Next checkpoints. Weights are a pure function
// of (seed, tensor name, 128-row group), so the output does not depend on the thread count or sharding, and
// a BF16 and an FP8 model made with the same seed hold the same master values.
// The model is streamed to disk in chunks; each file is written under a temporary name and renamed when
// complete. make_model() uses worker threads internally; call it from one thread at a time per folder.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "kernels/common/result.h"

namespace qcoder::engine {

struct make_model_options {
  std::filesystem::path out_dir;
  std::string preset = "tiny";            // "tiny" (the test checkpoints' dims) or "slice" (real dims, 4 layers)
  bool fp8 = false;                       // F8_E4M3 Linear weights + BF16 weight_scale_inv per 128x128 block
  std::int64_t layers = 0;                // 0: the preset's
  std::int64_t experts = 0;               // 0: the preset's (top-k is clamped to it)
  int shards = 1;                         // >1: model-0000i-of-0000N.safetensors + index
  std::uint64_t seed = 0;
  std::filesystem::path tokenizer_dir;    // holds the real Qwen3 tokenizer.json; empty: no tokenizer written
  int threads = 0;                        // 0: all hardware threads
};

struct make_model_summary {
  std::size_t tensors = 0;
  std::uint64_t bytes = 0;                     // tensor data, as metadata.total_size
  std::vector<std::filesystem::path> files;    // every file written
  double seconds = 0;
};

result<make_model_summary> make_model(const make_model_options& options);

// The hyper-parameters make_model writes for a preset (layers/experts 0 = the preset's).
result<model_config> preset_config(std::string_view preset, std::int64_t layers = 0, std::int64_t experts = 0);

// Writes tokenizer.json + tokenizer_config.json for `vocab_size` ids into out_dir, from the real Qwen3
// tokenizer in source_dir: copied as is when the vocabulary holds all of it, else cut down to the 256 byte
// symbols, the first merges and the added tokens renumbered into the top ids (<|endoftext|> at vocab-2,
// <|im_end|> at vocab-1, the others in their order just below).
result<void> write_tokenizer(const std::filesystem::path& source_dir, std::int64_t vocab_size, const std::filesystem::path& out_dir);

// FP8 building blocks (exposed for tests).
// Round to nearest even into OCP E4M3 ("e4m3fn"), saturating at ±448; NaN maps to 0x7f; a result of zero
// is +0 (0x00) whatever the sign, as in the tiny FP8 test checkpoint.
std::uint8_t f32_to_f8_e4m3(float value);
// The BF16 scale of a block whose largest magnitude is amax: the smallest bf16 >= amax / 448 (1.0 for 0).
std::uint16_t fp8_block_scale(float amax);
// Quantises a row-major [rows, cols] matrix: scales [ceil(rows/block[0]), ceil(cols/block[1])] BF16 bits,
// q[i] = e4m3(w[i] / scale of its block).
void quantize_fp8(std::span<const float> w, std::int64_t rows, std::int64_t cols, std::array<std::int32_t, 2> block,
                  std::span<std::uint8_t> q, std::span<std::uint16_t> scales);

}  // namespace qcoder::engine
