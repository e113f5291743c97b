// Model discovery: explicit folder first, then the Hugging Face hub cache layout
// (models--<org>--<name>/refs/main, models--<org>--<name>/snapshots/<revision>/...).
#include "engine/model_locator.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <system_error>

namespace qcoder::engine {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view repo_prefix = "models--Qwen--Qwen3-Coder-Next";

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

bool has_weights(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec) &&
         (fs::exists(dir / "model.safetensors", ec) || fs::exists(dir / "model.safetensors.index.json", ec));
}

bool has_tokenizer(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "tokenizer.json", ec);
}

bool has(model_files needs, const fs::path& dir) {
  return needs == model_files::weights ? has_weights(dir) : has_tokenizer(dir);
}

bool is_fp8(const std::string& repo_folder) {
  std::string lower = repo_folder;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("fp8") != std::string::npos;
}

// The usable snapshot of one repository folder: the one refs/main names, else the newest complete one.
std::optional<fs::path> pick_snapshot(const fs::path& repo, model_files needs) {
  std::error_code ec;
  std::ifstream ref(repo / "refs" / "main");
  std::string revision;
  if (ref && std::getline(ref, revision) && !revision.empty()) {
    const fs::path named = repo / "snapshots" / revision;
    if (has(needs, named)) return named;
  }
  std::optional<fs::path> newest;
  fs::file_time_type newest_time{};
  for (const fs::directory_entry& entry : fs::directory_iterator(repo / "snapshots", ec)) {
    if (!has(needs, entry.path())) continue;
    const fs::file_time_type t = entry.last_write_time(ec);
    if (!newest || t > newest_time) {
      newest = entry.path();
      newest_time = t;
    }
  }
  return newest;
}

}  // namespace

model_search model_search::from_environment(std::string model_dir) {
  return model_search{std::move(model_dir), env_or_empty("HF_HUB_CACHE"), env_or_empty("HF_HOME"),
                      env_or_empty("HOME")};
}

std::vector<fs::path> hub_dirs(const model_search& search) {
  std::vector<fs::path> dirs;
  if (!search.hf_hub_cache.empty()) dirs.emplace_back(search.hf_hub_cache);
  if (!search.hf_home.empty()) dirs.push_back(fs::path(search.hf_home) / "hub");
  if (!search.home.empty()) dirs.push_back(fs::path(search.home) / ".cache" / "huggingface" / "hub");
  return dirs;
}

result<located_model> locate_model(const model_search& search, model_files needs) {
  if (!search.model_dir.empty()) {
    const fs::path dir(search.model_dir);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return fail(errc::not_found, "--model {}: no such directory", search.model_dir);
    }
    if (needs == model_files::tokenizer) {
      if (!has_tokenizer(dir)) {
        return fail(errc::not_found, "--model {}: no tokenizer.json in this directory (with a remote backend only the "
                    "tokenizer files are needed: tokenizer.json and tokenizer_config.json)", search.model_dir);
      }
      return located_model{dir, "--model"};
    }
    if (!fs::is_regular_file(dir / "config.json", ec)) {
      return fail(errc::not_found, "--model {}: no config.json in this directory (expected a Hugging Face model "
                  "folder with config.json and model.safetensors or model.safetensors.index.json)",
                  search.model_dir);
    }
    return located_model{dir, "--model"};
  }

  std::string looked;
  struct candidate {
    fs::path dir;
    std::string repo;
  };
  std::vector<candidate> found;
  for (const fs::path& hub : hub_dirs(search)) {
    looked += fmt::format("\n  {}/{}*/snapshots/*", hub.string(), repo_prefix);
    std::error_code ec;
    for (const fs::directory_entry& entry : fs::directory_iterator(hub, ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(repo_prefix) || !entry.is_directory(ec)) continue;
      if (std::optional<fs::path> snapshot = pick_snapshot(entry.path(), needs)) found.push_back({*snapshot, name});
    }
    if (!found.empty()) break;  // the first hub that has the model wins, as in huggingface_hub
  }
  if (found.empty() && needs == model_files::tokenizer) {
    return fail(errc::not_found,
                "no Qwen3-Coder-Next tokenizer found. Looked in:{}\n"
                "With a remote backend only the tokenizer is needed: `hf download Qwen/Qwen3-Coder-Next tokenizer.json "
                "tokenizer_config.json`, or point qcoder at a folder holding them with `--model DIR`.",
                looked.empty() ? std::string("\n  (no $HF_HUB_CACHE, $HF_HOME or $HOME set)") : looked);
  }
  if (found.empty()) {
    return fail(errc::not_found,
                "no Qwen3-Coder-Next model found. Looked in:{}\n"
                "Download it once with `hf download Qwen/Qwen3-Coder-Next-FP8` (or the BF16 `Qwen/Qwen3-Coder-Next`),"
                " or point qcoder at a folder with `--model DIR`.",
                looked.empty() ? std::string("\n  (no $HF_HUB_CACHE, $HF_HOME or $HOME set)") : looked);
  }
  // FP8 first (half the bytes per expert), then by name for a stable choice.
  std::stable_sort(found.begin(), found.end(), [](const candidate& a, const candidate& b) {
    if (is_fp8(a.repo) != is_fp8(b.repo)) return is_fp8(a.repo);
    return a.repo < b.repo;
  });
  return located_model{found.front().dir, fmt::format("Hugging Face cache ({})", found.front().repo)};
}

}  // namespace qcoder::engine
