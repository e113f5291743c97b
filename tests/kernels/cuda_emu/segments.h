// Test helpers for the sequence-mixer kernels on the emulator (attention, conv1d, delta_rule tests): a chunk
// of rows cut into sequences (cuda::row_segments and the host arrays behind it; on the emulator device
// memory is host memory) and seeded random vectors.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/types.h"

namespace qcoder::test {

// One sequence of a chunk: the tokens it already holds and how many rows it has in the chunk.
struct sequence {
  std::int64_t start;
  std::int64_t rows;
};

// The row_segments of sequences laid out one after another; keeps the arrays the view points into.
class segment_table {
 public:
  explicit segment_table(const std::vector<sequence>& sequences) : sequences_(sequences) {
    first_row_.push_back(0);
    for (std::size_t s = 0; s < sequences.size(); ++s) {
      for (std::int64_t i = 0; i < sequences[s].rows; ++i) row_segment_.push_back(static_cast<std::int32_t>(s));
      first_row_.push_back(first_row_.back() + sequences[s].rows);
      start_.push_back(sequences[s].start);
    }
  }
  segment_table(const segment_table&) = delete;
  segment_table& operator=(const segment_table&) = delete;

  cuda::row_segments view() const {
    return {row_segment_.data(), first_row_.data(), start_.data(), static_cast<std::int64_t>(sequences_.size())};
  }
  std::int64_t rows() const { return first_row_.back(); }
  std::int64_t first_row(std::size_t s) const { return first_row_[s]; }
  const std::vector<sequence>& sequences() const { return sequences_; }

 private:
  std::vector<sequence> sequences_;
  std::vector<std::int32_t> row_segment_;
  std::vector<std::int64_t> first_row_;
  std::vector<std::int64_t> start_;
};

inline std::vector<float> random_vector(std::size_t count, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace qcoder::test
