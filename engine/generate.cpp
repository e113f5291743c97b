// Prefill, then one forward per token with the sampler in between.
#include "engine/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <utility>

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

namespace {

// One sequence's decoding as a series of forward passes, so that a caller can run the passes of many
// sequences together. After the prompt's logits are in logits(): next_pass() says what to run (false:
// finished), complete() takes that pass's logits rows, and so on; finish() closes the result.
class sequence_decoder {
 public:
  sequence_decoder(const generation_request& request, sequence_state& state, std::int64_t vocab)
      : request_(request),
        state_(state),
        vocab_(vocab),
        pick_(request.sampling, vocab),
        logits_(static_cast<std::size_t>(vocab)),
        history_(request.prompt) {
    history_.reserve(history_.size() + static_cast<std::size_t>(std::max<std::int64_t>(0, request.max_tokens)));
    if (request.speculate && request.sampling.greedy) {
      lookup_.emplace(request.lookup.empty() ? request.prompt : request.lookup);
    }
  }

  float* logits() { return logits_.data(); }
  generation_result& result() { return out_; }
  sequence_state& state() { return state_; }

  // The tokens of the pass to run next and how many logits rows it wants (1 or all); false when the
  // sequence is finished (out.reason says why). Calling it again before complete() gives the same pass.
  bool next_pass() {
    while (phase_ != phase::done && phase_ != phase::running) advance();
    return phase_ == phase::running;
  }
  std::span<const std::int32_t> pass_tokens() const { return pass_; }
  logits_mode pass_mode() const { return pass_mode_; }

  // The pass ran: `rows` are its logits (one row for mode last, one per token for all).
  void complete(float* rows) {
    ++out_.forward_passes;
    const auto vocab = static_cast<std::size_t>(vocab_);
    if (after_ != phase::check_drafts) {
      std::copy_n(rows, vocab, logits_.data());
      phase_ = after_;
      return;
    }
    // Draft j is checked against the logits after the token before it.
    const auto row = [&](std::size_t j) { return j + lead_ == 0 ? logits_.data() : rows + (j + lead_ - 1) * vocab; };
    std::size_t keep = lead_;  // tokens of the pass that plain decoding would have run through the model
    std::size_t agreed = 0;
    bool ended = false;
    for (std::size_t j = 0; j < drafts_.size(); ++j) {
      if (pick(row(j)) != drafts_[j]) break;
      ++agreed;
      if (!take(drafts_[j])) {
        ended = true;
        break;
      }
      keep = lead_ + j + 1;
    }
    out_.drafted += static_cast<std::int64_t>(drafts_.size());
    out_.accepted += static_cast<std::int64_t>(agreed);
    lookup_->report(drafts_.size(), agreed);
    const phase then = ended ? phase::done : phase::sample;
    if (keep == batch_.size()) {
      std::copy_n(rows + (batch_.size() - 1) * vocab, vocab, logits_.data());
      phase_ = then;
    } else {
      // Take back what plain decoding would not have run: the state as before the pass, then only what
      // stays (with nothing, the logits in hand are already right).
      state_.restore(rollback_);
      if (keep > 0) {
        run(std::span(batch_).first(keep), logits_mode::last, then);
      } else {
        phase_ = then;
      }
    }
  }

  // The pass failed: cancelled, or an error (the state was reset by the model).
  void cancel() {
    out_.reason = finish_reason::cancelled;
    phase_ = phase::done;
  }

  // Closes the result; with a cache, the sequence (prompt + output) goes into it.
  generation_result finish(double decode_seconds) {
    out_.decode_seconds = decode_seconds;
    // The logits always belong to the state's last token (a failed forward empties the state).
    if (request_.cache != nullptr && state_.length() > 0) {
      request_.cache->insert(std::span(history_).first(static_cast<std::size_t>(state_.length())), state_,
                             logits_.data());
    }
    return std::move(out_);
  }

 private:
  // sample: pick the next token from logits(); after_single: the token ran alone, try drafts; running: a
  // pass is waiting to run (after_ says where its result goes); check_drafts: a pass of drafts to verify.
  enum class phase { sample, after_single, running, check_drafts, done };

