// Runs the real `qcoder` binary (QCODER_BINARY, set by the build) and collects what it prints and its exit
// code. For tests of the command line as a person or a script sees it.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace qcoder::testing_support {

struct run_result {
  int exit_code = -1;
  std::string out;  // stdout, and stderr too with merge_stderr
};

// `env_prefix` goes before the binary, e.g. "env HOME=/x".
inline run_result run_qcoder(const std::string& args, bool merge_stderr, const std::string& env_prefix = "") {
  const std::string command =
      env_prefix + " " + std::string(QCODER_BINARY) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  run_result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer{};
  while (std::size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) r.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace qcoder::testing_support
