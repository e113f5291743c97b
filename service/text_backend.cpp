// The local and the remote backend.
#include "service/text_backend.h"

#include <algorithm>
#include <utility>

#include "engine/tokenizer/stream_decoder.h"
#include "service/text_scan.h"

namespace qcoder::service {
namespace {

// The control tokens that end a generation, by text (their ids differ between checkpoints). The ones a
// model usually ends with come first: a server may be given only the first few as stop strings.
constexpr const char* control_stops[] = {"<|endoftext|>", "<|im_end|>",     "<|file_sep|>",   "<|fim_prefix|>", "<|im_start|>",
                                         "<|fim_pad|>",   "<|repo_name|>", "<|fim_suffix|>", "<|fim_middle|>"};

// Tokens a server's count of a prompt may exceed ours by: it tokenizes the text again, and merges across
// the places where we encoded pieces apart may differ.
constexpr std::int64_t retokenize_margin = 16;

// The added tokens' texts, which a server may spell out in its stream (ours does; vLLM does for the ones
// not marked special): left out, as the local decoder leaves the tokens out.
std::vector<std::string> added_texts(const engine::tokenizer& tok) {
  std::vector<std::string> out;
  for (const engine::added_token& t : tok.added_tokens()) out.push_back(t.content);
  return out;
}

}  // namespace

std::vector<std::int32_t> control_stop_ids(const engine::tokenizer& tok) {
  std::vector<std::int32_t> ids;
  for (const char* text : control_stops) {
    if (std::optional<engine::token_id> id = tok.find_token(text)) ids.push_back(*id);
  }
  return ids;
}

engine_backend::engine_backend(std::shared_ptr<const engine::tokenizer> tok, engine::qwen3_next& model,
                               engine::prefix_cache* cache)
    : tok_(std::move(tok)), model_(model), cache_(cache), stop_ids_(control_stop_ids(*tok_)) {}

void engine_backend::add_stop_ids(engine::generation_request& request) const {
  request.stop_ids.insert(request.stop_ids.end(), stop_ids_.begin(), stop_ids_.end());
  for (std::int64_t id : model_.config().eos_token_ids) request.stop_ids.push_back(static_cast<std::int32_t>(id));
}

result<engine::generation_result> engine_backend::generate_tokens(engine::generation_request request) {
  add_stop_ids(request);
  if (request.cache == nullptr) request.cache = cache_;
  // One state for every request, grown when a longer one comes (the cache overwrites its contents).
  const std::int64_t capacity = static_cast<std::int64_t>(request.prompt.size()) + request.max_tokens + 1;
  if (!state_ || state_->capacity() < capacity) state_.emplace(model_.new_state(std::max<std::int64_t>(capacity, 4096)));
  if (request.cache == nullptr) state_->reset();
  return engine::generate(model_, *state_, request);
}

result<text_generated> engine_backend::generate(const text_generation& request) {
  engine::generation_request gen;
  gen.prompt = request.prompt;
  gen.max_tokens = request.max_tokens;
  gen.sampling = request.sampling;
  gen.stop = request.stop;
  gen.plan.snapshot_at = request.snapshot_at;
  gen.speculate = request.speculate;
  gen.lookup = request.lookup;
  engine::stream_decoder decoder(*tok_, /*skip_added=*/true);
  std::string piece;
  gen.on_token = [&](std::int32_t id) {
    piece.clear();
    if (!decoder.push(id, piece)) return false;
    return !request.on_text || request.on_text(piece);
  };
  QCODER_TRY(engine::generation_result r, generate_tokens(std::move(gen)));
  if (r.reason != engine::finish_reason::cancelled && r.reason != engine::finish_reason::callback) {
    piece.clear();
    decoder.finish(piece);
    if (!piece.empty() && request.on_text) request.on_text(piece);
  }
  text_generated out;
  out.reason = r.reason;
  out.prompt_tokens = request.prompt.size();
  out.restored_tokens = r.prompt_tokens_restored;
  out.generated_tokens = r.tokens.size();
  out.prefill_seconds = r.prefill_seconds;
  out.decode_seconds = r.decode_seconds;
  out.drafted = r.drafted;
  out.accepted = r.accepted;
  out.forward_passes = r.forward_passes;
  return out;
}

std::optional<double> engine_backend::expert_hit_rate() const {
  const engine::expert_store* experts = model_.experts();
  if (experts == nullptr) return std::nullopt;
  const engine::expert_layer_stats t = experts->totals();
  if (t.hits + t.misses == 0) return std::nullopt;
  return static_cast<double>(t.hits) / static_cast<double>(t.hits + t.misses);
}

remote_backend::remote_backend(std::shared_ptr<const engine::tokenizer> tok, std::unique_ptr<remote_completions> client,
                               remote_prompt form)
    : tok_(std::move(tok)), client_(std::move(client)), form_(form) {
  for (const char* text : control_stops) stop_texts_.emplace_back(text);
}

std::string remote_backend::where() const { return client_->server().text(); }

result<text_generated> remote_backend::generate(const text_generation& request) {
  remote_request remote;
  if (form_ == remote_prompt::tokens) {
    remote.prompt_ids = request.prompt;
  } else {
    QCODER_TRY(remote.prompt, tok_->decode(request.prompt, /*skip_added=*/false));
  }
  remote.max_tokens = request.max_tokens;
  // A server refuses a request whose prompt and output do not fit its context; the local engine has no
  // such limit but memory, so long limits (an edit's) are cut to what the server holds.
  if (std::optional<std::int64_t> context = client_->context_tokens(request.stop)) {
    const std::int64_t room = *context - static_cast<std::int64_t>(request.prompt.size()) - retokenize_margin;
    if (room < 1) {
      return fail(errc::invalid_argument, "the prompt ({} tokens) does not fit the context of the model at {} ({} tokens)",
                  request.prompt.size(), client_->server().text(), *context);
    }
    remote.max_tokens = std::min(remote.max_tokens, room);
  }
  remote.greedy = request.sampling.greedy;
  remote.temperature = request.sampling.temperature;
  remote.top_p = request.sampling.top_p;
  remote.top_k = request.sampling.top_k;
  if (!request.sampling.greedy) remote.seed = request.sampling.seed;
  remote.stop = stop_texts_;
  bool told_to_stop = false;
  std::size_t deltas = 0;
  text_dropper added(added_texts(*tok_));
  result<remote_result> done = client_->stream(
      remote,
      [&](std::string_view text) {
        ++deltas;
        const std::string shown = added.feed(text);
        if (!request.on_text || request.on_text(shown)) return true;
        told_to_stop = true;
        return false;
      },
      request.stop);
  if (done && !told_to_stop && request.on_text) {
    if (const std::string rest = added.finish(); !rest.empty()) request.on_text(rest);
  }
  text_generated out;
  out.prompt_tokens = request.prompt.size();
  if (!done && done.err().code == errc::cancelled) {
    out.reason = engine::finish_reason::cancelled;
    return out;
  }
  if (!done) return done.take_error();
  if (told_to_stop) {
    out.reason = engine::finish_reason::callback;
  } else if (done->finish_reason == "length") {
    out.reason = engine::finish_reason::length;
  } else if (done->finish_reason == "cancelled") {
    out.reason = engine::finish_reason::cancelled;
  } else {
    out.reason = engine::finish_reason::stop_token;
  }
  // The server's own counts when it sent them; the server tokenized the text again, so they may differ a
  // little from ours.
  if (done->prompt_tokens > 0) out.prompt_tokens = done->prompt_tokens;
  out.generated_tokens = done->completion_tokens > 0 ? done->completion_tokens : deltas;
  out.restored_tokens = done->cached_tokens;
  out.prefill_seconds = done->first_text_seconds;
  out.decode_seconds = std::max(0.0, done->seconds - done->first_text_seconds);
  return out;
}

}  // namespace qcoder::service
