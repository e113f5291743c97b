// The workspace index: what every source file of the workspace defines and imports, built in the
// background and kept current as files change, so the prompt builder can find the definition of a name
// used at the cursor in another file.
//
// The build walks the root (skipping .git, node_modules and similar folders, anything .gitignore or
// .git/info/exclude ignores, files larger than max_file_bytes and files that look binary), parses each file
// of a known language on `threads` worker threads and stores its symbols (file_symbols: definitions with
// their signature and a capped snippet, and imports). Memory is bounded: past max_total_bytes, files keep
// signatures only, and past that they are not indexed (stats().dropped counts them). The build stops early
// when the index is destroyed, cancel() is called, or the stop_token given to start() fires.
//
// Thread-safety: every member function may be called from any thread. Lookups take a shared lock and
// return copies, so nothing they hand out changes or dies under the caller; updates take the lock
// exclusively for the moment it takes to swap one file's entry (parsing happens outside the lock).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "context/languages.h"
#include "context/symbols.h"

struct TSTree;

namespace qcoder::context {

struct index_options {
  std::uint64_t max_file_bytes = 1u << 20;   // larger files are skipped (usually generated)
  std::uint64_t max_total_bytes = 64u << 20;  // memory for stored symbols
  std::size_t max_files = 100000;
  unsigned threads = 2;                       // parse threads of the initial build
  bool count_references = true;               // how often each name is referred to (references())
  symbol_options symbols;
};

struct index_stats {
  std::size_t files = 0;          // files indexed
  std::size_t definitions = 0;
  std::uint64_t bytes = 0;        // memory held by stored symbols
  std::size_t skipped_large = 0;
  std::size_t skipped_binary = 0;
  std::size_t signatures_only = 0;  // files stored without snippets (memory budget)
  std::size_t dropped = 0;          // files not stored (memory budget or max_files)
  bool building = false;
  bool complete = false;  // the last build walked everything (not cancelled)
  double build_seconds = 0;
};

// A definition copied out of the index, with the file it is in.
struct indexed_definition {
  std::string path;  // relative to the root, '/'-separated
  language lang = language::python;
  definition def;
};

class workspace_index {
 public:
  explicit workspace_index(index_options options = {});
  ~workspace_index();
  workspace_index(const workspace_index&) = delete;
  workspace_index& operator=(const workspace_index&) = delete;

  // Starts indexing `root` in the background (cancelling and replacing any build in progress); returns at
  // once. `stop` lets the owner cancel it too.
  void start(const std::filesystem::path& root, std::stop_token stop = {});
  // Blocks until the background build finished; false when it was cancelled.
  bool wait();
  void cancel();

  // Re-indexes one file from its current text (didChange / didSave). `path` is relative to the root or
  // absolute under it; `tree` (optional) is the parse of `text`, saving a parse. Files of unknown language
  // are ignored.
  void update_file(std::string_view path, std::string_view text, const TSTree* tree = nullptr);
  void remove_file(std::string_view path);

  // Definitions named `name`, at most `max`, in a stable order (path, then line).
  std::vector<indexed_definition> lookup(std::string_view name, std::size_t max = 32) const;
  // How many definitions carry `name` (without copying them).
  std::size_t count(std::string_view name) const;
  // How often the indexed files refer to `name` (identifier occurrences, the definitions' own names
  // included): how popular a module's function is, for ordering an outline. 0 without count_references.
  std::uint32_t references(std::string_view name) const;
  // Whether `path` (relative to the root) is indexed; cheaper than file().
  bool contains(std::string_view path) const;
  // A file's top-level definitions (methods left out) in outline order, at most `max`: functions, classes
  // and types before constants, the most referred to first, public before private, then file order.
  std::vector<indexed_definition> outline(std::string_view path, std::size_t max) const;
  // The symbols of one file, when indexed.
  std::optional<file_symbols> file(std::string_view path) const;
  // Every indexed path, sorted.
  std::vector<std::string> paths() const;
  // The files an import names ("os.path", "./util", "a/b/mod", "util.h"): those whose path matches the
  // module best (module_match, at least 1), at most `max`, sorted. A Go import names a folder: all its files.
  std::vector<std::string> files_for_module(std::string_view module, std::size_t max = 8) const;

  index_stats stats() const;
  std::filesystem::path root() const;
  // `path` relative to the root ('/'-separated); unchanged when it is not under the root.
  std::string relative(std::string_view path) const;

 private:
  using reference_counts = std::vector<std::pair<std::string, std::uint32_t>>;  // name -> occurrences
  struct file_entry {
    std::string path;
    language lang;
    file_symbols symbols;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> references;  // (name id, occurrences)
  };
  void build(std::stop_token stop, std::filesystem::path root);
  // Stores `symbols` for `path` under the memory budget; returns false when dropped.
  bool store(std::string path, language lang, file_symbols symbols, reference_counts references);
  void erase_locked(std::uint32_t id);
  std::uint32_t references_locked(std::string_view name) const;

  index_options options_;
  mutable std::shared_mutex mutex_;
  std::filesystem::path root_;
  std::vector<std::optional<file_entry>> files_;  // by file id; erased files leave an empty slot
  std::vector<std::uint32_t> free_ids_;
  std::unordered_map<std::string, std::uint32_t> ids_;  // path -> file id
  std::unordered_map<std::string, std::vector<std::pair<std::uint32_t, std::uint32_t>>> names_;  // -> (file, def)
  std::unordered_map<std::string, std::vector<std::uint32_t>> stems_;  // file stem (or package folder) -> files
  std::unordered_map<std::string, std::uint32_t> reference_ids_;  // name -> id into reference_totals_
  std::vector<std::uint32_t> reference_totals_;
  index_stats stats_;
  std::jthread builder_;
};

// Whether the first bytes of a file look binary (a NUL byte, as git decides).
bool looks_binary(std::string_view head);

// Folders the walk never enters (version control, dependencies, caches), whatever .gitignore says.
bool is_skipped_folder(std::string_view name);

}  // namespace qcoder::context
