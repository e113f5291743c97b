// AVX2 + FMA + F16C matmul kernels, only called when the CPU has them (matmul.cpp dispatches).
//
// The instruction set is switched on with a target pragma *after* every include, not with -mavx2 for the
// whole file: inline functions and templates from headers then stay baseline x86-64, so the linker can never
// pick an AVX2-compiled copy of, say, std::vector<float>::resize for code that runs on an older CPU.
//
// FP8 E4M3 → float without a table: the 7 magnitude bits shifted left by 7 are a valid IEEE half whose value
// is the e4m3 value / 2^8 (normals and subnormals alike, since the two formats share the mantissa width
// step), so one F16C conversion gives the value; the 2^8 is folded into the block scale.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"

#pragma GCC target("avx2,fma,f16c")

namespace qcoder::cpu {
namespace {

constexpr float fp8_via_f16_factor = 256.0f;

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  return _mm_cvtss_f32(_mm_add_ss(sums, shuf));
}

// Loads 8 consecutive weights starting at element i as floats (FP8: value / 256).
template <dtype T>
inline __m256 load8(const void* base, std::int64_t i) {
  if constexpr (T == dtype::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else if constexpr (T == dtype::f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(base) + i)));
  } else if constexpr (T == dtype::bf16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(base) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    std::int64_t bits;
    std::memcpy(&bits, static_cast<const std::uint8_t*>(base) + i, 8);
    const __m128i b = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(bits));
    const __m128i magnitude = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7f)), 7);
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8);
    return _mm256_cvtph_ps(_mm_or_si128(magnitude, sign));
  }
}

// Scalar twin of load8 for tails (same scaling convention).
template <dtype T>
inline float load1(const void* base, std::int64_t i) {
  if constexpr (T == dtype::f8_e4m3) {
    return f8_e4m3_to_f32(static_cast<const std::uint8_t*>(base)[i]) / fp8_via_f16_factor;
  } else {
    return load_as_f32(T, base, static_cast<std::size_t>(i));
  }
}

// The factor that turns a load8 value into the real weight for row r, column block b.
template <dtype T>
inline float block_factor(const weight_matrix& w, std::int64_t r, std::int64_t b) {
  const float unit = T == dtype::f8_e4m3 ? fp8_via_f16_factor : 1.0f;
  if (!w.quantized()) return unit;
  return unit * load_as_f32(w.scale_type, w.scales, static_cast<std::size_t>((r / w.block_rows) * w.scale_cols() + b));
}

// Decode reads FP8 differently from prefill, because there every weight is converted once per use and the
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

// Decode: one token, rows [r0, r1), up to 4 rows per pass, weights streamed once; 16 columns per step.
template <dtype T>
void gemv(float* out, const float* x, const weight_matrix& w, std::int64_t r0, std::int64_t r1) {
  using loads = gemv_loads<T>;
  const std::int64_t cols = w.cols;
  const std::int64_t block = w.quantized() ? w.block_cols : cols;
  const std::int64_t n_blocks = (cols + block - 1) / block;
  const std::size_t esize = dtype_size(T);
  const auto* base = static_cast<const std::uint8_t*>(w.data);
  // x_scale · unit = 1: x is multiplied by x_scale as it is loaded, each block's sum by unit (with its scale).
  float x_scale = 1.0f;
  float unit = 1.0f;
  if constexpr (T == dtype::f8_e4m3) {
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
    x_scale = std::ldexp(1.0f, k);
    unit = std::ldexp(1.0f, 120 - k);
  }
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
        for (int i = 0; i < 4; ++i) acc_tail[i] += loads::one(row[i], c) * (x[c] * x_scale);
      }
      for (int i = 0; i < 4; ++i) {
        const float f = factor(r + i, b);
        total[i] = _mm256_fmadd_ps(acc[i], _mm256_set1_ps(f), total[i]);
        tail[i] += acc_tail[i] * f;
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
      for (; c < c_end; ++c) acc_tail += loads::one(row, c) * (x[c] * x_scale);
      const float f = factor(r, b);
      total = _mm256_fmadd_ps(acc, _mm256_set1_ps(f), total);
      tail += acc_tail * f;
    }
    out[r] = hsum(total) + tail;
  }
}

