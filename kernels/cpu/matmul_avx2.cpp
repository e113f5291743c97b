// AVX2 + FMA + F16C matmul kernels, only called when the CPU has them (matmul.cpp dispatches).
//
// The instruction set is switched on with a target pragma *after* every include, not with -mavx2 for the
// whole file: inline functions and templates from headers then stay baseline x86-64, so the linker can never
// pick an AVX2-compiled copy of, say, std::vector<float>::resize for code that runs on an older CPU.
//
// Batch invariance: decode (gemv) and prefill (gemm) compute each output with the same operations in the same
// order, so a token's result never depends on how many tokens ran with it.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"

#pragma GCC target("avx2,fma,f16c")

namespace qcoder::cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  return _mm_cvtss_f32(_mm_add_ss(sums, shuf));
}

// Loads 8 consecutive weights starting at element i as floats (types converted exactly; not FP8, see below).
template <dtype T>
inline __m256 load8(const void* base, std::int64_t i) {
  if constexpr (T == dtype::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (T == dtype::f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(base) + i)));
  } else {
    static_assert(T == dtype::bf16);
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(base) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// FP8 is converted without a table, because in decode every weight is converted once per use and the
// conversion is the bottleneck: the e4m3 bits moved straight into a float's exponent and mantissa fields
// (sign-extend to 32 bits, shift left by 20, keep the sign and the 7 magnitude bits) give the value times
// 2^-120. E4M3 subnormals become float subnormals, still exact, and FMA is exact on them (and runs at full
// speed on the x86 cores we target). x is scaled up by 2^k instead, k as large as its largest element
// allows, and the remaining 2^(120-k) goes into the block scale, so no product or sum leaves the normal
// range. Three integer µops per 8 weights, against five for the half-precision route.
inline __m256 fp8_times_2pow_minus120(const std::uint8_t* p) {
  std::int64_t bits;
  std::memcpy(&bits, p, 8);
  const __m256i widened = _mm256_slli_epi32(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)), 20);
  return _mm256_castsi256_ps(_mm256_and_si256(widened, _mm256_set1_epi32(static_cast<int>(0x87F00000u))));
}

// How decode reads one weight type: 8 weights as floats and one as a scalar, both times `unit` (1 for all
// types but FP8, where it is 2^-120 as above).
template <dtype T>
struct gemv_loads {
  static __m256 eight(const void* base, std::int64_t i) {
    if constexpr (T == dtype::f8_e4m3) {
      return fp8_times_2pow_minus120(static_cast<const std::uint8_t*>(base) + i);
    } else {
      return load8<T>(base, i);
    }
  }
  static float one(const void* base, std::int64_t i) {
    if constexpr (T == dtype::f8_e4m3) {
      return std::ldexp(f8_e4m3_to_f32(static_cast<const std::uint8_t*>(base)[i]), -120);
    } else {
      return load_as_f32(T, base, static_cast<std::size_t>(i));
    }
  }
};

// How x is scaled for one token: x_scale · unit = 1. x is multiplied by x_scale as it is loaded, each
// block's sum by unit (with its scale). Only FP8 scales (see above); powers of two, so exact.
struct x_scaling {
  float x_scale = 1.0f;
  float unit = 1.0f;
};

template <dtype T>
x_scaling scaling_of(const float* x, std::int64_t cols) {
  if constexpr (T != dtype::f8_e4m3) {
    return {};
  } else {
    __m256 amax = _mm256_setzero_ps();
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    std::int64_t c = 0;
    for (; c + 8 <= cols; c += 8) amax = _mm256_max_ps(amax, _mm256_and_ps(_mm256_loadu_ps(x + c), abs_mask));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, amax);
    float largest = 0.0f;
    for (float v : lanes) largest = std::max(largest, v);
    for (; c < cols; ++c) largest = std::max(largest, std::fabs(x[c]));
    int exponent = 0;
    std::frexp(largest, &exponent);                  // largest < 2^exponent
    const int k = std::min(120, 126 - exponent);     // largest · 2^k < 2^126
    return {std::ldexp(1.0f, k), std::ldexp(1.0f, 120 - k)};
  }
}

