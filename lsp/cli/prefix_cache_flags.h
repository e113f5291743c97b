// The prefix cache flags (--prefix-cache, --prefix-cache-dir) of the commands that serve prompts, and
// opening the cache from them: sized, and loaded from the folder when a cache for this very model was
// saved there. Not thread-safe; used on the main thread at start-up and shutdown.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "lsp/cli/arg_parser.h"
#include "lsp/cli/model_flags.h"
#include "service/inference_worker.h"

namespace qcoder::cli {

struct prefix_cache_flags {
  std::string size = "auto";  // SIZE, "auto" or "none"
  std::string dir;            // saved there on clean exit, loaded at start; empty: not kept

  void add_to(arg_parser& parser);
  // The budget in bytes (0 for none); auto: an eighth of the available memory, at most 4 GiB.
  result<std::uint64_t> budget() const;
};

// A prefix cache opened from the flags, saved by save() on clean shutdown.
class opened_prefix_cache {
 public:
  // nullptr cache when the budget is none. A saved cache that cannot be used (another model, corrupt) is
  // reported on the log and replaced; it is not an error.
  static result<opened_prefix_cache> open(const prefix_cache_flags& flags, const engine::qwen3_next& model);

  engine::prefix_cache* get() const { return cache_.get(); }
  // Writes the cache to the folder (when one was given). Errors are returned, and nothing is half-written.
  result<void> save() const;
  // For an owner elsewhere (the inference worker): the cache, and a function that saves a cache to this
  // one's file (does nothing without a folder).
  std::unique_ptr<engine::prefix_cache> release() { return std::move(cache_); }
  std::function<result<void>(const engine::prefix_cache&)> saver() const;

 private:
  std::unique_ptr<engine::prefix_cache> cache_;
  std::string file_;
  std::string identity_;
};

// Loads the model and opens its prefix cache from the flags: what the inference worker runs at start.
result<service::loaded_engine> load_engine(const model_flags& model, const prefix_cache_flags& cache);

}  // namespace qcoder::cli
