#include "context/workspace_walk.h"

#include <algorithm>
#include <fstream>

#include "context/gitignore.h"
#include "context/workspace_index.h"

namespace qcoder::context {
namespace fs = std::filesystem;

std::string read_file_head(const fs::path& path, std::uint64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string text(limit, '\0');
  in.read(text.data(), static_cast<std::streamsize>(limit));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

bool path_matches(std::string_view pattern, std::string_view path) {
  if (pattern.find('/') == std::string_view::npos) {
    const std::size_t slash = path.rfind('/');
    return glob_match(pattern, slash == std::string_view::npos ? path : path.substr(slash + 1));
  }
  if (pattern.starts_with("/")) pattern.remove_prefix(1);
  return glob_match(pattern, path);
}

walk_result walk_workspace(const fs::path& root, const walk_options& options, std::stop_token stop) {
  walk_result out;
  gitignore ignore;
  ignore.add("", read_file_head(root / ".git" / "info" / "exclude", 1u << 20));
  const auto wanted = [&](std::string_view rel) {
    if (!options.include.empty() &&
        std::none_of(options.include.begin(), options.include.end(), [&](const std::string& p) { return path_matches(p, rel); })) {
      return false;
    }
    return std::none_of(options.exclude.begin(), options.exclude.end(), [&](const std::string& p) { return path_matches(p, rel); });
  };
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    if (stop.stop_requested()) {
      out.complete = false;
      break;
    }
    const std::string dir = std::move(pending.back());
    pending.pop_back();
    const fs::path full = dir.empty() ? root : root / dir;
    ignore.add(dir, read_file_head(full / ".gitignore", 1u << 20));
    std::vector<fs::directory_entry> entries;
    std::error_code ec;
    for (fs::directory_iterator it(full, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
         it.increment(ec)) {
      entries.push_back(*it);
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
    std::vector<std::string> subfolders;
    for (const fs::directory_entry& entry : entries) {
      const std::string name = entry.path().filename().string();
      const std::string rel = dir.empty() ? name : dir + "/" + name;
      if (entry.is_symlink(ec)) continue;
      if (entry.is_directory(ec)) {
        if (!is_skipped_folder(name) && !ignore.ignored(rel, true)) subfolders.push_back(rel);
        continue;
      }
      if (!entry.is_regular_file(ec)) continue;
      const std::optional<language> lang = language_from_path(name);
      if (!lang || ignore.ignored(rel, false) || !wanted(rel)) continue;
      const std::uint64_t size = entry.file_size(ec);
      if (ec) continue;
      if (size > options.max_file_bytes) {
        ++out.skipped_large;
        continue;
      }
      out.files.push_back({rel, *lang, size});
    }
    pending.insert(pending.end(), subfolders.rbegin(), subfolders.rend());  // popped in name order
  }
  return out;
}

}  // namespace qcoder::context