// How both kernels walk W: rows of `cols` elements of `esize` bytes from `base`, in column blocks of
// `block` (the quantisation block, or the whole row).
struct block_walk {
  block_walk(const weight_matrix& w, std::size_t element_size)
      : cols(w.cols),
        block(w.quantized() ? w.block_cols : w.cols),
        n_blocks((cols + block - 1) / block),
        esize(element_size),
        base(static_cast<const std::uint8_t*>(w.data)) {}
  std::int64_t cols, block, n_blocks;
  std::size_t esize;
  const std::uint8_t* base;
};

// Decode: one token, rows [r0, r1), up to 4 rows per pass, weights streamed once; 16 columns per step.
template <dtype T>
void gemv(float* out, const float* x, const weight_matrix& w, std::int64_t r0, std::int64_t r1) {
  using loads = gemv_loads<T>;
  const block_walk walk(w, dtype_size(T));
  const std::int64_t cols = walk.cols, block = walk.block, n_blocks = walk.n_blocks;
  const std::size_t esize = walk.esize;
  const std::uint8_t* base = walk.base;
  const x_scaling scaling = scaling_of<T>(x, cols);
  const float x_scale = scaling.x_scale;
  const float unit = scaling.unit;
  const __m256 xs = _mm256_set1_ps(x_scale);
  auto load_x = [&](std::int64_t c) {
    if constexpr (T == dtype::f8_e4m3) {
      return _mm256_mul_ps(_mm256_loadu_ps(x + c), xs);
    } else {
      return _mm256_loadu_ps(x + c);
    }
  };
  auto factor = [&](std::int64_t r, std::int64_t b) {
    if (!w.quantized()) return unit;
    return unit * load_as_f32(w.scale_type, w.scales, static_cast<std::size_t>((r / w.block_rows) * w.scale_cols() + b));
  };
  std::int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const void* row[4] = {base + r * cols * esize, base + (r + 1) * cols * esize, base + (r + 2) * cols * esize,
                          base + (r + 3) * cols * esize};
    __m256 total[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float tail[4] = {0, 0, 0, 0};
    for (std::int64_t b = 0; b < n_blocks; ++b) {
      const std::int64_t c_begin = b * block;
      const std::int64_t c_end = std::min(cols, c_begin + block);
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      float acc_tail[4] = {0, 0, 0, 0};
      std::int64_t c = c_begin;
      for (; c + 16 <= c_end; c += 16) {
        const __m256 x0 = load_x(c);
        const __m256 x1 = load_x(c + 8);
        for (int i = 0; i < 4; ++i) {
          acc[i] = _mm256_fmadd_ps(loads::eight(row[i], c), x0, acc[i]);
          acc[i] = _mm256_fmadd_ps(loads::eight(row[i], c + 8), x1, acc[i]);
        }
      }
      for (; c + 8 <= c_end; c += 8) {
        const __m256 xv = load_x(c);
        for (int i = 0; i < 4; ++i) acc[i] = _mm256_fmadd_ps(loads::eight(row[i], c), xv, acc[i]);
      }
      for (; c < c_end; ++c) {
        for (int i = 0; i < 4; ++i) acc_tail[i] = std::fma(loads::one(row[i], c), x[c] * x_scale, acc_tail[i]);
      }
      for (int i = 0; i < 4; ++i) {
        const float f = factor(r + i, b);
        total[i] = _mm256_fmadd_ps(acc[i], _mm256_set1_ps(f), total[i]);
        tail[i] = std::fma(acc_tail[i], f, tail[i]);
      }
    }
    for (int i = 0; i < 4; ++i) out[r + i] = hsum(total[i]) + tail[i];
  }
  for (; r < r1; ++r) {
    const void* row = base + r * cols * esize;
    __m256 total = _mm256_setzero_ps();
    float tail = 0.0f;
    for (std::int64_t b = 0; b < n_blocks; ++b) {
      const std::int64_t c_begin = b * block;
      const std::int64_t c_end = std::min(cols, c_begin + block);
      __m256 acc = _mm256_setzero_ps();
      float acc_tail = 0.0f;
      std::int64_t c = c_begin;
      for (; c + 8 <= c_end; c += 8) acc = _mm256_fmadd_ps(loads::eight(row, c), load_x(c), acc);
      for (; c < c_end; ++c) acc_tail = std::fma(loads::one(row, c), x[c] * x_scale, acc_tail);
      const float f = factor(r, b);
      total = _mm256_fmadd_ps(acc, _mm256_set1_ps(f), total);
      tail = std::fma(acc_tail, f, tail);
    }
    out[r] = hsum(total) + tail;
  }
}

