// Which CUDA devices this process can use. Plain C++ (no CUDA headers) so that any layer may ask.
// Thread-safe: each call queries the runtime afresh.
#pragma once

#include <string>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::cuda {

struct device_info {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  std::size_t total_memory_bytes = 0;
};

// The visible devices. An error (not an empty list) when the runtime cannot talk to a driver, so that the
// caller can say why no GPU is used.
result<std::vector<device_info>> list_devices();

// The architectures the kernels were compiled for, e.g. "80,86,89,90".
const char* compiled_architectures();

}  // namespace qcoder::cuda
