// Sampling pipeline: presence and frequency penalties → repetition penalty → temperature → top-k → softmax → top-p → min-p → draw.
// The steps after the penalties are draw_token, a pure function of the logits and one uniform number.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qcoder::engine {

result<void> sampling_params::validate() const {
  if (greedy) return ok();
  if (!(temperature > 0.0f) || !std::isfinite(temperature)) {
    return fail(errc::invalid_argument, "temperature must be > 0 (got {}); use greedy decoding for 0", temperature);
  }
  if (top_k < 0) return fail(errc::invalid_argument, "top_k must be ≥ 0 (got {})", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return fail(errc::invalid_argument, "top_p must be in (0, 1] (got {})", top_p);
  if (!(min_p >= 0.0f && min_p < 1.0f)) return fail(errc::invalid_argument, "min_p must be in [0, 1) (got {})", min_p);
  if (!(repetition_penalty > 0.0f)) {
    return fail(errc::invalid_argument, "repetition_penalty must be > 0 (got {})", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return fail(errc::invalid_argument, "presence_penalty must be in [-2, 2] (got {})", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return fail(errc::invalid_argument, "frequency_penalty must be in [-2, 2] (got {})", frequency_penalty);
  }
  return ok();
}

std::int32_t argmax(const float* logits, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<std::int32_t>(best);
}

sampler::sampler(const sampling_params& params, std::int64_t vocab_size)
    : params_(params),
      vocab_(vocab_size),
      rng_(params.seed),
      scratch_{std::vector<std::int32_t>(static_cast<std::size_t>(vocab_size)),
               std::vector<float>(static_cast<std::size_t>(vocab_size))},
      seen_(static_cast<std::size_t>(vocab_size), 0) {
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) counts_.assign(static_cast<std::size_t>(vocab_size), 0);
}

std::int32_t sampler::sample(float* logits, std::span<const std::int32_t> history, std::size_t output_from) {
  if (!counts_.empty()) {
    const std::span<const std::int32_t> output = history.subspan(std::min(output_from, history.size()));
    for (const std::int32_t id : output) {
      if (id >= 0 && id < vocab_) ++counts_[static_cast<std::size_t>(id)];
    }
    for (const std::int32_t id : output) {
      if (id < 0 || id >= vocab_ || counts_[static_cast<std::size_t>(id)] == 0) continue;
      const auto n = static_cast<float>(counts_[static_cast<std::size_t>(id)]);
      logits[id] -= params_.presence_penalty + params_.frequency_penalty * n;
      counts_[static_cast<std::size_t>(id)] = 0;
    }
  }
  if (params_.repetition_penalty != 1.0f) {
    for (std::int32_t id : history) {
      if (id < 0 || id >= vocab_ || seen_[static_cast<std::size_t>(id)]) continue;
      seen_[static_cast<std::size_t>(id)] = 1;
      float& l = logits[id];
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
    for (std::int32_t id : history) {
      if (id >= 0 && id < vocab_) seen_[static_cast<std::size_t>(id)] = 0;
    }
  }
  if (params_.greedy) return argmax(logits, vocab_);

  // u as uniform_real_distribution<double>(0, kept) would scale it (a + u·(b − a)): u·kept, bit for bit.
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  return draw_token(logits, vocab_, {params_.temperature, params_.top_k, params_.top_p, params_.min_p}, u, scratch_);
}

std::int32_t draw_token(const float* logits, std::int64_t vocab, const draw_params& params, double uniform,
                        draw_scratch& scratch) {
  std::vector<std::int32_t>& candidates = scratch.candidates;
  std::vector<float>& probs = scratch.probs;
  candidates.resize(static_cast<std::size_t>(vocab));
  probs.resize(static_cast<std::size_t>(vocab));
  // Candidates sorted by logit, descending (ties: lower id first), cut to top-k.
  std::iota(candidates.begin(), candidates.end(), 0);
  const std::int64_t k = params.top_k > 0 ? std::min<std::int64_t>(params.top_k, vocab) : vocab;
  auto by_logit = [logits](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end(), by_logit);

  // Softmax over the candidates at the temperature.
  const float max_logit = logits[candidates[0]];
  double total = 0.0;
  for (std::int64_t i = 0; i < k; ++i) {
    const float p = std::exp((logits[candidates[static_cast<std::size_t>(i)]] - max_logit) / params.temperature);
    probs[static_cast<std::size_t>(i)] = p;
    total += p;
  }
  // top-p: the smallest prefix whose mass reaches top_p (at least one token); min-p relative to the best.
  std::int64_t keep = k;
  if (params.top_p < 1.0f) {
    double mass = 0.0;
    for (std::int64_t i = 0; i < k; ++i) {
      mass += probs[static_cast<std::size_t>(i)] / total;
      if (mass >= params.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (params.min_p > 0.0f) {
    const float floor = params.min_p * probs[0];
    std::int64_t i = 1;
    while (i < keep && probs[static_cast<std::size_t>(i)] >= floor) ++i;
    keep = i;
  }
  double kept = 0.0;
  for (std::int64_t i = 0; i < keep; ++i) kept += probs[static_cast<std::size_t>(i)];
  const double target = uniform * kept;
  double acc = 0.0;
  for (std::int64_t i = 0; i < keep; ++i) {
    acc += probs[static_cast<std::size_t>(i)];
    if (target < acc) return candidates[static_cast<std::size_t>(i)];
  }
  return candidates[static_cast<std::size_t>(keep - 1)];
}

}  // namespace qcoder::engine