  void run(std::span<const std::int32_t> tokens, logits_mode mode, phase after) {
    if (tokens.data() != batch_.data()) batch_.assign(tokens.begin(), tokens.end());
    pass_ = std::span(batch_).first(tokens.size());
    pass_mode_ = mode;
    after_ = after;
    phase_ = phase::running;
  }

  // One step of the state machine that is not a forward pass.
  void advance() {
    if (phase_ == phase::sample) {
      if (static_cast<std::int64_t>(out_.tokens.size()) >= request_.max_tokens) {
        phase_ = phase::done;  // out.reason stays `length`
        return;
      }
      if (request_.stop.stop_requested()) {
        cancel();
        return;
      }
      next_ = pick(logits_.data());
      if (!take(next_)) {
        phase_ = phase::done;
        return;
      }
      // Two ways to check drafts. While drafts are being taken, the token and its drafts run in one pass.
      // Otherwise the token runs alone first and the first draft is checked against its logits: a wrong
      // draft then costs no forward pass at all (the next step samples the same token again), and a right
      // one is what plain decoding takes next, so the drafts run in one pass whose logits check the others.
      const std::int32_t one[] = {next_};
      if (!(lookup_ && lookup_->confident())) {
        run(one, logits_mode::last, phase::after_single);
        return;
      }
      draft();
      if (drafts_.empty()) {
        run(one, logits_mode::last, phase::sample);
        return;
      }
      batch_.assign(1, next_);
      batch_.insert(batch_.end(), drafts_.begin(), drafts_.end());
      lead_ = 1;
      state_.save(rollback_);
      run(batch_, logits_mode::all, phase::check_drafts);
      return;
    }
    // after_single
    phase_ = phase::sample;
    if (!lookup_) return;
    draft();
    if (drafts_.empty()) return;
    // Checked on a copy: the next step samples these logits again, and a repetition penalty is applied in
    // place (twice would change them).
    check_.assign(logits_.begin(), logits_.end());
    if (pick(check_.data()) != drafts_[0]) {
      out_.drafted += static_cast<std::int64_t>(drafts_.size());
      lookup_->report(drafts_.size(), 0);
      return;
    }
    batch_ = drafts_;
    lead_ = 0;
    state_.save(rollback_);
    run(batch_, logits_mode::all, phase::check_drafts);
  }

  void draft() {
    drafts_ = lookup_->draft(history_, request_.max_tokens - static_cast<std::int64_t>(out_.tokens.size()));
  }

