// `qcoder version`: what this binary is and what it can use on this machine.
#include <cstdio>

#include <fmt/core.h>

#include "kernels/common/cpu_features.h"
#include "lsp/cli/command.h"
#include "lsp/version.h"

#ifdef QCODER_HAVE_CUDA
#include "kernels/cuda/device_info.h"
#endif

namespace qcoder::cli {

int run_version(args_view args) {
  arg_parser parser("version", "Print the version, build type, CPU features found and whether CUDA is built in.");
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  fmt::print("qcoder {}\n", version_string);
  fmt::print("build: {} ({}, {})\n", build_type, compiler_id, git_revision);
  fmt::print("cpu: {} -> {} kernels\n", describe(host_cpu_features()), kernel_family());
#ifdef QCODER_HAVE_CUDA
  fmt::print("cuda: on (kernels for sm {})", cuda::compiled_architectures());
  if (result<std::vector<cuda::device_info>> devices = cuda::list_devices(); !devices) {
    fmt::print(", no usable device: {}\n", devices.err().message);
  } else if (devices->empty()) {
    fmt::print(", no device found\n");
  } else {
    fmt::print("\n");
    for (const cuda::device_info& d : *devices) {
      fmt::print("  device {}: {} (sm {}{}, {:.1f} GiB)\n", d.index, d.name, d.compute_major, d.compute_minor,
                 static_cast<double>(d.total_memory_bytes) / (1 << 30));
    }
  }
#else
  fmt::print("cuda: off (built without nvcc)\n");
#endif
  return exit_ok;
}

}  // namespace qcoder::cli
