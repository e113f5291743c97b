// The replay loop of cache_replay.h: per layer a slot pool (resident list + per-expert flags) and a policy;
// for timed replays one simulated disk shared by all layers. Each access is O(1) apart from evictions, which
// cost one pass over the pool to gather the candidates and one pass in the policy. Nothing allocates inside
// the loop once the loader's queues have grown to their largest.
// Thread-safe: all state is local to one replay_trace call.
#include "engine/experts/cache_replay.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "engine/experts/cache_policy.h"

namespace qcoder::engine {
namespace {

constexpr double never = std::numeric_limits<double>::infinity();

// One layer's cache. `step` counts the pool's phases (prefetch, then use, per token); stamps compare against
// it so that flags need no clearing.
struct layer_pool {
  std::unique_ptr<cache_policy> policy;
  std::int32_t slots = 0;
  std::uint64_t step = 0;
  std::vector<std::int32_t> resident;         // the experts in the slots, any order
  std::vector<std::int32_t> position;         // per expert: index in `resident`, or -1
  std::vector<std::uint64_t> pinned_at;       // per expert: step while it may not be evicted
  std::vector<std::uint64_t> prefetched_at;   // per expert: step of the prefetch that loaded it
  std::vector<std::uint64_t> chosen_at;       // per expert: step when the layer chose it
  std::vector<double> ready_at;               // per expert: when its read finishes (never: not yet known)
  std::vector<std::int32_t> candidates;       // scratch, capacity `slots`

  bool is_resident(std::int32_t e) const { return position[static_cast<std::size_t>(e)] >= 0; }
  bool loading(std::int32_t e, double now) const { return ready_at[static_cast<std::size_t>(e)] > now; }

  // Whether a slot is free or some resident expert may be evicted at `now`.
  bool has_room(double now) {
    if (static_cast<std::int32_t>(resident.size()) < slots) return true;
    gather_candidates(now);
    return !candidates.empty();
  }
  void gather_candidates(double now) {
    candidates.clear();
    for (std::int32_t r : resident) {
      if (pinned_at[static_cast<std::size_t>(r)] != step && !loading(r, now)) candidates.push_back(r);
    }
  }

  // Loads `e` (not resident; has_room(now) is true) into a free slot or in place of the policy's victim.
  void load(std::int32_t e, std::uint64_t tick, double now) {
    if (static_cast<std::int32_t>(resident.size()) >= slots) {
      gather_candidates(now);
      const std::int32_t out = policy->victim(candidates, tick);
      const auto slot = static_cast<std::size_t>(position[static_cast<std::size_t>(out)]);
      resident[slot] = resident.back();
      position[static_cast<std::size_t>(resident[slot])] = static_cast<std::int32_t>(slot);
      resident.pop_back();
      position[static_cast<std::size_t>(out)] = -1;
      policy->on_evict(out);
    }
    position[static_cast<std::size_t>(e)] = static_cast<std::int32_t>(resident.size());
    resident.push_back(e);
    policy->on_insert(e, tick);
  }
};

// A first-in first-out queue that keeps its storage (no allocation once grown).
template <typename T>
class fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  void push(const T& v) {
    if (empty()) {
      items_.clear();
      head_ = 0;
    }
    items_.push_back(v);
  }
  T pop() { return items_[head_++]; }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

// The simulated disk: reads queued demand-first, at most `loader_threads` in progress, sharing bandwidth.
class loader_sim {
 public:
  struct read {
    std::int32_t layer = 0;
    std::int32_t expert = 0;
    double remaining = 0.0;  // bytes
  };

  explicit loader_sim(const replay_timing& t)
      : disk_(t.disk_bytes_per_s),
        stream_(t.read_bytes_per_s > 0 ? t.read_bytes_per_s : t.disk_bytes_per_s),
        bytes_(static_cast<double>(t.expert_bytes)),
        threads_(static_cast<std::size_t>(std::max(1, t.loader_threads))) {
    active_.reserve(threads_);
  }

  double now() const { return now_; }
  bool idle() const { return active_.empty(); }

  void submit(std::int32_t layer, std::int32_t expert, bool speculative) {
    (speculative ? speculative_ : demand_).push({layer, expert, bytes_});
    fill();
  }

  // Finishes the read that ends first, moving the clock to its end; calls done(layer, expert, time).
  template <typename F>
  void step(F&& done) {
    if (active_.empty()) return;
    const double rate = per_read_rate();
    double least = never;
    for (const read& r : active_) least = std::min(least, r.remaining);
    now_ += least / rate;
    for (std::size_t i = 0; i < active_.size();) {
      active_[i].remaining -= least;
      if (active_[i].remaining <= 1e-6 * bytes_) {
        done(active_[i].layer, active_[i].expert, now_);
        active_[i] = active_.back();
        active_.pop_back();
      } else {
        ++i;
      }
    }
    fill();
  }

