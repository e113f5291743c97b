// Mode, prompt, generation, filter.
#include "service/completion.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/generate.h"
#include "engine/tokenizer/stream_decoder.h"

namespace qcoder::service {
namespace {

// Where the next request is likely to resume: after the blocks that do not depend on the cursor (repo,
// imports, used names, snippets), i.e. where the file's own text starts, after the scope headers, and
// after the suffix (the next keystroke on the same line changes only the middle).
std::vector<std::int64_t> snapshot_points(const context::prompt& prompt) {
  std::vector<std::int64_t> points;
  std::int64_t at = 0;
  for (const context::prompt_block& block : prompt.blocks) {
    if (block.kind == context::block_kind::file || block.kind == context::block_kind::prefix ||
        block.kind == context::block_kind::middle) {
      points.push_back(at);
    }
    at += static_cast<std::int64_t>(block.tokens);
  }
  return points;
}

}  // namespace

result<std::unique_ptr<completion_service>> completion_service::create(const std::filesystem::path& model_dir,
                                                                       context::prompt_options options) {
  QCODER_TRY(engine::tokenizer loaded, engine::tokenizer::load_model_dir(model_dir));
  auto tok = std::make_unique<engine::tokenizer>(std::move(loaded));
  QCODER_TRY(context::prompt_builder builder, context::prompt_builder::create(*tok, options));
  // A FIM completion ends at the end of text or wherever the model starts a new part of the format.
  std::vector<std::int32_t> stops;
  for (const char* text : {"<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|fim_prefix|>",
                           "<|fim_suffix|>", "<|fim_middle|>", "<|im_end|>", "<|im_start|>"}) {
    if (std::optional<engine::token_id> id = tok->find_token(text)) stops.push_back(*id);
  }
  return std::unique_ptr<completion_service>(new completion_service(std::move(tok), std::move(builder), std::move(stops)));
}

completion_service::completion_service(std::unique_ptr<engine::tokenizer> tok, context::prompt_builder builder,
                                       std::vector<std::int32_t> stop_ids)
    : tok_(std::move(tok)), builder_(std::move(builder)), stop_ids_(std::move(stop_ids)) {}

result<completion_result> completion_service::complete(engine::qwen3_next& model, engine::prefix_cache* cache,
                                                       const completion_request& request) {
  completion_result out;
  if (request.cursor > request.text.size()) {
    return fail(errc::invalid_argument, "cursor {} is past the end of the text ({} bytes)", request.cursor, request.text.size());
  }
  context::document doc(request.path, request.lang, request.text);
  const context::source_view view = doc.view();
  const context::completion_plan plan = context::plan_completion(view, request.cursor);
  out.mode = plan.mode;
  out.reason = plan.reason;
  if (plan.mode == context::completion_mode::none) return out;

  QCODER_TRY(context::prompt prompt, builder_.build({view, request.cursor, request.index, request.recent}));
  out.prompt_tokens = prompt.tokens();
  if (request.on_prompt) request.on_prompt();

  for (int alt = 0; alt < std::max(1, request.alternatives); ++alt) {
    if (request.stop.stop_requested()) {
      out.cancelled = true;
      break;
    }
    context::completion_filter filter(plan);
    engine::stream_decoder decoder(*tok_, /*skip_added=*/true);
    std::string piece;
    bool keep_going = true;
    engine::generation_request gen;
    gen.prompt.assign(prompt.ids.begin(), prompt.ids.end());
    gen.max_tokens = request.max_tokens;
    gen.cache = cache;
    gen.plan.snapshot_at = snapshot_points(prompt);
    gen.stop = request.stop;
    if (alt == 0) {
      gen.sampling.greedy = true;
    } else {
      gen.sampling.greedy = false;
      gen.sampling.temperature = 0.8f;
      gen.sampling.top_p = 0.95f;
      gen.sampling.seed = static_cast<std::uint64_t>(alt);
    }
    gen.on_token = [&](std::int32_t id) {
      piece.clear();
      if (!decoder.push(id, piece)) return false;
      const bool stop_now = filter.feed(piece);
      if (alt == 0 && request.on_partial && !filter.text().empty()) keep_going = request.on_partial(filter.text());
      return !stop_now && keep_going;
    };
    QCODER_TRY(engine::generation_result generated, generate(model, std::move(gen)));
    if (alt == 0) {
      out.restored_tokens = generated.prompt_tokens_restored;
      out.prefill_seconds = generated.prefill_seconds;
    }
    out.decode_seconds += generated.decode_seconds;
    out.generated_tokens += generated.tokens.size();
    if (generated.reason == engine::finish_reason::cancelled) {
      out.cancelled = true;
      break;
    }
    piece.clear();
    decoder.finish(piece);
    filter.feed(piece);
    const std::string text = filter.finish();
    if (!text.empty() && std::find(out.items.begin(), out.items.end(), text) == out.items.end()) out.items.push_back(text);
  }
  return out;
}

result<engine::generation_result> completion_service::generate(engine::qwen3_next& model,
                                                               engine::generation_request request) {
  add_stop_ids(model, request);
  // One state for every request, grown when a longer one comes (the cache overwrites its contents).
  const std::int64_t capacity = static_cast<std::int64_t>(request.prompt.size()) + request.max_tokens + 1;
  if (!state_ || state_->capacity() < capacity) state_.emplace(model.new_state(std::max<std::int64_t>(capacity, 4096)));
  if (request.cache == nullptr) state_->reset();
  return engine::generate(model, *state_, request);
}

void completion_service::add_stop_ids(const engine::qwen3_next& model, engine::generation_request& request) const {
  request.stop_ids.insert(request.stop_ids.end(), stop_ids_.begin(), stop_ids_.end());
  for (std::int64_t id : model.config().eos_token_ids) request.stop_ids.push_back(static_cast<std::int32_t>(id));
}

}  // namespace qcoder::service
