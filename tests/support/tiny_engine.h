// The tiny bf16 checkpoint loaded as the inference worker wants it: one thread, and a prefix cache of
// `cache_bytes`. For the suites that run the model behind a service (service, serve, lsp).
#pragma once

#include <cstdint>
#include <memory>

#include "service/inference_worker.h"
#include "tests/support/tiny_model.h"

namespace qcoder::testing_support {

inline result<service::loaded_engine> load_tiny_engine(std::uint64_t cache_bytes = 16u << 20) {
  engine::model_options options;
  options.threads = 1;
  QCODER_TRY(std::unique_ptr<engine::qwen3_next> model, engine::qwen3_next::load(tiny_model_root / "bf16", options));
  service::loaded_engine e;
  e.cache = std::make_unique<engine::prefix_cache>(model->config(), engine::prefix_cache_options{cache_bytes});
  e.model = std::move(model);
  return e;
}

}  // namespace qcoder::testing_support