  // The sampler's choice from `row`; with logprobs asked for, the row's distribution is recorded first
  // (the sampler changes the row in place), for take() to report if the token is taken.
  std::int32_t pick(float* row) {
    if (request_.top_logprobs < 0) return pick_.sample(row, history_, request_.prompt.size());
    const std::size_t vocab = static_cast<std::size_t>(vocab_);
    raw_.assign(row, row + vocab);
    const std::int32_t id = pick_.sample(row, history_, request_.prompt.size());
    const float top = *std::max_element(raw_.begin(), raw_.end());
    double sum = 0;
    for (const float l : raw_) sum += std::exp(static_cast<double>(l - top));
    const float log_total = top + static_cast<float>(std::log(sum));
    picked_.id = id;
    picked_.logprob = raw_[static_cast<std::size_t>(id)] - log_total;
    picked_.top.clear();
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::min(request_.top_logprobs, 20)), vocab);
    order_.resize(vocab);
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(n), order_.end(), [&](std::int32_t a, std::int32_t b) {
      return raw_[static_cast<std::size_t>(a)] > raw_[static_cast<std::size_t>(b)] ||
             (raw_[static_cast<std::size_t>(a)] == raw_[static_cast<std::size_t>(b)] && a < b);
    });
    for (std::size_t i = 0; i < n; ++i) picked_.top.emplace_back(order_[i], raw_[static_cast<std::size_t>(order_[i])] - log_total);
    return id;
  }

  // A sampled token through the stop rules and the callback. False when generation ends here (out.reason
  // says why); a stop id does not join the output.
  bool take(std::int32_t next) {
    if (std::find(request_.stop_ids.begin(), request_.stop_ids.end(), next) != request_.stop_ids.end()) {
      out_.reason = finish_reason::stop_token;
      return false;
    }
    out_.tokens.push_back(next);
    history_.push_back(next);
    if (request_.top_logprobs >= 0) {
      out_.logprobs.push_back(picked_);
      if (request_.on_logprob) request_.on_logprob(picked_);
    }
    if (request_.on_token && !request_.on_token(next)) {
      out_.reason = finish_reason::callback;
      return false;
    }
    if (!request_.stop_strings.empty()) {
      const std::size_t before = text_.size();
      text_ += request_.token_bytes(next);
      bool matched = false;
      for (const std::string& s : request_.stop_strings) {
        if (s.empty()) continue;
        // Only a match that ends in the new bytes is new.
        const std::size_t from = before >= s.size() ? before - s.size() + 1 : 0;
        const std::size_t at = text_.find(s, from);
        if (at != std::string::npos) {
          out_.text_end = std::min(out_.text_end, at);
          matched = true;
        }
      }
      if (matched) {
        out_.reason = finish_reason::stop_string;
        return false;
      }
    }
    // No forward for a token we will not sample from.
    if (static_cast<std::int64_t>(out_.tokens.size()) == request_.max_tokens) {
      out_.reason = finish_reason::length;
      return false;
    }
    return true;
  }

  const generation_request& request_;
  sequence_state& state_;
  std::int64_t vocab_;
  sampler pick_;
  std::vector<float> logits_;  // after the state's last token
  std::vector<std::int32_t> history_;
  std::string text_;  // decoded output, for stop strings
  std::optional<prompt_lookup> lookup_;
  generation_result out_;
  phase phase_ = phase::sample;
  phase after_ = phase::sample;
  std::int32_t next_ = 0;
  std::vector<std::int32_t> drafts_;
  std::vector<std::int32_t> batch_;  // the pass's tokens
  std::span<const std::int32_t> pass_;
  logits_mode pass_mode_ = logits_mode::last;
  std::size_t lead_ = 0;  // 1 when the sampled token runs with its drafts, else 0
  sequence_state::rollback_point rollback_;
  std::vector<float> check_;  // the first draft's check
  std::vector<float> raw_;    // logprobs: the row before sampling
  std::vector<std::int32_t> order_;
  token_logprob picked_;
};

