// The FP8 half of make_model: E4M3 rounding, block scales and the block quantiser, written to match the
// published Qwen3-Next FP8 checkpoints (and the tiny FP8 test checkpoint) bit for bit. The inner loops use
// SSE2 (baseline x86-64) with the same arithmetic as the scalar path. Pure functions; thread-safe.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "engine/make_model.h"
#include "kernels/common/dtype.h"

namespace qcoder::engine {
namespace {

// Signed 32-bit arithmetic only (SSE2 has no unsigned compares or 32-bit min) so that loops over it vectorise.
inline std::uint8_t to_e4m3(float value) {
  const auto bits = std::bit_cast<std::int32_t>(value);
  const std::int32_t sign = (bits >> 24) & 0x80;
  const std::int32_t magnitude = bits & 0x7fffffff;
  const std::int32_t clamped = magnitude < 0x43e00000 ? magnitude : 0x43e00000;  // 448.0f: saturate, infinities too
  // Normal (>= 2^-6): keep 3 of the 23 mantissa bits, rounding half to even; a carry bumps the exponent.
  const std::int32_t normal = ((clamped + 0x7ffff + ((clamped >> 20) & 1)) >> 20) - ((127 - 7) << 3);
  // Subnormal: m · 2^-9 with m = round-half-even(a · 512), via adding 2^23.
  const float y = std::bit_cast<float>(clamped) * 512.0f + 0x1p23f;
  const std::int32_t subnormal = std::bit_cast<std::int32_t>(y) - 0x4b000000;
  const std::int32_t code = clamped < 0x3c800000 ? subnormal : normal;  // 0x3c800000 = 2^-6
  // Zero is always +0, as in the published checkpoints' converter; NaN is 0x7f.
  const std::int32_t out = magnitude > 0x7f800000 ? 0x7f : code == 0 ? 0 : (sign | code);
  return static_cast<std::uint8_t>(out);
}

// out[i] = e4m3(w[i] / s) for one row of one block. SSE2 (baseline x86-64) does 16 at a time with exactly
// the arithmetic of to_e4m3; the tail, and other CPUs, use to_e4m3 itself.
void quantize_run(const float* __restrict w, float s, std::uint8_t* __restrict out, std::int64_t n) {
  std::int64_t i = 0;
#if defined(__SSE2__)
  const __m128 scale = _mm_set1_ps(s);
  auto four = [&](const float* p) {
    const __m128i bits = _mm_castps_si128(_mm_div_ps(_mm_loadu_ps(p), scale));
    const __m128i sign = _mm_and_si128(_mm_srli_epi32(bits, 24), _mm_set1_epi32(0x80));
    const __m128i magnitude = _mm_and_si128(bits, _mm_set1_epi32(0x7fffffff));
    const __m128i max_finite = _mm_set1_epi32(0x43e00000);
    const __m128i below = _mm_cmplt_epi32(magnitude, max_finite);
    const __m128i clamped = _mm_or_si128(_mm_and_si128(below, magnitude), _mm_andnot_si128(below, max_finite));
    const __m128i lsb = _mm_and_si128(_mm_srli_epi32(clamped, 20), _mm_set1_epi32(1));
    const __m128i normal = _mm_sub_epi32(_mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(clamped, _mm_set1_epi32(0x7ffff)), lsb), 20),
                                         _mm_set1_epi32((127 - 7) << 3));
    const __m128 y = _mm_add_ps(_mm_mul_ps(_mm_castsi128_ps(clamped), _mm_set1_ps(512.0f)), _mm_set1_ps(0x1p23f));
    const __m128i subnormal = _mm_sub_epi32(_mm_castps_si128(y), _mm_set1_epi32(0x4b000000));
    const __m128i tiny = _mm_cmplt_epi32(clamped, _mm_set1_epi32(0x3c800000));
    const __m128i code = _mm_or_si128(_mm_and_si128(tiny, subnormal), _mm_andnot_si128(tiny, normal));
    const __m128i zero = _mm_cmpeq_epi32(code, _mm_setzero_si128());
    const __m128i signed_code = _mm_andnot_si128(zero, _mm_or_si128(sign, code));
    const __m128i nan = _mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x7f800000));
    return _mm_or_si128(_mm_and_si128(nan, _mm_set1_epi32(0x7f)), _mm_andnot_si128(nan, signed_code));
  };
  for (; i + 16 <= n; i += 16) {
    const __m128i lo = _mm_packs_epi32(four(w + i), four(w + i + 4));
    const __m128i hi = _mm_packs_epi32(four(w + i + 8), four(w + i + 12));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(lo, hi));
  }
