// Routing traces: which experts every token chose in every MoE layer, for replaying through cache policies
// (cache_replay.h) without running the model. Also a synthetic generator calibrated to published
// expert-cache hit rates, for when no real trace is at hand.
//
// File format (JSON Lines, UTF-8, one object per line):
//   {"format": "qcoder-routing-trace", "version": 1, "layers": 48, "experts": 512, "top_k": 10}
//   {"token": 0, "layers": [[e, ...], ...], "predicted": [[e, ...], ...]}
//   ...
// The first line is the header. Each further line is one token: "token" is its position in the trace
// (strictly increasing; gaps allowed), "layers" holds one list of distinct expert ids in [0, experts) per
// layer (the router's choice; normally top_k long), and the optional "predicted" holds per layer the
// experts predicted for that layer before it ran (the next layer's router applied to the previous
// layer's hidden state; empty for layer 0 or when unknown). Empty lines are ignored.
//
// A trace is plain data (safe to share read-only between threads); the functions are thread-safe.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::engine {

// Storage is flat: step s = token_index * layers + layer; its experts are chosen[chosen_offsets[s] ..
// chosen_offsets[s + 1]), likewise for predicted.
class routing_trace {
 public:
  routing_trace() = default;
  routing_trace(std::int32_t layers, std::int32_t experts, std::int32_t top_k);

  std::int32_t layers() const { return layers_; }
  std::int32_t experts() const { return experts_; }
  std::int32_t top_k() const { return top_k_; }
  std::size_t tokens() const { return token_ids_.size(); }
  std::uint64_t token_id(std::size_t token_index) const { return token_ids_[token_index]; }

  std::span<const std::int32_t> chosen(std::size_t token_index, std::int32_t layer) const;
  std::span<const std::int32_t> predicted(std::size_t token_index, std::int32_t layer) const;
  bool has_predictions() const { return !predicted_.empty(); }
  std::uint64_t accesses() const { return chosen_.size(); }

  // Appends a token; then add_layer() must be called once per layer, in order. Checks the expert ids
  // (range, duplicates, list length) and that token ids increase.
  result<void> begin_token(std::uint64_t token_id);
  result<void> add_layer(std::span<const std::int32_t> chosen, std::span<const std::int32_t> predicted = {});
  // Whether the last token got all its layers.
  bool complete() const;

 private:
  result<void> check_ids(std::span<const std::int32_t> ids, const char* what) const;

  std::int32_t layers_ = 0;
  std::int32_t experts_ = 0;
  std::int32_t top_k_ = 0;
  std::vector<std::uint64_t> token_ids_;
  std::vector<std::uint32_t> chosen_offsets_{0};
  std::vector<std::int32_t> chosen_;
  std::vector<std::uint32_t> predicted_offsets_{0};
  std::vector<std::int32_t> predicted_;
  std::vector<std::uint8_t> seen_;  // scratch for the duplicate check, one byte per expert
};

// Reads a trace in the format above. Errors name the source, the line and the JSON path of what is wrong.
result<routing_trace> read_routing_trace(std::istream& in, std::string_view source_name);
result<routing_trace> read_routing_trace_file(const std::string& path);
// Writes `trace` in the format above ("predicted" only when the trace has predictions).
result<void> write_routing_trace(const routing_trace& trace, std::ostream& out);
result<void> write_routing_trace_file(const routing_trace& trace, const std::string& path);

// The synthetic router. Per layer, experts have a fixed popularity that falls off as 1 / (rank + 1)^skew
// (ranks shuffled per layer). Each of a token's top_k picks repeats, with probability `locality`, one of the
// experts the previous token chose in the same layer (consecutive tokens have similar hidden states), and is
// otherwise drawn by popularity; picks within a token are distinct. The prediction of layer l (l >= 1)
// keeps each true expert with probability `prediction_accuracy` and replaces the others by experts drawn by
// popularity, so it overlaps the truth by about that fraction.
//
// The defaults are calibrated so that LRU with 64 slots per layer hits ≈ 67% and with 128 slots ≈ 81% (the
// hit rates measured by another engine on a real 512-expert top-10 model); the calibration test in
// tests/engine/experts/cache_replay_test.cpp keeps them there. Policy gains measured on this trace depend on
// the generator's assumptions (static popularity plus one-token locality); replay a real trace to confirm.
struct synthetic_trace_options {
  std::int32_t layers = 48;
  std::int32_t experts = 512;
  std::int32_t top_k = 10;
  std::int32_t tokens = 4096;
  std::uint64_t seed = 1;
  double skew = 0.95;                // popularity exponent (0: uniform)
  double locality = 0.48;            // probability a pick repeats a recent token's expert
  std::int32_t window = 18;          // how many recent tokens "recent" means
  double prediction_accuracy = 0.75; // fraction of a layer's experts the prediction gets right
};
result<routing_trace> make_synthetic_trace(const synthetic_trace_options& options);

}  // namespace qcoder::engine
