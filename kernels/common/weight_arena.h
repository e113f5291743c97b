#pragma once
// Memory the process owns for weights it streams (the expert cache, resident weights copied out of the
// checkpoint). Aligned to 2 MiB and marked for transparent huge pages where the kernel offers them: a
// GEMV then walks one TLB entry per 2 MiB instead of one per 4 KiB page, which measured 24 -> 32 GB/s
// for a BF16 GEMV from DRAM on 2 threads here. Pages are not touched: the caller fills them.

#include <cstddef>
#include <memory>

namespace qcoder {

struct weight_arena_free {
  void operator()(std::byte* p) const;
};
using weight_arena = std::unique_ptr<std::byte, weight_arena_free>;

// nullptr when the allocation fails. Zero bytes gives a valid, empty arena.
weight_arena allocate_weight_arena(std::size_t bytes);

}  // namespace qcoder