#endif
  for (; i < n; ++i) out[i] = to_e4m3(w[i] / s);
}

float abs_max(const float* w, std::int64_t n, float m) {
  std::int64_t i = 0;
#if defined(__SSE2__)
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 acc = _mm_set1_ps(m);
  for (; i + 4 <= n; i += 4) acc = _mm_max_ps(acc, _mm_and_ps(_mm_loadu_ps(w + i), abs_mask));
  alignas(16) std::array<float, 4> lanes{};
  _mm_store_ps(lanes.data(), acc);
  m = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
#endif
  for (; i < n; ++i) m = std::max(m, std::fabs(w[i]));
  return m;
}

}  // namespace

std::uint8_t f32_to_f8_e4m3(float value) { return to_e4m3(value); }

std::uint16_t fp8_block_scale(float amax) {
  if (!(amax > 0.0f) || !std::isfinite(amax)) return 0x3f80;  // 1.0
  const double target = static_cast<double>(amax) / 448.0;
  std::uint16_t b = f32_to_bf16(static_cast<float>(target));
  while (static_cast<double>(bf16_to_f32(b)) < target) ++b;
  while (b > 1 && static_cast<double>(bf16_to_f32(static_cast<std::uint16_t>(b - 1))) >= target) --b;
  return b;
}

void quantize_fp8(std::span<const float> w, std::int64_t rows, std::int64_t cols, std::array<std::int32_t, 2> block,
                  std::span<std::uint8_t> q, std::span<std::uint16_t> scales) {
  const std::int64_t scale_cols = (cols + block[1] - 1) / block[1];
  std::vector<float> amax(static_cast<std::size_t>(scale_cols));
  std::vector<float> scale(static_cast<std::size_t>(scale_cols));
  for (std::int64_t r0 = 0; r0 < rows; r0 += block[0]) {
    const std::int64_t r1 = std::min(rows, r0 + block[0]);
    std::fill(amax.begin(), amax.end(), 0.0f);
    for (std::int64_t r = r0; r < r1; ++r) {
      for (std::int64_t j = 0; j < scale_cols; ++j) {
        const std::int64_t c0 = j * block[1];
        amax[static_cast<std::size_t>(j)] = abs_max(w.data() + r * cols + c0, std::min<std::int64_t>(block[1], cols - c0), amax[static_cast<std::size_t>(j)]);
      }
    }
    for (std::int64_t j = 0; j < scale_cols; ++j) {
      const std::uint16_t s = fp8_block_scale(amax[static_cast<std::size_t>(j)]);
      scales[static_cast<std::size_t>((r0 / block[0]) * scale_cols + j)] = s;
      scale[static_cast<std::size_t>(j)] = bf16_to_f32(s);
    }
    for (std::int64_t r = r0; r < r1; ++r) {
      for (std::int64_t j = 0; j < scale_cols; ++j) {
        const std::int64_t c0 = j * block[1];
        quantize_run(w.data() + r * cols + c0, scale[static_cast<std::size_t>(j)], q.data() + r * cols + c0, std::min<std::int64_t>(block[1], cols - c0));
      }
    }
  }
}

}  // namespace qcoder::engine