// Dequantises row r into dst[cols] (real values, scales applied).
template <dtype T>
void dequantize_row(float* dst, const weight_matrix& w, std::int64_t r) {
  const std::int64_t cols = w.cols;
  const std::int64_t block = w.quantized() ? w.block_cols : cols;
  const void* row = static_cast<const std::uint8_t*>(w.data) + r * cols * static_cast<std::int64_t>(dtype_size(T));
  for (std::int64_t b = 0; b * block < cols; ++b) {
    const std::int64_t c_end = std::min(cols, (b + 1) * block);
    const float f = block_factor<T>(w, r, b);
    const __m256 fv = _mm256_set1_ps(f);
    std::int64_t c = b * block;
    for (; c + 8 <= c_end; c += 8) _mm256_storeu_ps(dst + c, _mm256_mul_ps(load8<T>(row, c), fv));
    for (; c < c_end; ++c) dst[c] = load1<T>(row, c) * f;
  }
}

// Prefill: n tokens. Rows are dequantised in groups of 4 into a per-thread buffer, then each pair of
// tokens is multiplied against the group (8 accumulators).
template <dtype T>
void gemm(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t r0, std::int64_t r1) {
  const std::int64_t cols = w.cols;
  // Grown once per thread to the widest matrix; not in the steady state of a forward pass.
  thread_local std::vector<float> buffer;
  if (buffer.size() < static_cast<std::size_t>(4 * cols)) buffer.resize(static_cast<std::size_t>(4 * cols));
  for (std::int64_t r = r0; r < r1; r += 4) {
    const int rows = static_cast<int>(std::min<std::int64_t>(4, r1 - r));
    const float* wr[4];
    for (int i = 0; i < 4; ++i) {
      wr[i] = buffer.data() + static_cast<std::size_t>(std::min(i, rows - 1)) * static_cast<std::size_t>(cols);
    }
    for (int i = 0; i < rows; ++i) dequantize_row<T>(buffer.data() + static_cast<std::size_t>(i * cols), w, r + i);
    const std::int64_t c_vec = cols / 8 * 8;
    std::int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
      const float* x0 = x + t * cols;
      const float* x1 = x0 + cols;
      __m256 a[4][2];
      for (auto& row_acc : a) row_acc[0] = row_acc[1] = _mm256_setzero_ps();
      for (std::int64_t c = 0; c < c_vec; c += 8) {
        const __m256 xv0 = _mm256_loadu_ps(x0 + c);
        const __m256 xv1 = _mm256_loadu_ps(x1 + c);
        for (int i = 0; i < 4; ++i) {
          const __m256 wv = _mm256_loadu_ps(wr[i] + c);
          a[i][0] = _mm256_fmadd_ps(wv, xv0, a[i][0]);
          a[i][1] = _mm256_fmadd_ps(wv, xv1, a[i][1]);
        }
      }
      for (int i = 0; i < rows; ++i) {
        float s0 = hsum(a[i][0]);
        float s1 = hsum(a[i][1]);
        for (std::int64_t c = c_vec; c < cols; ++c) {
          s0 += wr[i][c] * x0[c];
          s1 += wr[i][c] * x1[c];
        }
        out[t * w.rows + r + i] = s0;
        out[(t + 1) * w.rows + r + i] = s1;
      }
    }
    for (; t < n; ++t) {
      const float* x0 = x + t * cols;
      for (int i = 0; i < rows; ++i) {
        __m256 acc = _mm256_setzero_ps();
        for (std::int64_t c = 0; c < c_vec; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(wr[i] + c), _mm256_loadu_ps(x0 + c), acc);
        float s = hsum(acc);
        for (std::int64_t c = c_vec; c < cols; ++c) s += wr[i][c] * x0[c];
        out[t * w.rows + r + i] = s;
      }
    }
  }
}

template <dtype T>
void matmul_typed(float* out, const float* x, const weight_matrix& w, std::int64_t n, std::int64_t r0,
                  std::int64_t r1) {
  if (n == 1) {
    gemv<T>(out, x, w, r0, r1);
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
