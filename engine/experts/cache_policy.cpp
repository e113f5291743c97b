// The replacement policies behind make_cache_policy: "lfu-decay" and "lru".
//
// Both keep a few numbers per expert of the layer in flat arrays sized at construction, so every event is
// O(1), victim() is one pass over the candidates, and nothing allocates after construction.
// Not thread-safe: one object per layer, used by the thread that owns the store (see cache_policy.h).
#include "engine/experts/cache_policy.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

namespace qcoder::engine {
namespace {

// Least recently used. "Recent" is a sequence number bumped on every use or insert, so experts used by the
// same token are still ordered (the one used first is evicted first).
class lru_policy final : public cache_policy {
 public:
  explicit lru_policy(std::int32_t experts) : last_(static_cast<std::size_t>(experts), 0) {}

  std::string_view name() const override { return "lru"; }
  void on_use(std::int32_t expert, std::uint64_t) override { last_[index(expert)] = ++seq_; }
  void on_predict(std::int32_t, std::uint64_t) override {}
  void on_insert(std::int32_t expert, std::uint64_t) override { last_[index(expert)] = ++seq_; }
  void on_evict(std::int32_t) override {}

  std::int32_t victim(std::span<const std::int32_t> candidates, std::uint64_t) override {
    std::int32_t best = candidates[0];
    std::uint64_t best_seq = last_[index(best)];
    for (std::int32_t e : candidates.subspan(1)) {
      if (last_[index(e)] < best_seq) {
        best = e;
        best_seq = last_[index(e)];
      }
    }
    return best;
  }

 private:
  static std::size_t index(std::int32_t e) { return static_cast<std::size_t>(e); }
  std::vector<std::uint64_t> last_;  // per expert: sequence number of the last use or insert
  std::uint64_t seq_ = 0;
};

// Frequency with exponential decay (LRFU-like): score(e) = Σ over past uses of decay^(now − tick of use).
// decay → 0 behaves like LRU, decay → 1 like LFU. Experts predicted for the current or a later tick are
// protected (evicted only when every candidate is); ties go to the least recently used.
//
// Scores are kept in "forward decay" form: a use at tick t adds g^t with g = 1/decay, so comparing stored
// values compares the decayed scores at any common tick, with no per-candidate pow(). When g^t grows large
// every stored value is rescaled (O(experts), once per ln(1e200) / ln(1/decay) ticks: ~9000 at 0.95).
class lfu_decay_policy final : public cache_policy {
 public:
  lfu_decay_policy(std::int32_t experts, double decay)
      : growth_(1.0 / decay),
        score_(static_cast<std::size_t>(experts), 0.0),
        last_(static_cast<std::size_t>(experts), 0),
        predicted_for_(static_cast<std::size_t>(experts), no_tick) {}

  std::string_view name() const override { return "lfu-decay"; }

  void on_use(std::int32_t expert, std::uint64_t tick) override {
    advance(tick);
    score_[index(expert)] += weight_;
    last_[index(expert)] = ++seq_;
  }
  void on_predict(std::int32_t expert, std::uint64_t tick) override { predicted_for_[index(expert)] = tick; }
  void on_insert(std::int32_t expert, std::uint64_t tick) override {
    advance(tick);
    last_[index(expert)] = ++seq_;  // the decayed history is kept across evictions on purpose
  }
  void on_evict(std::int32_t) override {}

  std::int32_t victim(std::span<const std::int32_t> candidates, std::uint64_t tick) override {
    advance(tick);
    std::int32_t best = candidates[0];
    bool best_protected = is_protected(best, tick);
    for (std::int32_t e : candidates.subspan(1)) {
      const bool p = is_protected(e, tick);
      if (p != best_protected) {
        if (!p) {
          best = e;
          best_protected = false;
        }
        continue;
      }
      const double s = score_[index(e)], bs = score_[index(best)];
      if (s < bs || (s == bs && last_[index(e)] < last_[index(best)])) best = e;
    }
    return best;
  }

 private:
  static constexpr std::uint64_t no_tick = std::numeric_limits<std::uint64_t>::max();
  static std::size_t index(std::int32_t e) { return static_cast<std::size_t>(e); }

  bool is_protected(std::int32_t e, std::uint64_t tick) const {
    const std::uint64_t p = predicted_for_[index(e)];
    return p != no_tick && p >= tick;
  }

  // Moves the weight of a use to `tick` (ticks only go forward; an older tick keeps the current weight).
  void advance(std::uint64_t tick) {
    if (tick <= tick_) return;
    const double factor = std::pow(growth_, static_cast<double>(tick - tick_));
    tick_ = tick;
    if (weight_ * factor <= 1e200) {
      weight_ *= factor;
      return;
    }
    // Rescale so that the weight becomes 1 again; history older than ~1e-200 of a use is dropped.
    for (double& s : score_) s /= weight_;  // now relative to a weight of 1 before this jump
    if (factor <= 1e200) {
      for (double& s : score_) s /= factor;
    } else {
      for (double& s : score_) s = 0.0;
    }
    weight_ = 1.0;
  }

  double growth_;
  double weight_ = 1.0;     // g^(tick_ − tick at the last rescale)
  std::uint64_t tick_ = 0;  // the latest tick seen
  std::uint64_t seq_ = 0;
  std::vector<double> score_;                // per expert, forward-decayed
  std::vector<std::uint64_t> last_;          // per expert: sequence number of the last use or insert
  std::vector<std::uint64_t> predicted_for_; // per expert: the latest tick it was predicted for
};

// The decay per tick used by "lfu-decay": a use counts half after ~14 tokens. Chosen on the calibrated
// synthetic trace (see routing_trace.h) over 0.5 … 0.99; `lfu-decay:D` picks another.
constexpr double default_decay = 0.95;

constexpr std::array<std::string_view, 2> policy_names{"lfu-decay", "lru"};

}  // namespace

result<std::unique_ptr<cache_policy>> make_cache_policy(std::string_view name, std::int32_t experts) {
  if (experts <= 0) return fail(errc::invalid_argument, "cache policy '{}': experts must be positive, got {}", name, experts);
  if (name == "lru") return std::unique_ptr<cache_policy>(std::make_unique<lru_policy>(experts));
  if (name == "lfu-decay") return std::unique_ptr<cache_policy>(std::make_unique<lfu_decay_policy>(experts, default_decay));
  if (name.starts_with("lfu-decay:")) {
    const std::string_view text = name.substr(10);
    double decay = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), decay);
    if (ec != std::errc{} || end != text.data() + text.size() || !(decay > 0.0 && decay < 1.0)) {
      return fail(errc::invalid_argument, "cache policy '{}': the decay after ':' must be a number in (0, 1)", name);
    }
    return std::unique_ptr<cache_policy>(std::make_unique<lfu_decay_policy>(experts, decay));
  }
  return fail(errc::invalid_argument, "unknown cache policy '{}' (known: lfu-decay, lfu-decay:DECAY, lru)", name);
}

std::span<const std::string_view> cache_policy_names() { return policy_names; }

}  // namespace qcoder::engine
