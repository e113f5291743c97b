// The WMMA API (CUDA's <mma.h>, namespace nvcuda::wmma) on the emulator: enough of it for the BF16/F16
// tensor-core kernels (16x16x16 fragments, float accumulator), so that kernels/cuda/gemm.cu runs on the CPU.
//
// The names live in qcoder::cuda_emu::nvcuda::wmma, so that kernel code inside QCODER_CUDA_NAMESPACE spells
// them `nvcuda::wmma::...` in both builds, and the emulator's templates never share a mangled name with the
// toolkit's (a binary links both libraries).
//
// What is emulated as a GPU would behave, and what a GPU leaves undefined that is reported instead:
// - A fragment's layout is opaque in CUDA; here element e of lane l is tile element l * num_elements + e in
//   row-major order of the logical tile (A: m×k, B: k×n, accumulator: m×n). Kernels must not depend on it.
// - Every operation (fill, load, store, mma) is a warp collective: each goes through the emulator's warp
//   exchange, so a call from part of a warp is reported by the emulator (a barrier in divergent code), and
//   lanes that pass different pointers or strides to one load/store abort with a message (undefined on a GPU).
// - load/store check CUDA's documented requirements: a 256-bit aligned pointer and an ldm that is a multiple
//   of 16 bytes; a violation aborts with a message naming it (a GPU would fault or read the wrong elements).
// - mma_sync gathers the whole of A, B and C: each lane publishes the addresses of its fragments in a table
//   that lane 0 owns (its address broadcast by an exchange), the lanes read one another's elements between
//   two further exchanges, and each writes its own elements of D. D may alias C (or any operand), as in CUDA.
//   Products are exact in float (bf16×bf16 and half×half fit in 24 bits); the sum runs over k in order.
// Thread-safety: as the emulator's other warp collectives (per warp, inside a launch).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "kernels/cuda/emu/emu.h"

namespace qcoder::cuda_emu::nvcuda::wmma {

namespace emu = ::qcoder::cuda::emu;

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has the 16x16x16 shape only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float>
                                                 : (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>),
                "A and B fragments of __nv_bfloat16 or __half, accumulators of float");
  static_assert(std::is_same_v<Use, accumulator> == std::is_same_v<Layout, void>,
                "A and B fragments name row_major or col_major; accumulators name no layout");

 public:
  // The logical tile: A is M×K, B is K×N, the accumulator M×N.
  static constexpr int tile_rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int tile_cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = tile_rows * tile_cols / emu::warp_size;
  T x[num_elements];
};

namespace detail {

constexpr std::uint32_t full_mask = 0xffffffffu;

[[noreturn]] inline void misuse(const char* op, const char* what) {
  std::fprintf(stderr, "qcoder cuda emulator: nvcuda::wmma::%s: %s (lane %d)\n", op, what, emu::lane_id());
  std::abort();
}

// The warp-collective part of a load or store: every lane must pass the same pointer and stride (packed in
// one 8-byte exchange slot: user-space addresses fit in 48 bits), which must meet CUDA's alignment rules.
inline void collective_access(const void* pointer, unsigned ldm, std::size_t element_bytes, const char* op) {
  const auto address = reinterpret_cast<std::uintptr_t>(pointer);
  if (address % 32 != 0) misuse(op, "the pointer is not 256-bit aligned");
  if (ldm * element_bytes % 16 != 0) misuse(op, "ldm is not a multiple of 16 bytes");
  if (ldm >= (1u << 16)) misuse(op, "ldm is too large for the emulator");
  const std::uint64_t mine = static_cast<std::uint64_t>(address) | static_cast<std::uint64_t>(ldm) << 48;
  std::uint64_t lane0 = 0;
  emu::warp_exchange(full_mask, &mine, &lane0, sizeof mine, [](int) { return 0; }, op);
  if (lane0 != mine) misuse(op, "the lanes of the warp passed different pointers or strides");
}

// A barrier over the warp that moves no data (the exchange is how the emulator names a warp collective).
inline void warp_barrier(const char* op) {
  int nothing = 0;
  int out = 0;
  emu::warp_exchange(full_mask, &nothing, &out, sizeof nothing, [](int lane) { return lane; }, op);
}

// Element (r, c) of a tile whose first element is at `base`, rows `ldm` apart (row-major) or columns
// `ldm` apart (column-major).
inline std::size_t offset(int r, int c, unsigned ldm, bool row_major_memory) {
  return row_major_memory ? static_cast<std::size_t>(r) * ldm + static_cast<std::size_t>(c)
                          : static_cast<std::size_t>(c) * ldm + static_cast<std::size_t>(r);
}

template <typename Frag>
int element_index(int e) {
  return emu::lane_id() * Frag::num_elements + e;
}

inline float to_float(float v) { return v; }
inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float to_float(__half v) { return __half2float(v); }

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& frag, const T& value) {
  detail::warp_barrier("nvcuda::wmma::fill_fragment");
  for (T& element : frag.x) element = value;
}

