// Logging set-up. Every log line goes to stderr or to a file, never to stdout: stdout belongs to the
// protocol (LSP JSON-RPC) or to a command's machine-readable output.
// Call configure_logging once at start-up, before other threads exist; spdlog is thread-safe afterwards.
#pragma once

#include <string>

#include "kernels/common/result.h"

namespace qcoder {

struct log_options {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  std::string file;            // empty: stderr
};

result<void> configure_logging(const log_options& options);

}  // namespace qcoder
