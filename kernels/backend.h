// The compute backend the model runs on. The model calls the heavy ops (matmuls) through this interface so
// that a GPU backend can take them over op by op; whatever a backend does not override runs on the CPU.
// A backend is owned by the inference thread; its methods are called from that thread only.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "kernels/common/tensor.h"

namespace qcoder {

struct matmul_job {
  float* out = nullptr;        // [n, w->rows]
  const float* x = nullptr;    // [n, w->cols]
  const weight_matrix* w = nullptr;
  std::int64_t n = 0;
};

class backend {
 public:
  virtual ~backend() = default;
  virtual std::string_view name() const = 0;

  // out[n, W.rows] = x[n, W.cols] @ Wᵀ
  virtual void matmul(float* out, const float* x, const weight_matrix& w, std::int64_t n) = 0;
  // Independent matmuls run as one parallel region (the experts of a MoE layer, q/k/v projections).
  virtual void matmul_batch(std::span<const matmul_job> jobs) = 0;
};

}  // namespace qcoder