  // Moves the clock to `t` (not backwards), finishing every read that ends by then.
  template <typename F>
  void advance(double t, F&& done) {
    while (!active_.empty()) {
      double least = never;
      for (const read& r : active_) least = std::min(least, r.remaining);
      if (now_ + least / per_read_rate() > t) break;
      step(done);
    }
    if (t > now_) {
      const double moved = (t - now_) * per_read_rate();
      for (read& r : active_) r.remaining -= moved;
      now_ = t;
    }
  }

 private:
  double per_read_rate() const {
    return active_.empty() ? stream_ : std::min(disk_ / static_cast<double>(active_.size()), stream_);
  }
  void fill() {
    while (active_.size() < threads_ && !(demand_.empty() && speculative_.empty())) {
      active_.push_back(demand_.empty() ? speculative_.pop() : demand_.pop());
    }
  }

  double disk_, stream_, bytes_;
  std::size_t threads_;
  double now_ = 0.0;
  fifo<read> demand_, speculative_;
  std::vector<read> active_;
};

result<void> check_timing(const replay_timing& t) {
  if (!(t.layer_compute_s >= 0) || !(t.disk_bytes_per_s > 0) || !(t.read_bytes_per_s >= 0) || t.expert_bytes == 0 ||
      t.loader_threads < 1) {
    return fail(errc::invalid_argument,
                "replay: timing needs layer compute ≥ 0 s, disk bandwidth > 0, read bandwidth ≥ 0, expert bytes > 0 "
                "and at least one loader thread");
  }
  return ok();
}

}  // namespace

void replay_counts::add(const replay_counts& o) {
  accesses += o.accesses;
  hits += o.hits;
  prefetch_hits += o.prefetch_hits;
  late_prefetch_hits += o.late_prefetch_hits;
  misses += o.misses;
  prefetches += o.prefetches;
  useless_prefetches += o.useless_prefetches;
  predicted += o.predicted;
  predicted_correct += o.predicted_correct;
  wait_s += o.wait_s;
}

double hidden_wait_fraction(const replay_result& without_prefetch, const replay_result& with_prefetch) {
  if (without_prefetch.total.wait_s <= 0) return 0.0;
  return 1.0 - with_prefetch.total.wait_s / without_prefetch.total.wait_s;
}

result<replay_result> replay_trace(const routing_trace& trace, const replay_options& options) {
  const std::int32_t layers = trace.layers();
  const auto n = static_cast<std::size_t>(trace.experts());
  if (!options.layer_slots.empty() && options.layer_slots.size() != static_cast<std::size_t>(layers)) {
    return fail(errc::invalid_argument, "replay: {} per-layer slot counts for a trace of {} layers",
                options.layer_slots.size(), layers);
  }
  if (options.timed) QCODER_CHECK(check_timing(options.timing));
  std::vector<layer_pool> pools(static_cast<std::size_t>(layers));
  for (std::int32_t l = 0; l < layers; ++l) {
    layer_pool& p = pools[static_cast<std::size_t>(l)];
    QCODER_TRY(p.policy, make_cache_policy(options.policy, trace.experts()));
    p.slots = options.layer_slots.empty() ? options.slots : options.layer_slots[static_cast<std::size_t>(l)];
    if (p.slots <= 0) return fail(errc::invalid_argument, "replay: layer {} has {} slots", l, p.slots);
    p.resident.reserve(static_cast<std::size_t>(p.slots));
    p.candidates.reserve(static_cast<std::size_t>(p.slots));
    p.position.assign(n, -1);
    p.pinned_at.assign(n, 0);
    p.prefetched_at.assign(n, 0);
    p.chosen_at.assign(n, 0);
    p.ready_at.assign(n, 0.0);
  }
  // Every list must fit in its layer's pool (pinned experts cannot be evicted).
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    for (std::int32_t l = 0; l < layers; ++l) {
      const std::size_t need = std::max(trace.chosen(t, l).size(), options.prefetch ? trace.predicted(t, l).size() : 0);
      if (need > static_cast<std::size_t>(pools[static_cast<std::size_t>(l)].slots)) {
        return fail(errc::invalid_argument, "replay: token {} needs {} experts in layer {}, which has only {} slots",
                    trace.token_id(t), need, l, pools[static_cast<std::size_t>(l)].slots);
      }
    }
  }

