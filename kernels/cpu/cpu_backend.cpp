// Work splitting for the CPU matmuls: each job is cut into chunks of rows (a multiple of 4, sized so that
// every thread gets several chunks), and all chunks of all jobs are one task range.
#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <array>

#include "kernels/cpu/matmul.h"

namespace qcoder::cpu {
namespace {

// Rows per task: enough work per task to amortise the hand-out, small enough to balance the threads.
std::int64_t rows_per_chunk(const weight_matrix& w, std::int64_t n, int threads) {
  const std::int64_t bytes_per_row = std::max<std::int64_t>(1, w.bytes() / std::max<std::int64_t>(1, w.rows));
  const std::int64_t work_per_row = bytes_per_row * std::max<std::int64_t>(1, n);
  std::int64_t rows = std::max<std::int64_t>(4, (256 * 1024) / work_per_row);       // ≥ ~256 KB per task: long runs keep the prefetchers streaming
  rows = std::min(rows, std::max<std::int64_t>(4, w.rows / (4 * threads)));         // ≥ 4 tasks per thread
  return (rows + 3) / 4 * 4;
}

}  // namespace

cpu_backend::cpu_backend(int threads) : pool_(threads) {}

void cpu_backend::matmul(float* out, const float* x, const weight_matrix& w, std::int64_t n) {
  const std::int64_t chunk = rows_per_chunk(w, n, threads());
  const std::int64_t tasks = (w.rows + chunk - 1) / chunk;
  pool_.parallel_for(tasks, 1, [&](std::int64_t begin, std::int64_t end, int) {
    for (std::int64_t t = begin; t < end; ++t) {
      matmul_rows(out, x, w, n, t * chunk, std::min(w.rows, (t + 1) * chunk));
    }
  });
}

void cpu_backend::matmul_batch(std::span<const matmul_job> jobs) {
  constexpr std::size_t max_jobs = 256;
  if (jobs.size() > max_jobs) {
    for (std::size_t i = 0; i < jobs.size(); i += max_jobs) matmul_batch(jobs.subspan(i, std::min(max_jobs, jobs.size() - i)));
    return;
  }
  std::array<std::int64_t, max_jobs + 1> first_task{};
  std::array<std::int64_t, max_jobs> chunk{};
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    chunk[j] = rows_per_chunk(*jobs[j].w, jobs[j].n, threads());
    const std::int64_t rows = jobs[j].n > 0 ? jobs[j].w->rows : 0;
    first_task[j + 1] = first_task[j] + (rows + chunk[j] - 1) / chunk[j];
  }
  pool_.parallel_for(first_task[jobs.size()], 1, [&](std::int64_t begin, std::int64_t end, int) {
    std::size_t j = 0;
    for (std::int64_t t = begin; t < end; ++t) {
      while (first_task[j + 1] <= t) ++j;
      const matmul_job& job = jobs[j];
      const std::int64_t r0 = (t - first_task[j]) * chunk[j];
      matmul_rows(job.out, job.x, *job.w, job.n, r0, std::min(job.w->rows, r0 + chunk[j]));
    }
  });
}

}  // namespace qcoder::cpu
