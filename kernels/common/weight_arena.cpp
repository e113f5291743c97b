#include "kernels/common/weight_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

namespace qcoder {

namespace {
constexpr std::size_t huge_page = std::size_t{2} << 20;
}

void weight_arena_free::operator()(std::byte* p) const { std::free(p); }

weight_arena allocate_weight_arena(std::size_t bytes) {
  const std::size_t align = bytes >= huge_page ? huge_page : 4096;
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + align - 1) / align * align;
  weight_arena arena(static_cast<std::byte*>(std::aligned_alloc(align, rounded)));
#ifdef MADV_HUGEPAGE
  // Advice only: where THP is off the arena is plain 4 KiB pages and works the same.
  if (arena && align == huge_page) ::madvise(arena.get(), rounded, MADV_HUGEPAGE);
#endif
  return arena;
}

}  // namespace qcoder
