// Device enumeration through the CUDA runtime (linked statically; it loads the driver at run time, so the
// binary starts on machines without one and reports that instead).
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device_info.h"

namespace qcoder::cuda {

result<std::vector<device_info>> list_devices() {
  int count = 0;
  QCODER_CUDA_CHECK(cudaGetDeviceCount(&count));
  std::vector<device_info> devices;
  devices.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    QCODER_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    devices.push_back(device_info{i, prop.name, prop.major, prop.minor, prop.totalGlobalMem});
  }
  return devices;
}

const char* compiled_architectures() { return QCODER_CUDA_ARCHITECTURES; }

}  // namespace qcoder::cuda
