// Shared model flags and model loading for the commands.
#include "lsp/cli/model_flags.h"

#include <charconv>

#include <spdlog/spdlog.h>

#include "engine/model_locator.h"

namespace qcoder::cli {

void model_flags::add_to(arg_parser& parser) {
  parser.option("model", "DIR", "model folder; default: the Hugging Face cache (see `qcoder info`)", &model);
  parser.option("threads", "N", "compute threads; 0 = one per hardware thread", &threads);
  parser.flag("mlock", "lock the weights in RAM so the OS never pages them out", &mlock);
  parser.option("batch", "N", "prompt tokens per forward chunk (prefill)", &batch);
}

result<std::unique_ptr<engine::qwen3_next>> model_flags::load() const {
  if (batch < 1) return fail(errc::invalid_argument, "--batch must be ≥ 1 (got {})", batch);
  QCODER_TRY(engine::located_model where, engine::locate_model(engine::model_search::from_environment(model)));
  spdlog::info("loading model from {} ({})", where.dir.string(), where.source);
  engine::model_options options;
  options.threads = threads;
  options.mlock = mlock;
  options.max_batch = batch;
  return engine::qwen3_next::load(where.dir, options);
}

result<std::vector<std::int32_t>> parse_ids(std::string_view text) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i == text.size()) break;
    std::int32_t id = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), id);
    if (ec != std::errc() || id < 0) {
      return fail(errc::invalid_argument, "--ids: '{}' is not a list of token ids (expected e.g. 1,2,3)", text);
    }
    ids.push_back(id);
    i = static_cast<std::size_t>(end - text.data());
    if (i < text.size() && text[i] != ',' && text[i] != ' ') {
      return fail(errc::invalid_argument, "--ids: unexpected '{}' in '{}'", text[i], text);
    }
  }
  if (ids.empty()) return fail(errc::invalid_argument, "--ids: no token ids given");
  return ids;
}

}  // namespace qcoder::cli