// A or B: the layout comes from the fragment's type.
template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& frag, const T* pointer, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "an accumulator load names its memory layout");
  using frag_t = fragment<Use, M, N, K, T, Layout>;
  detail::collective_access(pointer, ldm, sizeof(T), "load_matrix_sync");
  for (int e = 0; e < frag_t::num_elements; ++e) {
    const int i = detail::element_index<frag_t>(e);
    frag.x[e] = pointer[detail::offset(i / frag_t::tile_cols, i % frag_t::tile_cols, ldm,
                                       std::is_same_v<Layout, row_major>)];
  }
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& frag, const float* pointer, unsigned ldm,
                      layout_t layout) {
  using frag_t = fragment<accumulator, M, N, K, float>;
  detail::collective_access(pointer, ldm, sizeof(float), "load_matrix_sync");
  for (int e = 0; e < frag_t::num_elements; ++e) {
    const int i = detail::element_index<frag_t>(e);
    frag.x[e] = pointer[detail::offset(i / N, i % N, ldm, layout == mem_row_major)];
  }
}

template <int M, int N, int K>
void store_matrix_sync(float* pointer, const fragment<accumulator, M, N, K, float>& frag, unsigned ldm,
                       layout_t layout) {
  using frag_t = fragment<accumulator, M, N, K, float>;
  detail::collective_access(pointer, ldm, sizeof(float), "store_matrix_sync");
  for (int e = 0; e < frag_t::num_elements; ++e) {
    const int i = detail::element_index<frag_t>(e);
    pointer[detail::offset(i / N, i % N, ldm, layout == mem_row_major)] = frag.x[e];
  }
}

// D = A·B + C over the warp.
template <int M, int N, int K, typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b, const fragment<accumulator, M, N, K, float>& c) {
  using a_t = fragment<matrix_a, M, N, K, T, LayoutA>;
  using b_t = fragment<matrix_b, M, N, K, T, LayoutB>;
  using c_t = fragment<accumulator, M, N, K, float>;
  struct operands {
    const T* a;
    const T* b;
    const float* c;
  };
  operands table[emu::warp_size];  // only lane 0's is used
  operands* shared_table = table;
  emu::warp_exchange(detail::full_mask, &shared_table, &shared_table, sizeof shared_table, [](int) { return 0; },
                     "nvcuda::wmma::mma_sync");
  const int lane = emu::lane_id();
  shared_table[lane] = operands{a.x, b.x, c.x};
  detail::warp_barrier("nvcuda::wmma::mma_sync");  // every lane's addresses are in the table

  // Element (r, c) of a tile spread over the lanes: lane i / n, element i % n, i in row-major order.
  const auto a_at = [&](int m, int k) {
    const int i = m * a_t::tile_cols + k;
    return detail::to_float(shared_table[i / a_t::num_elements].a[i % a_t::num_elements]);
  };
  const auto b_at = [&](int k, int n) {
    const int i = k * b_t::tile_cols + n;
    return detail::to_float(shared_table[i / b_t::num_elements].b[i % b_t::num_elements]);
  };
  float result[c_t::num_elements];
  for (int e = 0; e < c_t::num_elements; ++e) {
    const int i = lane * c_t::num_elements + e;
    const int m = i / N;
    const int n = i % N;
    float sum = shared_table[lane].c[e];
    for (int k = 0; k < K; ++k) sum += a_at(m, k) * b_at(k, n);
    result[e] = sum;
  }
  detail::warp_barrier("nvcuda::wmma::mma_sync");  // no lane reads another's operands any more
  for (int e = 0; e < c_t::num_elements; ++e) d.x[e] = result[e];
}

}  // namespace qcoder::cuda_emu::nvcuda::wmma
