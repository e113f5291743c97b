// Prefill, then one forward per token with the sampler in between.
#include "engine/generate.h"

#include <algorithm>
#include <chrono>
#include <optional>

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

prompt_lookup::prompt_lookup(std::span<const std::int32_t> source) : source_(source.begin(), source.end()) {}

std::vector<std::int32_t> prompt_lookup::draft(std::span<const std::int32_t> history, std::int64_t room) {
  if (cooldown_ > 0) {
    --cooldown_;
    return {};
  }
  const std::size_t limit = static_cast<std::size_t>(std::min<std::int64_t>(room, width_));
  if (limit == 0) return {};
  for (std::size_t n = std::min<std::size_t>(max_ngram, history.size()); n >= min_ngram; --n) {
    const std::span<const std::int32_t> tail = history.last(n);
    const auto matches = [&](std::size_t at) {
      return at + n <= source_.size() && std::equal(tail.begin(), tail.end(), source_.begin() + static_cast<std::ptrdiff_t>(at));
    };
    // Where the last drafts left off (a rewrite walks through its source: the newest token is the one
    // after the drafts taken), else the first match from there on, else the first match.
    std::optional<std::size_t> found;
    if (resume_ + 1 >= n && matches(resume_ + 1 - n)) found = resume_ + 1 - n;
    std::optional<std::size_t> first;
    for (std::size_t at = 0; !found && at + n < source_.size(); ++at) {
      if (!matches(at)) continue;
      if (at + n > resume_) found = at;
      if (!first) first = at;
    }
    if (!found) found = first;
    if (!found || *found + n >= source_.size()) continue;
    const std::size_t from = *found + n;
    const std::size_t count = std::min(limit, source_.size() - from);
    resume_ = from;
    return {source_.begin() + static_cast<std::ptrdiff_t>(from), source_.begin() + static_cast<std::ptrdiff_t>(from + count)};
  }
  return {};
}

void prompt_lookup::report(std::size_t drafted, std::size_t agreed) {
  resume_ += agreed;
  confident_ = agreed == drafted;
  if (agreed == drafted) {
    width_ = std::min<std::int64_t>(width_ * 2, max_width);
    failures_ = 0;
  } else if (agreed > 0) {
    width_ = std::max<std::int64_t>(2, static_cast<std::int64_t>(agreed) + 1);
    failures_ = 0;
  } else {
    // Nothing agreed: draft less, and less often, until something does.
    width_ = std::max<std::int64_t>(1, width_ / 2);
    failures_ = std::min(failures_ + 1, 6);
    cooldown_ = (1 << failures_) - 1;
  }
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

  // A sampled token through the stop rules and the callback. False when generation ends here (out.reason
  // says why); `kept` tells whether the token joined the output (a stop id does not).
  const auto take = [&](std::int32_t next, bool& kept) {
    kept = false;
    if (std::find(request.stop_ids.begin(), request.stop_ids.end(), next) != request.stop_ids.end()) {
      out.reason = finish_reason::stop_token;
      return false;
    }
    out.tokens.push_back(next);
    history.push_back(next);
    kept = true;
    if (request.on_token && !request.on_token(next)) {
      out.reason = finish_reason::callback;
      return false;
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
        return false;
      }
    }
    // No forward for a token we will not sample from.
    if (static_cast<std::int64_t>(out.tokens.size()) == request.max_tokens) {
      out.reason = finish_reason::length;
      return false;
    }
    return true;
  };
  // One forward; false when it failed (out.reason or `failure` set).
  std::optional<error> failure;
  const auto run = [&](std::span<const std::int32_t> tokens, float* into, logits_mode mode) {
    ++out.forward_passes;
    if (result<void> r = model.forward(tokens, state, into, mode, request.stop); !r) {
      if (r.err().code == errc::cancelled) {
        out.reason = finish_reason::cancelled;
      } else {
        failure = r.take_error();
      }
      return false;
    }
    return true;
  };

  std::optional<prompt_lookup> lookup;
  if (request.speculate && request.sampling.greedy) lookup.emplace(request.lookup.empty() ? request.prompt : request.lookup);
  sequence_state::rollback_point rollback;
  std::vector<float> batch_logits;
  std::vector<std::int32_t> batch;
  while (static_cast<std::int64_t>(out.tokens.size()) < request.max_tokens) {
    if (request.stop.stop_requested()) {
      out.reason = finish_reason::cancelled;
      break;
    }
    const std::int32_t next = pick.sample(logits.data(), history);
    bool kept = false;
    if (!take(next, kept)) break;
    const std::int32_t one[] = {next};
    // Two ways to check drafts. While drafts are being taken, the token and its drafts run in one pass.
    // Otherwise the token runs alone first and the first draft is checked against its logits: a wrong
    // draft then costs no forward pass at all (the next step samples the same token again), and a right
    // one is what plain decoding takes next, so the drafts run in one pass whose logits check the others.
    const bool together = lookup && lookup->confident();
    if (!together && !run(one, logits.data(), logits_mode::last)) break;
    const std::vector<std::int32_t> drafts =
        lookup ? lookup->draft(history, request.max_tokens - static_cast<std::int64_t>(out.tokens.size()))
               : std::vector<std::int32_t>{};
    if (drafts.empty()) {
      if (together && !run(one, logits.data(), logits_mode::last)) break;
      continue;
    }
    if (!together && pick.sample(logits.data(), history) != drafts[0]) {
      out.drafted += static_cast<std::int64_t>(drafts.size());
      lookup->report(drafts.size(), 0);
      continue;
    }
    batch.clear();
    if (together) batch.push_back(next);
    batch.insert(batch.end(), drafts.begin(), drafts.end());
    const std::size_t lead = batch.size() - drafts.size();  // 1 with the token in the pass, else 0
    state.save(rollback);
    batch_logits.resize(batch.size() * static_cast<std::size_t>(vocab));
    if (!run(batch, batch_logits.data(), logits_mode::all)) break;
    // Draft j is checked against the logits after the token before it.
    const auto row = [&](std::size_t j) {
      return j + lead == 0 ? logits.data() : batch_logits.data() + (j + lead - 1) * static_cast<std::size_t>(vocab);
    };
    std::size_t keep = lead;  // tokens of the pass that plain decoding would have run through the model
    std::size_t agreed = 0;
    bool ended = false;
    for (std::size_t j = 0; j < drafts.size(); ++j) {
      if (pick.sample(row(j), history) != drafts[j]) break;
      ++agreed;
      if (!take(drafts[j], kept)) {
        ended = true;
        break;
      }
      keep = lead + j + 1;
    }
    out.drafted += static_cast<std::int64_t>(drafts.size());
    out.accepted += static_cast<std::int64_t>(agreed);
    lookup->report(drafts.size(), agreed);
    if (keep == batch.size()) {
      std::copy_n(batch_logits.data() + (batch.size() - 1) * static_cast<std::size_t>(vocab), vocab, logits.data());
    } else {
      // Take back what plain decoding would not have run: the state as before the pass, then only what
      // stays (with nothing, the logits in hand are already right).
      state.restore(rollback);
      if (keep > 0 && !run(std::span(batch).first(keep), logits.data(), logits_mode::last)) break;
    }
    if (ended) break;
  }
  if (failure) return *failure;
  out.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  // The logits always belong to the state's last token (a failed forward empties the state).
  if (request.cache != nullptr && state.length() > 0) {
    request.cache->insert(std::span(history).first(static_cast<std::size_t>(state.length())), state, logits.data());
  }
  return out;
}

}  // namespace qcoder::engine