// The tokens of a batch as gemv would see them: each one's scaling, and for FP8 `x` pointed at x · x_scale
// per token (the product gemv forms as it loads x). Per-thread buffers, grown to the largest batch.
template <dtype T>
const std::vector<x_scaling>& prepare_tokens(const float*& x, std::int64_t n, std::int64_t cols) {
  thread_local std::vector<x_scaling> scalings;
  thread_local std::vector<float> scaled;
  if (scalings.size() < static_cast<std::size_t>(n)) scalings.resize(static_cast<std::size_t>(n));
  for (std::int64_t t = 0; t < n; ++t) scalings[static_cast<std::size_t>(t)] = scaling_of<T>(x + t * cols, cols);
  if constexpr (T == dtype::f8_e4m3) {
    if (scaled.size() < static_cast<std::size_t>(n * cols)) scaled.resize(static_cast<std::size_t>(n * cols));
    for (std::int64_t t = 0; t < n; ++t) {
      const __m256 xs = _mm256_set1_ps(scalings[static_cast<std::size_t>(t)].x_scale);
      const float* src = x + t * cols;
      float* dst = scaled.data() + t * cols;
      std::int64_t c = 0;
      for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(dst + c, _mm256_mul_ps(_mm256_loadu_ps(src + c), xs));
      for (; c < cols; ++c) dst[c] = src[c] * scalings[static_cast<std::size_t>(t)].x_scale;
    }
    x = scaled.data();
  }
  return scalings;
}

