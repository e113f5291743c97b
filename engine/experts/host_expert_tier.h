// The host side of the device expert tier: where the bytes of an expert that is in no VRAM slot come from,
// and the CPU tier that may compute such a miss instead of the GPU.
//
// Host memory: either the mapped checkpoint (every expert always there; a device pins and maps it all) or a
// bounded expert_store (its arena pinned and mapped; an expert not in it is read from disk first). Views
// handed out by the store are pinned there until released; the device pass holds them (hold()) while its
// queued copies or kernels read them, and releases them once its streams are drained (release_held()).
//
// The CPU tier: a miss whose rows are few may be computed by the CPU kernels from host memory while the GPU
// runs the rest of the layer, its output rows sent back to the device. prefer_cpu() decides from measured
// costs: the time one expert's copy to the device took (measured by the device pass at load) against the
// CPU's time per row (measured at load, then averaged over every CPU run). The CPU's results are those of
// the CPU backend (close to the GPU kernels', not bitwise equal).
//
// Not thread-safe: the inference thread owns it (the store it uses is thread-safe).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/experts/device_expert_slots.h"
#include "engine/experts/expert_store.h"
#include "engine/model/qwen3_next_weights.h"
#include "kernels/backend.h"

namespace qcoder::engine {

class host_expert_tier {
 public:
  // `store` null: experts are read from `weights` (the mapped checkpoint). `cpu` null or mode never: no CPU
  // tier. None is owned; all outlive this.
  host_expert_tier(const qwen3_next_weights& weights, expert_store* store, backend* cpu, cpu_misses mode,
                   std::int64_t hidden, std::int64_t inner);

  expert_store* store() const { return store_; }
  bool bounded() const { return store_ != nullptr; }
  // The view of `expert` in the mapped checkpoint (meaningful without a store; with one, for shapes only).
  const mlp_weights& checkpoint_view(std::int64_t layer, std::int32_t expert) const;

  // The store's pin on (layer, expert) is released at the next release_held().
  void hold(std::int64_t layer, std::int32_t expert);
  // Releases every held pin: the caller's streams no longer read them.
  void release_held();

  // The CPU tier. enabled(rows): it may run chunks of that many rows (decode and small batches only).
  bool enabled(std::int64_t rows) const;
  // Whether an expert with `rows` assignments runs faster on the CPU than its copy to the device takes.
  bool prefer_cpu(std::int64_t rows) const;
  void set_copy_seconds(double seconds) { copy_seconds_ = seconds; }
  double copy_seconds() const { return copy_seconds_; }
  double cpu_row_seconds() const { return cpu_row_seconds_; }
  // Times one CPU run of `view` on a zero row (twice: the second is kept) as the first per-row cost.
  void measure_cpu(const mlp_weights& view);

  // Queues `view` for the CPU on the assignments `rows` (indices into the chunk's n × k assignments; token
  // a / k); with `release`, its store pin is released once computed.
  void add_job(std::int64_t layer, std::int32_t expert, const mlp_weights* view, std::span<const std::int32_t> rows,
               bool release);
  bool has_jobs() const { return !jobs_.empty(); }
  // Runs the queued jobs: x is [n, hidden] (the layer's normed input), out gets [n × k, hidden] rows at the
  // jobs' assignments (the routed expert's output before weighting). k: choices per token.
  void run_jobs(const float* x, float* out, std::int64_t k);

  static constexpr std::int64_t max_rows = 8;  // chunks up to this many rows may use the CPU tier

 private:
  struct job {
    std::int64_t layer;
    std::int32_t expert;
    const mlp_weights* view;
    std::size_t first, count;  // its assignments in job_rows_
    bool release;
  };
  struct held_pin {
    std::int64_t layer;
    std::int32_t expert;
  };

  const qwen3_next_weights& weights_;
  expert_store* store_;
  backend* cpu_;
  cpu_misses mode_;
  std::int64_t hidden_, inner_;
  double copy_seconds_ = 0.0;      // one expert host → device, measured
  double cpu_row_seconds_ = 0.0;   // one row through one expert on the CPU, measured (running average)
  std::vector<held_pin> held_;
  std::vector<job> jobs_;
  std::vector<std::int32_t> job_rows_;
  std::vector<float> x_, gate_, up_, down_;  // scratch, [rows, hidden or inner]
  std::vector<matmul_job> matmuls_;
};

}  // namespace qcoder::engine
