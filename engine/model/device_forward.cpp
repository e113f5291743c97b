// Choosing a compute device, and the factory over the device forward passes this build has.
#include "engine/model/device_forward.h"

namespace qcoder::engine {

#if defined(QCODER_HAVE_CUDA_EMU)
namespace emulated {
result<std::unique_ptr<device_forward>> make(const model_config& config, const qwen3_next_weights& weights,
                                             std::int64_t max_batch, const device_forward_options& options);
}
#endif
#if defined(QCODER_HAVE_CUDA)
namespace on_cuda {
result<std::unique_ptr<device_forward>> make(const model_config& config, const qwen3_next_weights& weights,
                                             std::int64_t max_batch, const device_forward_options& options);
}
#endif

result<compute_device> parse_compute_device(std::string_view name) {
  if (name == "cpu") return compute_device::cpu;
  if (name == "cuda") return compute_device::cuda;
  if (name == "cuda-emu") return compute_device::cuda_emu;
  return fail(errc::invalid_argument, "unknown compute backend '{}' (cpu, cuda, cuda-emu)", name);
}

std::string_view compute_device_name(compute_device device) {
  switch (device) {
    case compute_device::cpu: return "cpu";
    case compute_device::cuda: return "cuda";
    case compute_device::cuda_emu: return "cuda-emu";
  }
  return "?";
}

bool compute_device_built(compute_device device) {
  switch (device) {
    case compute_device::cpu: return true;
#if defined(QCODER_HAVE_CUDA)
    case compute_device::cuda: return true;
#endif
#if defined(QCODER_HAVE_CUDA_EMU)
    case compute_device::cuda_emu: return true;
#endif
    default: return false;
  }
}

result<std::unique_ptr<device_forward>> make_device_forward(compute_device device, const model_config& config,
                                                            const qwen3_next_weights& weights, std::int64_t max_batch,
                                                            const device_forward_options& options) {
  switch (device) {
#if defined(QCODER_HAVE_CUDA)
    case compute_device::cuda: return on_cuda::make(config, weights, max_batch, options);
#endif
#if defined(QCODER_HAVE_CUDA_EMU)
    case compute_device::cuda_emu: return emulated::make(config, weights, max_batch, options);
#endif
    default: break;
  }
  return fail(errc::unsupported, "this build of qcoder has no '{}' backend{}", compute_device_name(device),
              device == compute_device::cuda ? " (it was built without nvcc)"
              : device == compute_device::cuda_emu ? " (it was built without the CUDA Toolkit's headers)" : "");
}

}  // namespace qcoder::engine
