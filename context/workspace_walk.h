// The source files of a workspace, as git would show them: a walk of the folder tree that skips what
// .gitignore (every level's, and .git/info/exclude) ignores, folders no one edits (version control,
// dependencies, caches), symbolic links (no cycles, nothing outside the root), files of no known language
// and files over a size limit. Folders are walked depth-first in name order, so the list is the same on
// every run.
// Thread-safety: pure function; any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include "context/languages.h"

namespace qcoder::context {

struct walked_file {
  std::string path;  // relative to the root, '/'-separated
  language lang = language::python;
  std::uint64_t bytes = 0;
};

struct walk_options {
  std::uint64_t max_file_bytes = 1u << 20;
  // Globs (git's wildmatch, on the relative path; a pattern without '/' matches the file name at any
  // depth): with include patterns a file must match one; a file matching an exclude pattern is dropped.
  std::vector<std::string> include;
  std::vector<std::string> exclude;
};

struct walk_result {
  std::vector<walked_file> files;
  std::size_t skipped_large = 0;
  bool complete = true;  // false when stopped before the end
};

walk_result walk_workspace(const std::filesystem::path& root, const walk_options& options, std::stop_token stop = {});

// Whether `path` (relative, '/'-separated) matches `pattern` as walk_options describes.
bool path_matches(std::string_view pattern, std::string_view path);

// The first `limit` bytes of a file (empty when it cannot be read).
std::string read_file_head(const std::filesystem::path& path, std::uint64_t limit);

}  // namespace qcoder::context
