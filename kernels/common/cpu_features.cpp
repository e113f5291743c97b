// CPU feature detection through the compiler's cpuid helpers (they also check that the OS saves the wide
// registers, via XGETBV).
#include "kernels/common/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace qcoder {
namespace {

cpu_features detect() {
  cpu_features f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

}  // namespace

const cpu_features& host_cpu_features() {
  static const cpu_features features = detect();
  return features;
}

std::string describe(const cpu_features& f) {
  std::string out;
  auto add = [&out](bool present, const char* name) {
    if (!present) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512_bf16, "avx512_bf16");
  add(f.avx512_vnni, "avx512_vnni");
  return out.empty() ? "baseline x86-64" : out;
}

const char* kernel_family() {
  static const char* const family = [] {
    const cpu_features& f = host_cpu_features();
    const char* best = f.has_avx512() && f.has_avx2() ? "avx512" : f.has_avx2() ? "avx2" : "scalar";
    const char* cap = std::getenv("QCODER_CPU");
    if (cap == nullptr) return best;
    if (std::strcmp(cap, "scalar") == 0) return "scalar";
    if (std::strcmp(cap, "avx2") == 0 && std::strcmp(best, "scalar") != 0) return "avx2";
    return best;
  }();
  return family;
}

}  // namespace qcoder
