// `qcoder bench tokenize`: tokenizer throughput over a corpus of source files.
//
// Reads the corpus into memory first (disk speed is not measured), then encodes every file as document text
// (specials off): once with a fresh encoder (cold word cache) and --passes - 1 more times with the warm one,
// reporting the best warm pass. Also times one 1 MiB file cut from the corpus with a fresh encoder: the
// latency a user sees when opening a big file. MB is 10^6 bytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "lsp/cli/bench_command.h"
#include "lsp/cli/tokenize_command.h"

namespace qcoder::cli {
namespace {
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

bool is_source_file(const fs::path& path) {
  static constexpr std::string_view extensions[] = {
      ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".cu", ".py", ".js", ".mjs", ".cjs", ".jsx", ".ts",
      ".tsx", ".rs", ".go", ".java", ".kt", ".cs", ".rb", ".php", ".swift", ".lua", ".sh", ".md"};
  const std::string ext = path.extension().string();
  return std::find(std::begin(extensions), std::end(extensions), ext) != std::end(extensions);
}

struct corpus {
  std::vector<std::string> files;
  std::uint64_t bytes = 0;
};

result<corpus> read_corpus(const std::vector<std::string>& roots, std::uint64_t max_bytes) {
  std::vector<fs::path> paths;
  for (const std::string& root : roots) {
    std::error_code ec;
    if (fs::is_regular_file(root, ec)) {
      paths.emplace_back(root);
      continue;
    }
    if (!fs::is_directory(root, ec)) return fail(errc::not_found, "--corpus {}: no such file or directory", root);
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (it->is_directory(ec) && !name.empty() && name[0] == '.') {
        it.disable_recursion_pending();  // .git, .cache, ...
        continue;
      }
      if (it->is_regular_file(ec) && is_source_file(it->path())) paths.push_back(it->path());
      if (paths.size() >= 500000) break;
    }
  }
  std::sort(paths.begin(), paths.end());  // the same corpus on every run
  corpus c;
  for (const fs::path& path : paths) {
    if (c.bytes >= max_bytes) break;
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    std::string s = std::move(text).str();
    if (s.empty()) continue;
    if (s.size() > max_bytes - c.bytes) s.resize(max_bytes - c.bytes);
    c.bytes += s.size();
    c.files.push_back(std::move(s));
  }
  if (c.files.empty()) return fail(errc::not_found, "no source files found under the --corpus paths");
  return c;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

}  // namespace

int run_bench_tokenize(args_view args) {
  std::string tokenizer_file, model_dir;
  std::vector<std::string> roots;
  int passes = 3;
  double max_mb = 64;
  bool as_json = false;
  arg_parser parser("bench tokenize (--tokenizer FILE | --model DIR) [--corpus PATH]... [--max-mb N] [--json]",
                    "Tokenizer throughput over a corpus of source files (read into memory first), encoded as\n"
                    "document text: a cold pass (fresh word cache), the best of the warm passes, and the time\n"
                    "to encode one 1 MiB file with a fresh encoder. MB = 10^6 bytes.");
  parser.option("tokenizer", "FILE", "a Hugging Face tokenizer.json", &tokenizer_file);
  parser.option("model", "DIR", "model folder holding tokenizer.json", &model_dir);
  parser.repeated("corpus", "PATH", "a source file or folder to read (default: the current folder)", &roots);
  parser.option("max-mb", "N", "read at most this many MB of source", &max_mb);
  parser.option("passes", "N", "passes over the corpus (the first is cold)", &passes);
  parser.flag("json", "print one JSON object instead of a table", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (passes < 1 || max_mb <= 0) {
    fmt::print(stderr, "qcoder: --passes must be at least 1 and --max-mb positive\n");
    return exit_usage;
  }
  if (roots.empty()) roots.emplace_back(".");

  std::string source;
  result<engine::tokenizer> tok = load_cli_tokenizer(tokenizer_file, model_dir, &source);
  if (!tok) return report_failure(tok.err());
  result<corpus> text = read_corpus(roots, static_cast<std::uint64_t>(max_mb * 1e6));
  if (!text) return report_failure(text.err());

  std::vector<engine::token_id> ids;
  ids.reserve(1 << 20);
  std::uint64_t tokens = 0;
  double cold_s = 0, warm_s = 0, cold_hit_rate = 0;
  engine::encoder enc(*tok);
  for (int pass = 0; pass < passes; ++pass) {
    const clock_type::time_point start = clock_type::now();
    std::uint64_t count = 0;
    for (const std::string& file : text->files) {
      ids.clear();
      enc.encode(file, /*allow_special=*/false, ids);
      count += ids.size();
    }
    const double s = seconds_since(start);
    if (pass == 0) {
      cold_s = s;
      tokens = count;
      const double lookups = static_cast<double>(enc.cache_hits() + enc.cache_misses());
      cold_hit_rate = lookups > 0 ? static_cast<double>(enc.cache_hits()) / lookups : 0;
    } else if (warm_s == 0 || s < warm_s) {
      warm_s = s;
    }
  }

  // One 1 MiB file cut from the corpus (repeated when the corpus is smaller), fresh encoder.
  std::string big;
  while (big.size() < (1u << 20)) {
    for (const std::string& file : text->files) {
      big.append(file);
      if (big.size() >= (1u << 20)) break;
    }
  }
  big.resize(1u << 20);
  engine::encoder fresh(*tok);
  ids.clear();
  const clock_type::time_point big_start = clock_type::now();
  fresh.encode(big, /*allow_special=*/false, ids);
  const double big_ms = seconds_since(big_start) * 1e3;

  const double mb = static_cast<double>(text->bytes) / 1e6;
  const double cold_mbps = mb / cold_s;
  const double warm_mbps = warm_s > 0 ? mb / warm_s : cold_mbps;
  const double bytes_per_token = tokens ? static_cast<double>(text->bytes) / static_cast<double>(tokens) : 0;
  if (as_json) {
    const nlohmann::json out = {
        {"tokenizer", source},           {"files", text->files.size()},  {"bytes", text->bytes},
        {"tokens", tokens},              {"bytes_per_token", bytes_per_token},
        {"cold_mb_per_s", cold_mbps},    {"warm_mb_per_s", warm_mbps},
        {"cold_tokens_per_s", static_cast<double>(tokens) / cold_s},
        {"one_mib_file_ms", big_ms},     {"passes", passes},
        {"cold_word_cache_hit_rate", cold_hit_rate}};
    fmt::print("{}\n", out.dump());
    return exit_ok;
  }
  fmt::print("tokenizer   {}\n", source);
  fmt::print("corpus      {} files, {:.1f} MB, {} tokens ({:.2f} bytes/token)\n", text->files.size(), mb, tokens,
             bytes_per_token);
  fmt::print("\n{:<14}{:>10}{:>16}{:>10}\n", "pass", "MB/s", "tokens/s", "seconds");
  fmt::print("{:<14}{:>10.1f}{:>16.0f}{:>10.3f}\n", "cold", cold_mbps, static_cast<double>(tokens) / cold_s, cold_s);
  if (passes > 1) {
    fmt::print("{:<14}{:>10.1f}{:>16.0f}{:>10.3f}\n", "warm (best)", warm_mbps, static_cast<double>(tokens) / warm_s,
               warm_s);
  }
  fmt::print("\nword cache hit rate (cold pass): {:.1f}%\n", cold_hit_rate * 100);
  fmt::print("1 MiB file, fresh encoder: {:.1f} ms\n", big_ms);
  return exit_ok;
}

}  // namespace qcoder::cli
