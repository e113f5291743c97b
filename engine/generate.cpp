// Prefill, then one forward per token with the sampler in between.
#include "engine/generate.h"

#include <algorithm>
#include <chrono>

namespace qcoder::engine {

const char* to_string(finish_reason reason) {
  switch (reason) {
    case finish_reason::length: return "length";
    case finish_reason::stop_token: return "stop";
    case finish_reason::stop_string: return "stop_string";
    case finish_reason::cancelled: return "cancelled";
    case finish_reason::callback: return "callback";
  }
  return "?";
}

result<generation_result> generate(qwen3_next& model, sequence_state& state, const generation_request& request) {
  using clock = std::chrono::steady_clock;
  QCODER_CHECK(request.sampling.validate());
  if (request.prompt.empty()) return fail(errc::invalid_argument, "the prompt is empty");
  if (!request.stop_strings.empty() && !request.token_bytes) {
    return fail(errc::invalid_argument, "stop strings need a tokenizer to decode the output");
  }
  const std::int64_t vocab = model.config().vocab_size;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> history = request.prompt;
  history.reserve(history.size() + static_cast<std::size_t>(request.max_tokens));
  sampler pick(request.sampling, vocab);
  generation_result out;
  std::string text;

  const auto t0 = clock::now();
  result<prefill_report> filled =
      prefill(model, request.cache, request.prompt, state, logits.data(), request.plan, request.stop);
  if (!filled) {
    if (filled.err().code == errc::cancelled) {
      out.reason = finish_reason::cancelled;
      return out;
    }
    return filled.take_error();
  }
  out.prompt_tokens_restored = filled.value().restored;
  const auto t1 = clock::now();
  out.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  for (std::int64_t i = 0; i < request.max_tokens; ++i) {
    if (request.stop.stop_requested()) {
      out.reason = finish_reason::cancelled;
      break;
    }
    const std::int32_t next = pick.sample(logits.data(), history);
    if (std::find(request.stop_ids.begin(), request.stop_ids.end(), next) != request.stop_ids.end()) {
      out.reason = finish_reason::stop_token;
      break;
    }
    out.tokens.push_back(next);
    history.push_back(next);
    if (request.on_token && !request.on_token(next)) {
      out.reason = finish_reason::callback;
      break;
    }
    if (!request.stop_strings.empty()) {
      const std::size_t before = text.size();
      text += request.token_bytes(next);
      bool matched = false;
      for (const std::string& s : request.stop_strings) {
        if (s.empty()) continue;
        // Only a match that ends in the new bytes is new.
        const std::size_t from = before >= s.size() ? before - s.size() + 1 : 0;
        const std::size_t at = text.find(s, from);
        if (at != std::string::npos) {
          out.text_end = std::min(out.text_end, at);
          matched = true;
        }
      }
      if (matched) {
        out.reason = finish_reason::stop_string;
        break;
      }
    }
    if (i + 1 == request.max_tokens) break;  // no forward for a token we will not sample from
    const std::int32_t one[] = {next};
    if (result<void> r = model.forward(one, state, logits.data(), logits_mode::last, request.stop); !r) {
      if (r.err().code == errc::cancelled) {
        out.reason = finish_reason::cancelled;
        break;
      }
      return r.take_error();
    }
  }
  out.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  // The logits always belong to the state's last token (a failed forward empties the state).
  if (request.cache != nullptr && state.length() > 0) {
    request.cache->insert(std::span(history).first(static_cast<std::size_t>(state.length())), state, logits.data());
  }
  return out;
}

}  // namespace qcoder::engine