  // Untimed, every read is done the moment it is issued; timed, the loader says when.
  loader_sim loader(options.timed ? options.timing : replay_timing{0, 1, 1, 1, 1});
  auto arrived = [&pools](std::int32_t layer, std::int32_t expert, double time) {
    pools[static_cast<std::size_t>(layer)].ready_at[static_cast<std::size_t>(expert)] = time;
  };
  double now = 0.0;  // the compute's clock: the current layer's router time
  auto issue = [&](std::int32_t layer, std::int32_t expert, bool speculative) {
    layer_pool& p = pools[static_cast<std::size_t>(layer)];
    if (!options.timed) {
      p.ready_at[static_cast<std::size_t>(expert)] = now;
      return;
    }
    p.ready_at[static_cast<std::size_t>(expert)] = never;
    loader.submit(layer, expert, speculative);
  };

  replay_result out;
  out.policy = std::string(pools.empty() ? std::string_view(options.policy) : pools[0].policy->name());
  out.prefetch = options.prefetch;
  out.layers.resize(static_cast<std::size_t>(layers));
  replay_counts scratch;
  // Prefetch of layer l's prediction for token t: the policy hears every predicted expert; each one that is
  // not resident is loaded (the prediction is pinned against itself). Runs before the layer's use phase.
  auto prefetch = [&](std::size_t t, std::int32_t l, replay_counts& c) {
    layer_pool& p = pools[static_cast<std::size_t>(l)];
    const std::uint64_t tick = trace.token_id(t);
    ++p.step;
    for (std::int32_t e : trace.chosen(t, l)) p.chosen_at[static_cast<std::size_t>(e)] = p.step;
    const std::span<const std::int32_t> guess = trace.predicted(t, l);
    for (std::int32_t e : guess) {
      p.policy->on_predict(e, tick);
      p.pinned_at[static_cast<std::size_t>(e)] = p.step;
    }
    for (std::int32_t e : guess) {
      const bool right = p.chosen_at[static_cast<std::size_t>(e)] == p.step;
      ++c.predicted;
      c.predicted_correct += right ? 1 : 0;
      if (p.is_resident(e) || !p.has_room(now)) continue;  // no room: every other slot is still being read
      p.load(e, tick, now);
      issue(l, e, true);
      p.prefetched_at[static_cast<std::size_t>(e)] = p.step;
      ++c.prefetches;
      c.useless_prefetches += right ? 0 : 1;
    }
  };

  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    const std::uint64_t tick = trace.token_id(t);
    const bool counted = t >= options.warmup_tokens;
    out.tokens += counted ? 1 : 0;
    const double token_start = now;
    if (options.prefetch && layers > 0) prefetch(t, 0, counted ? out.layers[0] : scratch);
    for (std::int32_t l = 0; l < layers; ++l) {
      layer_pool& p = pools[static_cast<std::size_t>(l)];
      replay_counts& c = counted ? out.layers[static_cast<std::size_t>(l)] : scratch;
      if (options.timed) loader.advance(now, arrived);
      const double router = now;

      // The layer is routed: pin its experts, count hits, queue the misses.
      const std::uint64_t prefetch_step = p.step;
      ++p.step;
      const std::span<const std::int32_t> chosen = trace.chosen(t, l);
      for (std::int32_t e : chosen) p.pinned_at[static_cast<std::size_t>(e)] = p.step;
      c.accesses += chosen.size();
      for (std::int32_t e : chosen) {
        if (p.is_resident(e)) {
          const bool prefetched = options.prefetch && p.prefetched_at[static_cast<std::size_t>(e)] == prefetch_step;
          if (p.loading(e, now)) {
            ++c.late_prefetch_hits;
          } else if (prefetched) {
            ++c.prefetch_hits;
          } else {
            ++c.hits;
          }
        } else {
          ++c.misses;
          // Only slots still being read are left: wait (the loader runs on) until one arrives.
          while (!p.has_room(now) && !loader.idle()) {
            loader.step(arrived);
            now = std::max(now, loader.now());
          }
          p.load(e, tick, now);
          issue(l, e, false);
        }
        p.policy->on_use(e, tick);
      }
      // Speculative prefetch for the next layer, issued from this layer's router.
      if (options.prefetch && l + 1 < layers) {
        prefetch(t, l + 1, counted ? out.layers[static_cast<std::size_t>(l + 1)] : scratch);
      }
      if (!options.timed) continue;
      // The compute waits for the last of its experts, then runs the layer.
      double ready = 0.0;
      for (std::int32_t e : chosen) {
        while (p.ready_at[static_cast<std::size_t>(e)] == never && !loader.idle()) loader.step(arrived);
        ready = std::max(ready, p.ready_at[static_cast<std::size_t>(e)]);
      }
      c.wait_s += std::max(0.0, ready - router);
      now = std::max(now, ready) + options.timing.layer_compute_s;
    }
    if (counted) out.seconds += now - token_start;
  }
  for (const replay_counts& c : out.layers) out.total.add(c);
  return out;
}

}  // namespace qcoder::engine
