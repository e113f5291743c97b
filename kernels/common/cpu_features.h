// What the CPU we run on can do, found once at start-up; kernels dispatch on it.
//
// The build never assumes more than x86-64 baseline: AVX2 and AVX-512 kernels live in their own translation
// units and are only called when these flags say the CPU (and the OS, for the wider registers) supports them.
// Thread-safe: the value is computed once and read-only afterwards.
#pragma once

#include <string>

namespace qcoder {

struct cpu_features {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
  bool avx512_vnni = false;

  // The AVX-512 kernels need F, BW and VL together; BF16 and VNNI are extra paths on top.
  bool has_avx512() const { return avx512f && avx512bw && avx512vl; }
  bool has_avx2() const { return avx2 && fma && f16c; }
};

// The features of this machine, detected on first call.
const cpu_features& host_cpu_features();

// "avx2 fma f16c avx512f ..." for `qcoder version` and logs.
std::string describe(const cpu_features& features);

// The widest kernel family that will run: "avx512", "avx2" or "scalar". QCODER_CPU=avx2|scalar lowers it
// (to test the narrower paths on a wide machine); it never raises it above what the CPU has.
const char* kernel_family();

}  // namespace qcoder
