// The CPU backend: matmuls on the dispatching vector kernels, split over a persistent thread pool, plus
// parallel_for for the per-head work of the model (attention heads, DeltaNet heads).
// Owned and called by the inference thread only.
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace qcoder::cpu {

class cpu_backend : public backend {
 public:
  explicit cpu_backend(int threads);

  std::string_view name() const override { return "cpu"; }
  void matmul(float* out, const float* x, const weight_matrix& w, std::int64_t n) override;
  void matmul_batch(std::span<const matmul_job> jobs) override;

  int threads() const { return pool_.size(); }
  // fn(begin, end, thread_index) over [0, n) in chunks of `grain`.
  template <typename Fn>
  void parallel_for(std::int64_t n, std::int64_t grain, Fn&& fn) {
    pool_.parallel_for(n, grain, std::forward<Fn>(fn));
  }

 private:
  thread_pool pool_;
};

}  // namespace qcoder::cpu
