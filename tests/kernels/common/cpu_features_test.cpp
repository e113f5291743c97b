#include "kernels/common/cpu_features.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace qcoder {
namespace {

TEST(CpuFeatures, DescribeListsOnlyPresentFeatures) {
  cpu_features f;
  EXPECT_EQ(describe(f), "baseline x86-64");
  f.avx2 = true;
  f.avx512_bf16 = true;
  EXPECT_EQ(describe(f), "avx2 avx512_bf16");
}

TEST(CpuFeatures, Avx512NeedsFoundationBwAndVl) {
  cpu_features f;
  f.avx512f = true;
  f.avx512bw = true;
  EXPECT_FALSE(f.has_avx512());
  f.avx512vl = true;
  EXPECT_TRUE(f.has_avx512());
}

TEST(CpuFeatures, KernelFamilyMatchesHostFeatures) {
  const cpu_features& f = host_cpu_features();
  const std::string family = kernel_family();
  if (std::getenv("QCODER_CPU") == nullptr) {
    EXPECT_EQ(family, f.has_avx512() && f.has_avx2() ? "avx512" : f.has_avx2() ? "avx2" : "scalar");
  }
  if (family == "avx512") {
    EXPECT_TRUE(f.has_avx512());
  }
  if (family == "avx2") {
    EXPECT_TRUE(f.has_avx2());
  }
}

}  // namespace
}  // namespace qcoder
