// What several test suites read from the tiny checkpoints in tests/data: the golden prompts and the
// tokenizer (the real Qwen3 tokenizer cut down to the tiny vocabulary).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"

namespace qcoder::testing_support {

inline const std::filesystem::path tiny_model_root = std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next";

// The prompts the golden logits were computed for (token ids).
inline std::vector<std::vector<std::int32_t>> golden_prompts() {
  std::ifstream in(tiny_model_root / "golden" / "prompts.json");
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& p : nlohmann::json::parse(in)) out.push_back(p.get<std::vector<std::int32_t>>());
  return out;
}

// The tiny model's tokenizer, loaded once.
inline const engine::tokenizer& tiny_tokenizer() {
  static const engine::tokenizer tok = [] {
    result<engine::tokenizer> t = engine::tokenizer::load_model_dir(tiny_model_root / "bf16");
    EXPECT_TRUE(t) << t.err().message;
    return std::move(t).value();
  }();
  return tok;
}

}  // namespace qcoder::testing_support
