// The host side of the device expert tier (host_expert_tier.h).
#include "engine/experts/host_expert_tier.h"

#include <algorithm>
#include <chrono>

#include "kernels/cpu/ops.h"

namespace qcoder::engine {

host_expert_tier::host_expert_tier(const qwen3_next_weights& weights, expert_store* store, backend* cpu,
                                   cpu_misses mode, std::int64_t hidden, std::int64_t inner)
    : weights_(weights), store_(store), cpu_(cpu), mode_(cpu == nullptr ? cpu_misses::never : mode), hidden_(hidden),
      inner_(inner) {}

const mlp_weights& host_expert_tier::checkpoint_view(std::int64_t layer, std::int32_t expert) const {
  return weights_.layers[static_cast<std::size_t>(layer)].moe.experts[static_cast<std::size_t>(expert)];
}

void host_expert_tier::hold(std::int64_t layer, std::int32_t expert) {
  if (store_ != nullptr) held_.push_back(held_pin{layer, expert});
}

void host_expert_tier::release_held() {
  for (const held_pin& p : held_) store_->release(p.layer, p.expert);
  held_.clear();
}

bool host_expert_tier::enabled(std::int64_t rows) const { return mode_ != cpu_misses::never && rows <= max_rows; }

bool host_expert_tier::prefer_cpu(std::int64_t rows) const {
  if (mode_ == cpu_misses::always) return true;
  if (mode_ == cpu_misses::never) return false;
  return cpu_row_seconds_ * static_cast<double>(rows) < copy_seconds_;
}

void host_expert_tier::measure_cpu(const mlp_weights& view) {
  if (cpu_ == nullptr) return;
  const std::int32_t row = 0;
  std::vector<float> x(static_cast<std::size_t>(hidden_), 0.0f), out(static_cast<std::size_t>(hidden_));
  for (int run = 0; run < 2; ++run) {  // the first run may page the weights in
    cpu_row_seconds_ = 0.0;
    add_job(0, 0, &view, std::span(&row, 1), /*release=*/false);
    run_jobs(x.data(), out.data(), 1);
  }
}

void host_expert_tier::add_job(std::int64_t layer, std::int32_t expert, const mlp_weights* view,
                               std::span<const std::int32_t> rows, bool release) {
  jobs_.push_back(job{layer, expert, view, job_rows_.size(), rows.size(), release});
  job_rows_.insert(job_rows_.end(), rows.begin(), rows.end());
}

void host_expert_tier::run_jobs(const float* x, float* out, std::int64_t k) {
  if (jobs_.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  const auto rows = static_cast<std::int64_t>(job_rows_.size());
  x_.resize(static_cast<std::size_t>(rows * hidden_));
  gate_.resize(static_cast<std::size_t>(rows * inner_));
  up_.resize(gate_.size());
  down_.resize(x_.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* src = x + job_rows_[static_cast<std::size_t>(r)] / k * hidden_;
    std::copy(src, src + hidden_, x_.data() + r * hidden_);
  }
  // Every job's gate and up projections as one parallel batch, then every down projection.
  matmuls_.clear();
  for (const job& j : jobs_) {
    const auto first = static_cast<std::int64_t>(j.first);
    const auto count = static_cast<std::int64_t>(j.count);
    matmuls_.push_back({gate_.data() + first * inner_, x_.data() + first * hidden_, &j.view->gate_proj, count});
    matmuls_.push_back({up_.data() + first * inner_, x_.data() + first * hidden_, &j.view->up_proj, count});
  }
  cpu_->matmul_batch(matmuls_);
  cpu::silu_glu(gate_.data(), gate_.data(), up_.data(), rows * inner_);
  matmuls_.clear();
  for (const job& j : jobs_) {
    const auto first = static_cast<std::int64_t>(j.first);
    matmuls_.push_back({down_.data() + first * hidden_, gate_.data() + first * inner_, &j.view->down_proj,
                        static_cast<std::int64_t>(j.count)});
  }
  cpu_->matmul_batch(matmuls_);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::copy(down_.data() + r * hidden_, down_.data() + (r + 1) * hidden_,
              out + static_cast<std::int64_t>(job_rows_[static_cast<std::size_t>(r)]) * hidden_);
  }
  for (const job& j : jobs_) {
    if (j.release && store_ != nullptr) store_->release(j.layer, j.expert);
  }
  jobs_.clear();
  job_rows_.clear();
  // The per-row cost: a running average, so that a slow outlier (a page fault, a busy core) fades.
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double per_row = seconds / static_cast<double>(rows);
  cpu_row_seconds_ = cpu_row_seconds_ == 0.0 ? per_row : 0.8 * cpu_row_seconds_ + 0.2 * per_row;
}

}  // namespace qcoder::engine
