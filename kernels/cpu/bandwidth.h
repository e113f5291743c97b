// Measures this machine's memory bandwidth the way weight streaming uses it: threads reading a buffer
// far larger than the caches, each its own contiguous part. Benchmarks report their weight traffic as a
// fraction of this figure.
// Thread-safe to call; it runs on the given pool, which must not be in use.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace qcoder::cpu {

struct bandwidth_result {
  double read_gbps = 0.0;  // best of the repetitions, 1e9 bytes/s
  double copy_gbps = 0.0;  // memcpy, counting bytes read + written
  std::int64_t buffer_bytes = 0;
};

bandwidth_result measure_bandwidth(thread_pool& pool, std::int64_t buffer_bytes = std::int64_t{1} << 30,
                                   int repetitions = 5);

}  // namespace qcoder::cpu