result<void> check_request(const generation_request& request) {
  QCODER_CHECK(request.sampling.validate());
  if (request.prompt.empty()) return fail(errc::invalid_argument, "the prompt is empty");
  if (!request.stop_strings.empty() && !request.token_bytes) {
    return fail(errc::invalid_argument, "stop strings need a tokenizer to decode the output");
  }
  return ok();
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

result<generation_result> generate(qwen3_next& model, sequence_state& state, const generation_request& request) {
  QCODER_CHECK(check_request(request));
  const std::int64_t vocab = model.config().vocab_size;
  sequence_decoder decoder(request, state, vocab);
  const auto t0 = std::chrono::steady_clock::now();
  result<prefill_report> filled =
      prefill(model, request.cache, request.prompt, state, decoder.logits(), request.plan, request.stop);
  if (!filled) {
    if (filled.err().code != errc::cancelled) return filled.take_error();
    decoder.cancel();
    return decoder.finish(0.0);
  }
  decoder.result().prompt_tokens_restored = filled.value().restored;
  decoder.result().prefill_seconds = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  std::vector<float> rows;
  while (decoder.next_pass()) {
    const std::span<const std::int32_t> tokens = decoder.pass_tokens();
    const std::size_t count = decoder.pass_mode() == logits_mode::all ? tokens.size() : 1;
    rows.resize(count * static_cast<std::size_t>(vocab));
    if (result<void> r = model.forward(tokens, state, rows.data(), decoder.pass_mode(), request.stop); !r) {
      if (r.err().code != errc::cancelled) return r.take_error();
      decoder.cancel();
      break;
    }
    decoder.complete(rows.data());
  }
  return decoder.finish(seconds_since(t1));
}

struct generation_batch::sequence {
  sequence(std::size_t id, generation_request req, std::unique_ptr<sequence_state> memory, std::int64_t vocab)
      : ticket(id), request(std::move(req)), state(std::move(memory)), decoder(request, *state, vocab) {}
  std::size_t ticket;
  generation_request request;
  std::unique_ptr<sequence_state> state;
  sequence_decoder decoder;  // refers to request and *state
  std::chrono::steady_clock::time_point decode_start;
  std::optional<prefill_run> filling;  // the prompt, while it is being computed chunk by chunk
  double prefill_seconds = 0;          // compute time of its chunks
  bool in_pass = false;                // has tokens in this step's pass

  // The prompt is all in: decoding starts.
  void prompt_filled() {
    decoder.result().prompt_tokens_restored = filling->report().restored;
    decoder.result().prefill_seconds = prefill_seconds;
    filling.reset();
    decode_start = std::chrono::steady_clock::now();
  }
};

generation_batch::generation_batch(qwen3_next& model, std::int64_t prefill_chunk)
    : model_(model), prefill_chunk_(std::max<std::int64_t>(0, prefill_chunk)) {}
generation_batch::~generation_batch() = default;

std::size_t generation_batch::size() const { return running_.size(); }

result<std::size_t> generation_batch::add(generation_request request) {
  QCODER_CHECK(check_request(request));
  // Checked here, not when a chunk runs: a bad id must fail its request, not the batch.
  for (std::size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= model_.config().vocab_size) {
      return fail(errc::invalid_argument, "token id {} at position {} is outside the vocabulary (0..{})", request.prompt[i],
                  i, model_.config().vocab_size - 1);
    }
  }
  const std::int64_t needed =
      static_cast<std::int64_t>(request.prompt.size()) + std::max<std::int64_t>(0, request.max_tokens) + 1;
  // A spare state that is long enough, else a new one (states of finished sequences are kept for reuse).
  std::unique_ptr<sequence_state> state;
  for (auto it = spare_states_.begin(); it != spare_states_.end(); ++it) {
    if ((*it)->capacity() >= needed) {
      state = std::move(*it);
      spare_states_.erase(it);
      break;
    }
  }
  if (!state) state = std::make_unique<sequence_state>(model_.new_state(std::max<std::int64_t>(needed, 4096)));
  if (request.cache == nullptr) state->reset();
  const std::size_t ticket = next_ticket_++;
  auto seq = std::make_unique<sequence>(ticket, std::move(request), std::move(state), model_.config().vocab_size);
  const generation_request& req = seq->request;
  const auto t0 = std::chrono::steady_clock::now();
  if (prefill_chunk_ > 0) {
    result<prefill_run> run = prefill_run::begin(model_, req.cache, req.prompt, *seq->state, seq->decoder.logits(), req.plan);
    if (!run) {
      spare_states_.push_back(std::move(seq->state));
      return run.take_error();
    }
    seq->filling.emplace(std::move(*run));
    seq->prefill_seconds = seconds_since(t0);
    if (seq->filling->done()) seq->prompt_filled();
    running_.push_back(std::move(seq));
    return ticket;
  }
  result<prefill_report> filled = prefill(model_, req.cache, req.prompt, *seq->state, seq->decoder.logits(), req.plan, req.stop);
  if (!filled && filled.err().code != errc::cancelled) {
    spare_states_.push_back(std::move(seq->state));
    return filled.take_error();
  }
  if (filled) {
    seq->decoder.result().prompt_tokens_restored = filled.value().restored;
  } else {
    seq->decoder.cancel();
  }
  seq->decoder.result().prefill_seconds = seconds_since(t0);
  seq->decode_start = std::chrono::steady_clock::now();
  running_.push_back(std::move(seq));
  return ticket;
}

