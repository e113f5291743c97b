// Turning logits into the next token: greedy, or sampling with temperature, top-k, top-p, min-p and a
// repetition penalty, from a seeded generator (same seed, same logits → same tokens).
// Scratch space is allocated once for the vocabulary size. One sampler per sequence; not thread-safe.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::engine {

struct sampling_params {
  bool greedy = true;               // argmax (lowest id on ties); the other fields are ignored
  float temperature = 0.7f;         // > 0
  std::int32_t top_k = 20;          // 0: off
  float top_p = 0.8f;               // 1: off
  float min_p = 0.0f;               // 0: off; keep tokens with p ≥ min_p · p_max
  float repetition_penalty = 1.0f;  // 1: off; HF convention: positive logits ÷ p, negative × p
  // OpenAI's: subtracted from the logit of each token the output already holds, once (presence) and per
  // occurrence (frequency); the prompt does not count. In [-2, 2]; 0: off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::uint64_t seed = 0;

  // Checks ranges; the error names the parameter.
  result<void> validate() const;
};

// The restrictions and temperature of one draw, as sampling_params holds them.
struct draw_params {
  float temperature = 1.0f;  // > 0
  std::int32_t top_k = 0;    // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
};

// Scratch for draw_token, sized to the vocabulary on first use (and kept by a sampler between calls).
struct draw_scratch {
  std::vector<std::int32_t> candidates;
  std::vector<float> probs;
};

// The final step of sampler::sample, after its penalties: candidates sorted by logit (ties: lower id
// first) cut to top_k, p = exp((logit − max) / temperature) in float, the top-p prefix (double sums), the
// min-p cut, then the candidate whose running kept mass first exceeds `uniform` × the kept mass (`uniform`
// in [0, 1): the random number, which sampler::sample draws from its generator). Deterministic: the
// device's cuda::sample reproduces it for the same logits and number.
std::int32_t draw_token(const float* logits, std::int64_t vocab, const draw_params& params, double uniform,
                        draw_scratch& scratch);

class sampler {
 public:
  sampler(const sampling_params& params, std::int64_t vocab_size);

  // Picks the next token from logits[vocab]; `history` (prompt + output so far) feeds the repetition
  // penalty, and its output part (from `output_from` on) the presence and frequency penalties. `logits` is
  // modified (penalties, temperature).
  std::int32_t sample(float* logits, std::span<const std::int32_t> history, std::size_t output_from = 0);

 private:
  sampling_params params_;
  std::int64_t vocab_;
  std::mt19937_64 rng_;
  draw_scratch scratch_;
  std::vector<std::uint8_t> seen_;
  std::vector<std::uint32_t> counts_;
};

std::int32_t argmax(const float* logits, std::int64_t n);

}  // namespace qcoder::engine
