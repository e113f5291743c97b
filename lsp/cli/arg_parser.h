// A small command-line parser for qcoder's subcommands: `--name VALUE`, `--name=VALUE`, switches,
// repeatable options and positional arguments, with a generated `--help` that lists every flag.
// Each flag is bound to a variable owned by the caller; parse() writes into them.
// Not thread-safe; used once per process at start-up.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::cli {

class arg_parser {
 public:
  // `usage` is the synopsis after "qcoder", e.g. "logits --model DIR --ids IDS --out FILE [--step]".
  arg_parser(std::string usage, std::string summary);

  // A switch: present -> true.
  arg_parser& flag(std::string name, std::string help, bool* out);
  // An option taking one value. The default shown in --help is the variable's value at registration.
  arg_parser& option(std::string name, std::string value_name, std::string help, std::string* out);
  arg_parser& option(std::string name, std::string value_name, std::string help, int* out);
  arg_parser& option(std::string name, std::string value_name, std::string help, double* out);
  arg_parser& option(std::string name, std::string value_name, std::string help, std::uint64_t* out);
  // An option that may be given several times; each value is appended.
  arg_parser& repeated(std::string name, std::string value_name, std::string help, std::vector<std::string>* out);
  // Options that must be present (checked after parsing, unless --help was given).
  arg_parser& required(std::string name);
  // Free arguments after the flags; without this, any positional argument is an error.
  arg_parser& positionals(std::string value_name, std::string help, std::vector<std::string>* out);

  // Parses the arguments after the subcommand name. On success, help_requested() tells whether the caller
  // should print help() and stop.
  result<void> parse(std::span<const std::string_view> args);
  bool help_requested() const { return help_requested_; }
  std::string help() const;

 private:
  struct spec {
    std::string name;        // without the leading dashes
    std::string value_name;  // empty for switches
    std::string help;
    std::string default_text;
    bool repeatable = false;
    bool required = false;
    bool seen = false;
    std::function<result<void>(std::string_view)> set;
  };
  spec* find(std::string_view name);
  arg_parser& add(spec s);

  std::string usage_;
  std::string summary_;
  std::vector<spec> specs_;
  std::string positional_name_;
  std::string positional_help_;
  std::vector<std::string>* positionals_ = nullptr;
  bool help_requested_ = false;
};

// Parses "512MiB", "8GiB", "64KiB", "1.5GB", "4096" (bytes). Binary and decimal units are both accepted.
result<std::uint64_t> parse_size(std::string_view text);

}  // namespace qcoder::cli
