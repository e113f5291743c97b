// Prefix cache flags, and the cache's file under --prefix-cache-dir.
#include "lsp/cli/prefix_cache_flags.h"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace qcoder::cli {

void prefix_cache_flags::add_to(arg_parser& parser) {
  parser.option("prefix-cache", "SIZE",
                "memory for cached prompt prefixes (K/V pages and DeltaNet snapshots), e.g. 2GiB; 'auto':\n"
                "                     an eighth of the available memory, at most 4 GiB; 'none' disables it",
                &size);
  parser.option("prefix-cache-dir", "DIR", "save the prefix cache there at exit and load it at start", &dir);
}

result<std::uint64_t> prefix_cache_flags::budget() const {
  if (size == "none") return std::uint64_t{0};
  if (size != "auto") return parse_size(size);
  const std::uint64_t available = available_memory_bytes();
  return std::min<std::uint64_t>(available / 8, 4ull << 30);
}

result<opened_prefix_cache> opened_prefix_cache::open(const prefix_cache_flags& flags, const engine::qwen3_next& model) {
  opened_prefix_cache out;
  QCODER_TRY(const std::uint64_t budget, flags.budget());
  if (budget == 0) return out;
  out.cache_ = std::make_unique<engine::prefix_cache>(model.config(), engine::prefix_cache_options{budget});
  if (flags.dir.empty()) return out;
  QCODER_TRY(out.identity_, engine::model_identity(model.weights_file().dir()));
  out.file_ = (std::filesystem::path(flags.dir) / ("prefix-cache-" + out.identity_ + ".bin")).string();
  std::error_code ec;
  if (!std::filesystem::exists(out.file_, ec)) {
    spdlog::info("prefix cache: starting empty ({} does not exist yet)", out.file_);
    return out;
  }
  if (result<void> loaded = out.cache_->load(out.file_, out.identity_); !loaded) {
    spdlog::warn("prefix cache: not loaded, starting empty: {}", loaded.err().message);
  } else {
    spdlog::info("prefix cache: loaded {} snapshots, {:.1f} MiB from {}", out.cache_->snapshot_count(),
                 static_cast<double>(out.cache_->bytes()) / (1 << 20), out.file_);
  }
  return out;
}

std::function<result<void>(const engine::prefix_cache&)> opened_prefix_cache::saver() const {
  return [file = file_, identity = identity_](const engine::prefix_cache& cache) -> result<void> {
    if (file.empty()) return ok();
    QCODER_CHECK(cache.save(file, identity));
    spdlog::info("prefix cache: saved {} snapshots, {:.1f} MiB to {}", cache.snapshot_count(),
                 static_cast<double>(cache.bytes()) / (1 << 20), file);
    return ok();
  };
}

result<void> opened_prefix_cache::save() const {
  if (!cache_) return ok();
  return saver()(*cache_);
}

result<service::loaded_engine> load_engine(const model_flags& model, const prefix_cache_flags& cache) {
  service::loaded_engine out;
  QCODER_TRY(out.model, model.load());
  QCODER_TRY(opened_prefix_cache opened, opened_prefix_cache::open(cache, *out.model));
  out.save_cache = opened.saver();
  out.cache = opened.release();
  return out;
}

}  // namespace qcoder::cli
