// Timing the expert store's reads (expert_read_probe.h).
#include "engine/perf/expert_read_probe.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/experts/expert_store.h"
#include "engine/model/qwen3_next_weights.h"
#include "engine/model_config.h"

namespace qcoder::engine {
namespace {

struct expert_id {
  std::int64_t layer;
  std::int32_t expert;
};

// Reads `ids` through a store of `loaders` loader threads, `in_flight` experts requested at a time (all of
// one layer); returns GB/s of what was read from disk.
result<double> timed_reads(const checkpoint& ckpt, const model_config& config, const qwen3_next_weights& weights,
                           std::uint64_t expert_bytes, std::int64_t sparse_layers, int loaders, int in_flight,
                           std::span<const expert_id> ids) {
  expert_store_options o;
  o.ram_budget = expert_bytes * static_cast<std::uint64_t>(in_flight) * static_cast<std::uint64_t>(sparse_layers);
  o.loader_threads = loaders;
  o.prefetch = false;
  QCODER_TRY(std::unique_ptr<expert_store> store, expert_store::create(ckpt, config, weights, o));
  const std::uint64_t bytes_before = store->totals().bytes_read;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::pair<std::size_t, const mlp_weights*>> ready;
  std::vector<std::int32_t> batch;
  for (std::size_t i = 0; i < ids.size();) {
    // A batch: up to in_flight distinct experts of one layer, as a layer's misses are.
    batch.clear();
    const std::int64_t layer = ids[i].layer;
    while (i < ids.size() && ids[i].layer == layer && static_cast<int>(batch.size()) < in_flight) {
      if (std::find(batch.begin(), batch.end(), ids[i].expert) == batch.end()) batch.push_back(ids[i].expert);
      ++i;
    }
    store->request(layer, batch, false);
    std::size_t done = 0;
    while (done < batch.size()) {
      ready.clear();
      QCODER_CHECK(store->acquire_ready(layer, batch, ready));
      for (const auto& [position, view] : ready) {
        (void)view;
        store->release(layer, batch[position]);
      }
      done += ready.size();
    }
    store->next_token();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto bytes = static_cast<double>(store->totals().bytes_read - bytes_before);
  return seconds > 0 ? bytes / seconds / 1e9 : 0.0;
}

}  // namespace

result<expert_read_speed> measure_expert_reads(const std::filesystem::path& model_dir, int loaders, int warm_reads,
                                               int timed_reads_count, std::uint64_t seed) {
  if (loaders < 1 || warm_reads < -1 || timed_reads_count < 1) {
    return fail(errc::invalid_argument, "expert read probe: {} loaders, {} warm and {} timed reads", loaders, warm_reads,
                timed_reads_count);
  }
  QCODER_TRY(model_config config, model_config::load(model_dir));
  QCODER_TRY(checkpoint ckpt, checkpoint::open(model_dir));
  QCODER_TRY(qwen3_next_weights weights, qwen3_next_weights::bind(ckpt, config));
  std::vector<std::int64_t> sparse;
  for (std::size_t l = 0; l < weights.layers.size(); ++l) {
    if (weights.layers[l].sparse && !weights.layers[l].moe.experts.empty()) sparse.push_back(static_cast<std::int64_t>(l));
  }
  if (sparse.empty()) return fail(errc::invalid_argument, "{}: the model has no routed experts to read", model_dir.string());
  // One store of one slot per layer, only to learn what a slot (an expert as read) holds.
  expert_store_options probe;
  probe.ram_budget = 1;
  QCODER_TRY(std::unique_ptr<expert_store> sizer, expert_store::create(ckpt, config, weights, probe));
  expert_read_speed speed;
  speed.expert_bytes = sizer->expert_bytes();
  speed.loaders = loaders;
  speed.reads = timed_reads_count;
  sizer.reset();

  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick_layer(0, sparse.size() - 1);
  std::uniform_int_distribution<std::int32_t> pick_expert(0, static_cast<std::int32_t>(config.num_experts - 1));
  // Runs of 8 experts of one layer, the layers in random order.
  auto draw = [&](int count) {
    std::vector<expert_id> ids;
    while (static_cast<int>(ids.size()) < count) {
      const std::int64_t layer = sparse[pick_layer(rng)];
      for (int j = 0; j < 8 && static_cast<int>(ids.size()) < count; ++j) ids.push_back({layer, pick_expert(rng)});
    }
    return ids;
  };
  const auto sparse_count = static_cast<std::int64_t>(sparse.size());
  if (warm_reads == -1) {  // as many reads as the model has experts, up to 8 GiB of them
    const std::uint64_t all = static_cast<std::uint64_t>(sparse_count * config.num_experts);
    warm_reads = static_cast<int>(std::min<std::uint64_t>(all, (8ull << 30) / std::max<std::uint64_t>(1, speed.expert_bytes)));
  }
  const std::vector<expert_id> warm = draw(warm_reads);
  QCODER_CHECK(timed_reads(ckpt, config, weights, speed.expert_bytes, sparse_count, loaders, 2 * loaders, warm));
  const std::vector<expert_id> one = draw(timed_reads_count);
  QCODER_TRY(speed.one_reader_gbps,
             timed_reads(ckpt, config, weights, speed.expert_bytes, sparse_count, 1, 1, one));
  const std::vector<expert_id> all = draw(timed_reads_count);
  QCODER_TRY(speed.all_readers_gbps,
             timed_reads(ckpt, config, weights, speed.expert_bytes, sparse_count, loaders, 2 * loaders, all));
  return speed;
}

}  // namespace qcoder::engine