// Prefill: n tokens. Every (token, row) result is computed with exactly the operations gemv uses for it
// (same conversions, same x scaling, same lane order within each block, the same per-block scale step and
// the same tail), so a token's output does not depend on the batch it ran in: a prompt gives bit-identical
// logits however it is split into chunks, which the prefix cache and speculative decoding rely on. What
// batching saves is the weight conversion: rows are converted once per group of 4 into a per-thread buffer
// and used by every token, two tokens at a time.
template <dtype T>
void gemm(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t r0, std::int64_t r1) {
  using loads = gemv_loads<T>;
  const block_walk walk(w, dtype_size(T));
  const std::int64_t cols = walk.cols, block = walk.block, n_blocks = walk.n_blocks;
  const std::size_t esize = walk.esize;
  const std::uint8_t* base = walk.base;
  // Grown once per thread to the widest matrix; not in the steady state of a forward pass.
  thread_local std::vector<float> buffer;
  if (buffer.size() < static_cast<std::size_t>(4 * cols)) buffer.resize(static_cast<std::size_t>(4 * cols));
  const std::vector<x_scaling>& scalings = prepare_tokens<T>(x, n, cols);
  auto scale = [&](std::int64_t r, std::int64_t b) {
    return load_as_f32(w.scale_type, w.scales, static_cast<std::size_t>((r / w.block_rows) * w.scale_cols() + b));
  };

  for (std::int64_t r = r0; r < r1; r += 4) {
    const int rows = static_cast<int>(std::min<std::int64_t>(4, r1 - r));
    const float* wr[4];
    for (int i = 0; i < 4; ++i) {
      wr[i] = buffer.data() + static_cast<std::size_t>(std::min(i, rows - 1)) * static_cast<std::size_t>(cols);
    }
    for (int i = 0; i < rows; ++i) {  // the values gemv's loads produce (FP8: times 2^-120)
      const void* src = base + (r + i) * cols * static_cast<std::int64_t>(esize);
      float* dst = buffer.data() + static_cast<std::size_t>(i * cols);
      std::int64_t c = 0;
      for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(dst + c, loads::eight(src, c));
      for (; c < cols; ++c) dst[c] = loads::one(src, c);
    }
    // Tokens in pairs (the last one alone when n is odd); `pair` is 2 or 1.
    for (std::int64_t t = 0; t < n; t += 2) {
      const int pair = static_cast<int>(std::min<std::int64_t>(2, n - t));
      const float* xt[2] = {x + t * cols, x + (t + pair - 1) * cols};
      const x_scaling sc[2] = {scalings[static_cast<std::size_t>(t)], scalings[static_cast<std::size_t>(t + pair - 1)]};
      __m256 total[4][2];
      float tail[4][2] = {};
      for (auto& row_total : total) row_total[0] = row_total[1] = _mm256_setzero_ps();
      for (std::int64_t b = 0; b < n_blocks; ++b) {
        const std::int64_t c_begin = b * block;
        const std::int64_t c_end = std::min(cols, c_begin + block);
        __m256 acc[4][2];
        float acc_tail[4][2] = {};
        for (auto& row_acc : acc) row_acc[0] = row_acc[1] = _mm256_setzero_ps();
        std::int64_t c = c_begin;
        for (; c + 8 <= c_end; c += 8) {
          const __m256 xv[2] = {_mm256_loadu_ps(xt[0] + c), _mm256_loadu_ps(xt[1] + c)};
          for (int i = 0; i < 4; ++i) {
            const __m256 wv = _mm256_loadu_ps(wr[i] + c);
            acc[i][0] = _mm256_fmadd_ps(wv, xv[0], acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(wv, xv[1], acc[i][1]);
          }
        }
        for (; c < c_end; ++c) {
          for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 2; ++j) acc_tail[i][j] = std::fma(wr[i][c], xt[j][c], acc_tail[i][j]);
          }
        }
        for (int i = 0; i < rows; ++i) {
          for (int j = 0; j < 2; ++j) {
            const float f = w.quantized() ? sc[j].unit * scale(r + i, b) : sc[j].unit;
            total[i][j] = _mm256_fmadd_ps(acc[i][j], _mm256_set1_ps(f), total[i][j]);
            tail[i][j] = std::fma(acc_tail[i][j], f, tail[i][j]);
          }
        }
      }
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < pair; ++j) out[(t + j) * w.rows + r + i] = hsum(total[i][j]) + tail[i][j];
      }
    }
  }
}

