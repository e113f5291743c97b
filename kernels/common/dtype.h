// Element types of stored weights and their conversion to float.
//
// Weights keep the format they have on disk (BF16, F16, F8_E4M3, F32); kernels convert element by element
// while they compute. These scalar conversions are the reference; vector kernels must agree with them
// exactly. Header-only, constexpr tables, thread-safe.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace qcoder {

enum class dtype : std::uint8_t { f32, f16, bf16, f8_e4m3 };

constexpr std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::f32: return 4;
    case dtype::f16:
    case dtype::bf16: return 2;
    case dtype::f8_e4m3: return 1;
  }
  return 0;
}

// The safetensors spelling: "F32", "F16", "BF16", "F8_E4M3".
constexpr std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::f8_e4m3: return "F8_E4M3";
  }
  return "?";
}

constexpr std::optional<dtype> dtype_from_name(std::string_view name) {
  if (name == "F32") return dtype::f32;
  if (name == "F16") return dtype::f16;
  if (name == "BF16") return dtype::bf16;
  if (name == "F8_E4M3") return dtype::f8_e4m3;
  return std::nullopt;
}

inline float bf16_to_f32(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

// Round to nearest even, as torch and numpy do; NaN stays NaN.
inline std::uint16_t f32_to_bf16(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / nan
  } else if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

// OCP FP8 E4M3 ("e4m3fn"): bias 7, no infinities, 0x7f / 0xff are NaN, max finite 448.
constexpr float f8_e4m3_to_f32_slow(std::uint8_t v) {
  const int sign = (v & 0x80) ? -1 : 1;
  const int exponent = (v >> 3) & 0xf;
  const int mantissa = v & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return __builtin_nanf("");
  float magnitude = 0.0f;
  if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) / 8.0f / 64.0f;  // 2^-6 * m/8
  } else {
    float scale = 1.0f;
    for (int e = exponent - 7; e > 0; --e) scale *= 2.0f;
    for (int e = exponent - 7; e < 0; ++e) scale *= 0.5f;
    magnitude = (1.0f + static_cast<float>(mantissa) / 8.0f) * scale;
  }
  return static_cast<float>(sign) * magnitude;
}

// All 256 values, for table lookups in kernels.
inline const std::array<float, 256>& f8_e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = f8_e4m3_to_f32_slow(static_cast<std::uint8_t>(i));
    return t;
  }();
  return table;
}

inline float f8_e4m3_to_f32(std::uint8_t v) { return f8_e4m3_table()[v]; }

// Element i of an array of T that may sit at any byte address: safetensors does not align tensor data, so
// every load goes through memcpy (a plain load on x86, and defined behaviour everywhere).
template <typename T>
inline T load_unaligned(const void* data, std::size_t i) {
  T value;
  std::memcpy(&value, static_cast<const std::byte*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

// Reads element i of a buffer of type t as float (reference path; kernels use vector conversions).
inline float load_as_f32(dtype t, const void* data, std::size_t i) {
  switch (t) {
    case dtype::f32: return load_unaligned<float>(data, i);
    case dtype::f16: return f16_to_f32(load_unaligned<std::uint16_t>(data, i));
    case dtype::bf16: return bf16_to_f32(load_unaligned<std::uint16_t>(data, i));
    case dtype::f8_e4m3: return f8_e4m3_to_f32(static_cast<const std::uint8_t*>(data)[i]);
  }
  return 0.0f;
}

}  // namespace qcoder
