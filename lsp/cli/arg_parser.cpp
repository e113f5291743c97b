// Implementation of the command-line parser and the size parser.
#include "lsp/cli/arg_parser.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <optional>

namespace qcoder::cli {
namespace {

template <typename T>
result<T> parse_number(std::string_view name, std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) {
    return fail(errc::invalid_argument, "--{}: '{}' is not a valid number", name, text);
  }
  return value;
}

}  // namespace

arg_parser::arg_parser(std::string usage, std::string summary)
    : usage_(std::move(usage)), summary_(std::move(summary)) {}

arg_parser& arg_parser::add(spec s) {
  specs_.push_back(std::move(s));
  return *this;
}

arg_parser& arg_parser::flag(std::string name, std::string help, bool* out) {
  return add({std::move(name), "", std::move(help), "", false, false, false, [out](std::string_view) -> result<void> {
                *out = true;
                return ok();
              }});
}

arg_parser& arg_parser::option(std::string name, std::string value_name, std::string help, std::string* out) {
  return add({name, std::move(value_name), std::move(help), *out, false, false, false,
              [out](std::string_view v) -> result<void> {
                *out = std::string(v);
                return ok();
              }});
}

arg_parser& arg_parser::option(std::string name, std::string value_name, std::string help, int* out) {
  return add({name, std::move(value_name), std::move(help), std::to_string(*out), false, false, false,
              [out, name](std::string_view v) -> result<void> {
                QCODER_TRY(*out, parse_number<int>(name, v));
                return ok();
              }});
}

arg_parser& arg_parser::option(std::string name, std::string value_name, std::string help, std::uint64_t* out) {
  return add({name, std::move(value_name), std::move(help), std::to_string(*out), false, false, false,
              [out, name](std::string_view v) -> result<void> {
                QCODER_TRY(*out, parse_number<std::uint64_t>(name, v));
                return ok();
              }});
}

arg_parser& arg_parser::option(std::string name, std::string value_name, std::string help, double* out) {
  return add({name, std::move(value_name), std::move(help), fmt::format("{}", *out), false, false, false,
              [out, name](std::string_view v) -> result<void> {
                QCODER_TRY(*out, parse_number<double>(name, v));
                return ok();
              }});
}

arg_parser& arg_parser::repeated(std::string name, std::string value_name, std::string help,
                                 std::vector<std::string>* out) {
  return add({std::move(name), std::move(value_name), std::move(help), "", true, false, false,
              [out](std::string_view v) -> result<void> {
                out->emplace_back(v);
                return ok();
              }});
}

arg_parser& arg_parser::required(std::string name) {
  if (spec* s = find(name)) s->required = true;
  return *this;
}

arg_parser& arg_parser::positionals(std::string value_name, std::string help, std::vector<std::string>* out) {
  positional_name_ = std::move(value_name);
  positional_help_ = std::move(help);
  positionals_ = out;
  return *this;
}

arg_parser::spec* arg_parser::find(std::string_view name) {
  auto it = std::find_if(specs_.begin(), specs_.end(), [name](const spec& s) { return s.name == name; });
  return it == specs_.end() ? nullptr : &*it;
}

result<void> arg_parser::parse(std::span<const std::string_view> args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      return ok();
    }
    if (arg == "--") {  // everything after is positional
      for (++i; i < args.size(); ++i) {
        if (positionals_ == nullptr) return fail(errc::invalid_argument, "unexpected argument '{}'", args[i]);
        positionals_->emplace_back(args[i]);
      }
      break;
    }
    if (!arg.starts_with("--")) {
      if (positionals_ == nullptr) {
        return fail(errc::invalid_argument, "unexpected argument '{}' (see --help)", arg);
      }
      positionals_->emplace_back(arg);
      continue;
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string_view> inline_value;
    if (std::size_t eq = name.find('='); eq != std::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    spec* s = find(name);
    if (s == nullptr) return fail(errc::invalid_argument, "unknown flag --{} (see --help)", name);
    if (s->seen && !s->repeatable) return fail(errc::invalid_argument, "--{} given twice", name);
    s->seen = true;
    if (s->value_name.empty()) {
      if (inline_value) return fail(errc::invalid_argument, "--{} takes no value", name);
      QCODER_CHECK(s->set(""));
      continue;
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) return fail(errc::invalid_argument, "--{} needs a value ({})", name, s->value_name);
      value = args[++i];
    }
    QCODER_CHECK(s->set(value));
  }
  for (const spec& s : specs_) {
    if (s.required && !s.seen) return fail(errc::invalid_argument, "--{} is required (see --help)", s.name);
  }
  return ok();
}

std::string arg_parser::help() const {
  std::string out = fmt::format("usage: qcoder {}\n\n{}\n", usage_, summary_);
  if (!specs_.empty() || positionals_ != nullptr) out += "\noptions:\n";
  std::size_t width = 0;
  auto left = [](const spec& s) {
    return s.value_name.empty() ? fmt::format("--{}", s.name) : fmt::format("--{} {}", s.name, s.value_name);
  };
  for (const spec& s : specs_) width = std::max(width, left(s).size());
  width = std::max(width, positional_name_.size());
  width = std::max<std::size_t>(width, 10);
  for (const spec& s : specs_) {
    std::string line = fmt::format("  {:<{}}  {}", left(s), width, s.help);
    if (s.required) line += " (required)";
    if (s.repeatable) line += " (repeatable)";
    if (!s.value_name.empty() && !s.required && !s.default_text.empty()) {
      line += fmt::format(" [default: {}]", s.default_text);
    }
    out += line + "\n";
  }
  if (positionals_ != nullptr) out += fmt::format("  {:<{}}  {}\n", positional_name_, width, positional_help_);
  out += fmt::format("  {:<{}}  {}\n", "-h, --help", width, "show this help");
  return out;
}

result<std::uint64_t> parse_size(std::string_view text) {
  std::size_t split = 0;
  while (split < text.size() && (std::isdigit(static_cast<unsigned char>(text[split])) || text[split] == '.')) ++split;
  const std::string_view number = text.substr(0, split);
  std::string unit(text.substr(split));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size()) {
    return fail(errc::invalid_argument, "'{}' is not a size (examples: 4096, 64KiB, 512MiB, 8GiB)", text);
  }
  struct unit_factor {
    std::string_view name;
    double factor;
  };
  static constexpr unit_factor units[] = {
      {"", 1.0},           {"b", 1.0},          {"k", 1024.0},       {"kb", 1e3},
      {"kib", 1024.0},     {"m", 1048576.0},    {"mb", 1e6},         {"mib", 1048576.0},
      {"g", 1073741824.0}, {"gb", 1e9},         {"gib", 1073741824.0}, {"t", 1099511627776.0},
      {"tb", 1e12},        {"tib", 1099511627776.0},
  };
  for (const unit_factor& u : units) {
    if (u.name == unit) {
      const double bytes = std::round(value * u.factor);
      if (bytes > 1.8e19) return fail(errc::invalid_argument, "size '{}' is too large", text);
      return static_cast<std::uint64_t>(bytes);
    }
  }
  return fail(errc::invalid_argument, "'{}': unknown size unit '{}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
              text, text.substr(split));
}

}  // namespace qcoder::cli
