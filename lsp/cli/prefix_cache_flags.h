// The prefix cache flags (--prefix-cache, --prefix-cache-dir) of the commands that serve prompts, and
// opening the cache from them: sized, and loaded from the folder when a cache for this very model was
// saved there. Not thread-safe; used on the main thread at start-up and shutdown.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/memory/prefix_cache.h"
#include "engine/model/qwen3_next.h"
#include "lsp/cli/arg_parser.h"

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

 private:
  std::unique_ptr<engine::prefix_cache> cache_;
  std::string file_;
  std::string identity_;
};

}  // namespace qcoder::cli
