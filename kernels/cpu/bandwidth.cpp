// Read bandwidth: an AVX2 (or plain) sum over each thread's slice, best of several passes; copy bandwidth:
// memcpy of slices. The buffer is touched once first so page faults are not timed.
#include "kernels/cpu/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/common/cpu_features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qcoder::cpu {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx2"))) std::uint64_t sum_avx2(const std::uint64_t* p, std::int64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  std::uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

std::uint64_t sum_plain(const std::uint64_t* p, std::int64_t n) {
  std::uint64_t s0 = 0, s1 = 0;
  std::int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    s0 += p[i];
    s1 += p[i + 1];
  }
  if (i < n) s0 += p[i];
  return s0 + s1;
}

struct aligned_free {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

bandwidth_result measure_bandwidth(thread_pool& pool, std::int64_t buffer_bytes, int repetitions) {
  using clock = std::chrono::steady_clock;
  const std::int64_t words = buffer_bytes / 8 / 64 * 64;
  std::unique_ptr<std::uint64_t, aligned_free> src(
      static_cast<std::uint64_t*>(std::aligned_alloc(64, static_cast<std::size_t>(words) * 8)));
  std::unique_ptr<std::uint64_t, aligned_free> dst(
      static_cast<std::uint64_t*>(std::aligned_alloc(64, static_cast<std::size_t>(words) * 8)));
  const int threads = pool.size();
  const std::int64_t slice = words / threads / 64 * 64;
  pool.parallel_for(threads, 1, [&](std::int64_t begin, std::int64_t end, int) {
    for (std::int64_t t = begin; t < end; ++t) {
      for (std::int64_t i = t * slice; i < (t + 1) * slice; ++i) src.get()[i] = static_cast<std::uint64_t>(i);
      std::memset(dst.get() + t * slice, 0, static_cast<std::size_t>(slice) * 8);
    }
  });
  const bool avx2 = host_cpu_features().has_avx2();
  std::vector<std::uint64_t> sink(static_cast<std::size_t>(threads));
  bandwidth_result r;
  r.buffer_bytes = slice * threads * 8;
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto t0 = clock::now();
    pool.parallel_for(threads, 1, [&](std::int64_t begin, std::int64_t end, int) {
      for (std::int64_t t = begin; t < end; ++t) {
        const std::uint64_t* p = src.get() + t * slice;
#if defined(__x86_64__)
        sink[static_cast<std::size_t>(t)] = avx2 ? sum_avx2(p, slice) : sum_plain(p, slice);
#else
        sink[static_cast<std::size_t>(t)] = sum_plain(p, slice);
#endif
      }
    });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    r.read_gbps = std::max(r.read_gbps, static_cast<double>(r.buffer_bytes) / s / 1e9);
  }
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto t0 = clock::now();
    pool.parallel_for(threads, 1, [&](std::int64_t begin, std::int64_t end, int) {
      for (std::int64_t t = begin; t < end; ++t) {
        std::memcpy(dst.get() + t * slice, src.get() + t * slice, static_cast<std::size_t>(slice) * 8);
      }
    });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    r.copy_gbps = std::max(r.copy_gbps, 2.0 * static_cast<double>(r.buffer_bytes) / s / 1e9);
  }
  volatile std::uint64_t keep = 0;
  for (std::uint64_t v : sink) keep = keep + v;
  return r;
}

}  // namespace qcoder::cpu