// A few tokens (a decode step of several sequences, or a token and its drafts): rows two at a time and
// tokens G (1 to 4) at a time, each 8 weights converted once, in registers, for every token of the group.
// Converting is a large part of decode's work, so this is what makes a step of several sequences cost less
// than that many steps; gemm's convert-into-a-buffer pays off only for many tokens. Per (token, row), the
// same operations as gemv (see gemm).
template <dtype T, int G>
void gemm_group(float* out, const float* x, const x_scaling* sc, const weight_matrix& w, const block_walk& walk,
                std::int64_t r0, std::int64_t r1) {
  using loads = gemv_loads<T>;
  const std::int64_t cols = walk.cols, block = walk.block, n_blocks = walk.n_blocks;
  const std::int64_t stride = cols * static_cast<std::int64_t>(walk.esize);
  auto scale = [&](std::int64_t r, std::int64_t b) {
    return load_as_f32(w.scale_type, w.scales, static_cast<std::size_t>((r / w.block_rows) * w.scale_cols() + b));
  };
  for (std::int64_t r = r0; r < r1; r += 2) {
    const int rows = static_cast<int>(std::min<std::int64_t>(2, r1 - r));
    const void* row[2] = {walk.base + r * stride, walk.base + (r + rows - 1) * stride};  // one row: twice
    __m256 total[2][G];
    float tail[2][G] = {};
    for (auto& row_total : total) {
      for (auto& v : row_total) v = _mm256_setzero_ps();
    }
    for (std::int64_t b = 0; b < n_blocks; ++b) {
      const std::int64_t c_begin = b * block;
      const std::int64_t c_end = std::min(cols, c_begin + block);
      __m256 acc[2][G];
      float acc_tail[2][G] = {};
      for (auto& row_acc : acc) {
        for (auto& v : row_acc) v = _mm256_setzero_ps();
      }
      std::int64_t c = c_begin;
      for (; c + 8 <= c_end; c += 8) {
        const __m256 w0 = loads::eight(row[0], c);
        const __m256 w1 = loads::eight(row[1], c);
        for (int j = 0; j < G; ++j) {
          const __m256 xv = _mm256_loadu_ps(x + j * cols + c);
          acc[0][j] = _mm256_fmadd_ps(w0, xv, acc[0][j]);
          acc[1][j] = _mm256_fmadd_ps(w1, xv, acc[1][j]);
        }
      }
      for (; c < c_end; ++c) {
        for (int i = 0; i < 2; ++i) {
          const float wv = loads::one(row[i], c);
          for (int j = 0; j < G; ++j) acc_tail[i][j] = std::fma(wv, x[j * cols + c], acc_tail[i][j]);
        }
      }
      for (int i = 0; i < rows; ++i) {
        for (int j = 0; j < G; ++j) {
          const float f = w.quantized() ? sc[j].unit * scale(r + i, b) : sc[j].unit;
          total[i][j] = _mm256_fmadd_ps(acc[i][j], _mm256_set1_ps(f), total[i][j]);
          tail[i][j] = std::fma(acc_tail[i][j], f, tail[i][j]);
        }
      }
    }
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < G; ++j) out[j * w.rows + r + i] = hsum(total[i][j]) + tail[i][j];
    }
  }
}

template <dtype T>
void gemm_few(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t r0, std::int64_t r1) {
  const block_walk walk(w, dtype_size(T));
  const std::vector<x_scaling>& scalings = prepare_tokens<T>(x, n, walk.cols);
  for (std::int64_t t = 0; t < n; t += 4) {
    const std::int64_t group = std::min<std::int64_t>(4, n - t);
    float* o = out + t * w.rows;
    const float* xt = x + t * walk.cols;
    const x_scaling* sc = scalings.data() + t;
    switch (group) {
      case 1: gemm_group<T, 1>(o, xt, sc, w, walk, r0, r1); break;
      case 2: gemm_group<T, 2>(o, xt, sc, w, walk, r0, r1); break;
      case 3: gemm_group<T, 3>(o, xt, sc, w, walk, r0, r1); break;
      default: gemm_group<T, 4>(o, xt, sc, w, walk, r0, r1); break;
    }
  }
}

template <dtype T>
void matmul_typed(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t r0,
                  std::int64_t r1) {
  if (n == 1) {
    gemv<T>(out, x, w, r0, r1);
  } else if (n <= 8) {
    gemm_few<T>(out, x, w, n, r0, r1);
  } else {
    gemm<T>(out, x, w, n, r0, r1);
  }
}

}  // namespace

void matmul_rows_avx2(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t row_begin,
                      std::int64_t row_end) {
  switch (w.type) {
    case dtype::f32: return matmul_typed<dtype::f32>(out, x, w, n, row_begin, row_end);
    case dtype::f16: return matmul_typed<dtype::f16>(out, x, w, n, row_begin, row_end);
    case dtype::bf16: return matmul_typed<dtype::bf16>(out, x, w, n, row_begin, row_end);
    case dtype::f8_e4m3: return matmul_typed<dtype::f8_e4m3>(out, x, w, n, row_begin, row_end);
  }
}

}  // namespace qcoder::cpu