result<void> generation_batch::prefill_step() {
  last_prefill_seconds_ = 0;
  // The prompt with the least left to compute goes first: a short one behind a long one starts decoding
  // at once, and the long one still gets a chunk every step it is the shortest.
  sequence* next = nullptr;
  for (auto& seq : running_) {
    if (seq->filling && (next == nullptr || seq->filling->remaining() < next->filling->remaining())) next = seq.get();
  }
  if (next == nullptr) return ok();
  sequence& seq = *next;
  if (seq.request.stop.stop_requested()) {
    seq.filling.reset();
    seq.decoder.cancel();
    seq.state->reset();  // half a prompt is no prefix to cache
    seq.decode_start = std::chrono::steady_clock::now();
    return ok();
  }
  const auto t0 = std::chrono::steady_clock::now();
  result<void> ran = seq.filling->advance(prefill_chunk_, seq.request.stop);
  last_prefill_seconds_ = seconds_since(t0);
  seq.prefill_seconds += last_prefill_seconds_;
  if (!ran) {
    seq.filling.reset();
    if (ran.err().code != errc::cancelled) return ran;
    seq.decoder.cancel();
    seq.decode_start = std::chrono::steady_clock::now();
    return ok();
  }
  if (seq.filling->done()) seq.prompt_filled();
  return ok();
}

result<std::vector<generation_batch::finished>> generation_batch::step() {
  const auto vocab = static_cast<std::size_t>(model_.config().vocab_size);
  const auto rows_of = [](const sequence_decoder& d) {
    return d.pass_mode() == logits_mode::all ? d.pass_tokens().size() : std::size_t{1};
  };
  if (result<void> filled = prefill_step(); !filled) {
    for (auto& seq : running_) spare_states_.push_back(std::move(seq->state));
    running_.clear();
    return filled.err();
  }
  for (auto& seq : running_) seq->in_pass = !seq->filling && seq->decoder.next_pass();

  // The passes, in groups that fit one forward pass (a pass bigger than that runs alone, chunked).
  for (std::size_t first = 0; first < running_.size();) {
    steps_.clear();
    std::size_t tokens = 0;
    std::size_t rows = 0;
    std::size_t end = first;
    for (; end < running_.size(); ++end) {
      const sequence& seq = *running_[end];
      if (!seq.in_pass) continue;
      const std::size_t count = seq.decoder.pass_tokens().size();
      if (!steps_.empty() && static_cast<std::int64_t>(tokens + count) > model_.max_batch()) break;
      steps_.push_back({seq.decoder.pass_tokens(), seq.state.get(), seq.decoder.pass_mode()});
      tokens += count;
      rows += rows_of(seq.decoder);
    }
    first = end;
    if (steps_.empty()) continue;
    rows_.resize(rows * vocab);
    const result<void> ran = static_cast<std::int64_t>(tokens) > model_.max_batch()
                                 ? model_.forward(steps_[0].tokens, *steps_[0].state, rows_.data(), steps_[0].mode)
                                 : model_.forward_batch(steps_, rows_.data());
    if (!ran) {
      for (auto& seq : running_) spare_states_.push_back(std::move(seq->state));
      running_.clear();
      return ran.err();
    }
    std::size_t offset = 0;
    for (auto& seq : running_) {
      const auto at = std::find_if(steps_.begin(), steps_.end(), [&](const sequence_step& s) { return s.state == seq->state.get(); });
      if (at == steps_.end()) continue;
      const std::size_t count = rows_of(seq->decoder);
      seq->decoder.complete(rows_.data() + offset * vocab);
      offset += count;
    }
  }

  std::vector<finished> done;
  for (auto it = running_.begin(); it != running_.end();) {
    sequence& seq = **it;
    if (seq.filling || seq.decoder.next_pass()) {
      ++it;
      continue;
    }
    done.push_back({seq.ticket, seq.decoder.finish(seconds_since(seq.decode_start))});
    spare_states_.push_back(std::move(seq.state));
    it = running_.erase(it);
  }
  return done;
}

}  // namespace qcoder::engine
