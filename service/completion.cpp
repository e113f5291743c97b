// Mode, prompt, generation, filter.
#include "service/completion.h"

#include <algorithm>

#include <spdlog/spdlog.h>


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
  return create(std::make_shared<const engine::tokenizer>(std::move(loaded)), std::move(options));
}

result<std::unique_ptr<completion_service>> completion_service::create(std::shared_ptr<const engine::tokenizer> tok,
                                                                       context::prompt_options options) {
  QCODER_TRY(context::prompt_builder builder, context::prompt_builder::create(*tok, options));
  return std::unique_ptr<completion_service>(new completion_service(std::move(tok), std::move(builder)));
}

completion_service::completion_service(std::shared_ptr<const engine::tokenizer> tok, context::prompt_builder builder)
    : tok_(std::move(tok)), builder_(std::move(builder)) {}

result<completion_result> completion_service::complete(text_backend& backend, const completion_request& request) {
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
    bool keep_going = true;
    text_generation gen;
    gen.prompt.assign(prompt.ids.begin(), prompt.ids.end());
    gen.max_tokens = request.max_tokens;
    gen.snapshot_at = snapshot_points(prompt);
    gen.stop = request.stop;
    if (alt == 0) {
      gen.sampling.greedy = true;
    } else {
      gen.sampling.greedy = false;
      gen.sampling.temperature = 0.8f;
      gen.sampling.top_p = 0.95f;
      gen.sampling.seed = static_cast<std::uint64_t>(alt);
    }
    gen.on_text = [&](std::string_view piece) {
      const bool stop_now = filter.feed(piece);
      if (alt == 0 && request.on_partial && !filter.text().empty()) keep_going = request.on_partial(filter.text());
      return !stop_now && keep_going;
    };
    QCODER_TRY(text_generated generated, backend.generate(gen));
    if (alt == 0) {
      out.restored_tokens = generated.restored_tokens;
      out.prefill_seconds = generated.prefill_seconds;
    }
    out.decode_seconds += generated.decode_seconds;
    out.generated_tokens += generated.generated_tokens;
    if (generated.reason == engine::finish_reason::cancelled) {
      out.cancelled = true;
      break;
    }
    const std::string text = filter.finish();
    if (!text.empty() && std::find(out.items.begin(), out.items.end(), text) == out.items.end()) out.items.push_back(text);
  }
  return out;
}

}  // namespace qcoder::service
