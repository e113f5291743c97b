// How fast this machine reads routed experts the way the expert store does (its own loader threads, O_DIRECT
// reads of an expert's six tensors from the checkpoint's files): the disk figure of the time model's CPU card.
//
// A shared virtual disk serves recently read data faster (the host caches it), so a cold figure understates
// what the engine sees when it re-reads its working set of experts: the probe reads `warm_reads` random
// experts first (not timed; -1: as many as the model has, up to 8 GiB, the steady state of a long decode),
// then `timed_reads` more, drawn at random over every expert of the model in runs of 8 of one layer, first
// with one loader (one read in flight) and then with `loaders` (2 × loaders requested at a time).
// Thread-safety: a plain function; it starts and stops its own loader threads.
#pragma once

#include <cstdint>
#include <filesystem>

#include "kernels/common/result.h"

namespace qcoder::engine {

struct expert_read_speed {
  double one_reader_gbps = 0;  // one loader, reads one after another
  double all_readers_gbps = 0;  // `loaders` loaders together
  int loaders = 0;
  std::uint64_t expert_bytes = 0;
  int reads = 0;  // timed, per measurement
};

result<expert_read_speed> measure_expert_reads(const std::filesystem::path& model_dir, int loaders = 2,
                                               int warm_reads = -1, int timed_reads = 200, std::uint64_t seed = 1);

}  // namespace qcoder::engine
