// The background walk, the parse workers and the name table of the workspace index.
#include "context/workspace_index.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <tuple>

#include <spdlog/spdlog.h>
#include <tree_sitter/api.h>

#include "context/workspace_walk.h"

namespace qcoder::context {
namespace fs = std::filesystem;

namespace {

std::string generic(const fs::path& path) { return path.generic_string(); }

// The names a module import can use for a file: its stem, and its folder's name for package files
// (__init__.py, index.ts, mod.rs, lib.rs) and for Go, whose packages are folders.
std::vector<std::string> stem_keys(std::string_view path, language lang) {
  std::vector<std::string> keys;
  const fs::path p(path);
  const std::string stem = p.stem().string();
  keys.push_back(stem);
  const std::string folder = p.parent_path().filename().string();
  const bool package_file = stem == "__init__" || stem == "index" || stem == "mod" || stem == "lib";
  if (!folder.empty() && (package_file || lang == language::go)) keys.push_back(folder);
  return keys;
}

struct parser_deleter {
  void operator()(TSParser* p) const { ts_parser_delete(p); }
};
struct tree_deleter {
  void operator()(TSTree* t) const { ts_tree_delete(t); }
};

// Identifier occurrences per name (names of one character left out), sorted by name.
std::vector<std::pair<std::string, std::uint32_t>> count_references(std::string_view text, const TSTree* tree) {
  std::unordered_map<std::string_view, std::uint32_t> counts;
  if (tree == nullptr) return {};
  TSTreeCursor cursor = ts_tree_cursor_new(ts_tree_root_node(tree));
  for (;;) {
    const TSNode node = ts_tree_cursor_current_node(&cursor);
    if (ts_node_child_count(node) == 0) {
      const std::string_view type = ts_node_type(node);
      const std::size_t start = ts_node_start_byte(node), end = std::min<std::size_t>(ts_node_end_byte(node), text.size());
      if (ts_node_is_named(node) && type.ends_with("identifier") && end > start + 1) ++counts[text.substr(start, end - start)];
    } else if (ts_tree_cursor_goto_first_child(&cursor)) {
      continue;
    }
    bool moved = false;
    while (!(moved = ts_tree_cursor_goto_next_sibling(&cursor))) {
      if (!ts_tree_cursor_goto_parent(&cursor)) break;
    }
    if (!moved) break;
  }
  ts_tree_cursor_delete(&cursor);
  std::vector<std::pair<std::string, std::uint32_t>> out;
  out.reserve(counts.size());
  for (const auto& [name, n] : counts) out.emplace_back(std::string(name), n);
  std::sort(out.begin(), out.end());
  return out;
}

struct parsed_file {
  file_symbols symbols;
  std::vector<std::pair<std::string, std::uint32_t>> references;
};

parsed_file parse_file(TSParser* parser, language lang, std::string_view text, const index_options& options) {
  ts_parser_set_language(parser, grammar(lang));
  std::unique_ptr<TSTree, tree_deleter> tree(
      ts_parser_parse_string(parser, nullptr, text.data(), static_cast<uint32_t>(text.size())));
  parsed_file out{extract_symbols(lang, text, tree.get(), options.symbols), {}};
  if (options.count_references) out.references = count_references(text, tree.get());
  return out;
}

}  // namespace

bool looks_binary(std::string_view head) { return head.substr(0, 8000).find('\0') != std::string_view::npos; }

bool is_skipped_folder(std::string_view name) {
  static constexpr std::string_view names[] = {
      ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
      ".pytest_cache", ".cache", ".idea", ".vscode", ".gradle", ".next", "bower_components"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

workspace_index::workspace_index(index_options options) : options_(options) {}

workspace_index::~workspace_index() {
  if (builder_.joinable()) {
    builder_.request_stop();
    builder_.join();
  }
}

void workspace_index::start(const fs::path& root, std::stop_token stop) {
  if (builder_.joinable()) {
    builder_.request_stop();
    builder_.join();
  }
  {
    std::unique_lock lock(mutex_);
    root_ = root;
    files_.clear();
    free_ids_.clear();
    ids_.clear();
    names_.clear();
    stems_.clear();
    reference_ids_.clear();
    reference_totals_.clear();
    stats_ = index_stats{};
    stats_.building = true;
  }
  builder_ = std::jthread([this, root, stop](std::stop_token own) {
    // Either token stops the build: the owner's (stop) or ours (cancel(), destruction).
    std::stop_source either;
    std::stop_callback on_own(own, [&either] { either.request_stop(); });
    std::stop_callback on_owner(stop, [&either] { either.request_stop(); });
    build(either.get_token(), root);
  });
}

bool workspace_index::wait() {
  if (builder_.joinable()) builder_.join();
  std::shared_lock lock(mutex_);
  return stats_.complete;
}

void workspace_index::cancel() { builder_.request_stop(); }

void workspace_index::build(std::stop_token stop, fs::path root) {
  const auto started = std::chrono::steady_clock::now();
  // The walk (folders depth-first in name order, so the index is the same on every run).
  const walk_result walked = walk_workspace(root, {.max_file_bytes = options_.max_file_bytes}, stop);
  const std::vector<walked_file>& files = walked.files;
  {
    std::unique_lock lock(mutex_);
    stats_.skipped_large = walked.skipped_large;
  }

  // Parse on a few threads; each owns a parser.
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> binary{0};
  const auto work = [&] {
    std::unique_ptr<TSParser, parser_deleter> parser(ts_parser_new());
    for (std::size_t i = next++; i < files.size() && !stop.stop_requested(); i = next++) {
      const std::string text = read_file_head(root / files[i].path, options_.max_file_bytes);
      if (looks_binary(text)) {
        ++binary;
        continue;
      }
      parsed_file parsed = parse_file(parser.get(), files[i].lang, text, options_);
      store(files[i].path, files[i].lang, std::move(parsed.symbols), std::move(parsed.references));
    }
  };
  std::vector<std::jthread> workers;
  for (unsigned t = 1; t < std::max(1u, options_.threads); ++t) workers.emplace_back(work);
  work();
  workers.clear();  // joins

  std::unique_lock lock(mutex_);
  stats_.skipped_binary = binary;
  stats_.building = false;
  stats_.complete = !stop.stop_requested();
  stats_.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::debug("index of {}: {} files, {} definitions, {:.1f} MB in {:.2f}s{}", root.string(), stats_.files,
                stats_.definitions, static_cast<double>(stats_.bytes) / 1e6, stats_.build_seconds,
                stats_.complete ? "" : " (cancelled)");
}

bool workspace_index::store(std::string path, language lang, file_symbols symbols, reference_counts references) {
  std::unique_lock lock(mutex_);
  if (auto it = ids_.find(path); it != ids_.end()) erase_locked(it->second);
  // Reference counts cost a slot per file and name, and a slot per name not seen before (kept for good).
  const auto slot = [](const std::string& name) { return name.size() + 48; };
  const auto references_cost = [&] {
    std::uint64_t cost = references.size() * sizeof(std::pair<std::uint32_t, std::uint32_t>);
    for (const auto& [name, n] : references) cost += reference_ids_.count(name) ? 0 : slot(name);
    return cost;
  };
  std::uint64_t bytes = symbols.bytes() + references_cost();
  if (stats_.bytes + bytes > options_.max_total_bytes) {
    for (definition& d : symbols.definitions) std::string().swap(d.snippet);
    bytes = symbols.bytes() + references_cost();
    ++stats_.signatures_only;
  }
  if (stats_.bytes + bytes > options_.max_total_bytes) {  // the counts are a ranking hint: they go next
    references.clear();
    bytes = symbols.bytes();
  }
  if (stats_.bytes + bytes > options_.max_total_bytes || stats_.files >= options_.max_files) {
    ++stats_.dropped;
    return false;
  }
  std::uint32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<std::uint32_t>(files_.size());
    files_.emplace_back();
  }
  for (std::uint32_t k = 0; k < symbols.definitions.size(); ++k) names_[symbols.definitions[k].name].emplace_back(id, k);
  for (const std::string& key : stem_keys(path, lang)) stems_[key].push_back(id);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> refs;
  refs.reserve(references.size());
  for (auto& [name, n] : references) {
    const auto [it, added] = reference_ids_.emplace(std::move(name), static_cast<std::uint32_t>(reference_totals_.size()));
    if (added) reference_totals_.push_back(0);
    reference_totals_[it->second] += n;
    refs.emplace_back(it->second, n);
  }
  stats_.files += 1;
  stats_.definitions += symbols.definitions.size();
  stats_.bytes += bytes;
  ids_.emplace(path, id);
  files_[id] = file_entry{std::move(path), lang, std::move(symbols), std::move(refs)};
  return true;
}

void workspace_index::erase_locked(std::uint32_t id) {
  file_entry& entry = *files_[id];
  for (const definition& d : entry.symbols.definitions) {
    auto it = names_.find(d.name);
    if (it == names_.end()) continue;
    std::erase_if(it->second, [id](const auto& ref) { return ref.first == id; });
    if (it->second.empty()) names_.erase(it);
  }
  for (const std::string& key : stem_keys(entry.path, entry.lang)) {
    auto it = stems_.find(key);
    if (it == stems_.end()) continue;
    std::erase(it->second, id);
    if (it->second.empty()) stems_.erase(it);
  }
  for (const auto& [name, n] : entry.references) reference_totals_[name] -= n;  // the name's slot stays (a few bytes)
  stats_.files -= 1;
  stats_.definitions -= entry.symbols.definitions.size();
  stats_.bytes -= entry.symbols.bytes() + entry.references.size() * sizeof(entry.references[0]);
  ids_.erase(entry.path);
  files_[id].reset();
  free_ids_.push_back(id);
}

void workspace_index::update_file(std::string_view path, std::string_view text, const TSTree* tree) {
  std::string rel = relative(path);
  const std::optional<language> lang = language_from_path(rel);
  if (!lang) return;
  if (text.size() > options_.max_file_bytes || looks_binary(text)) {
    remove_file(rel);
    return;
  }
  parsed_file parsed;
  if (tree != nullptr) {
    parsed.symbols = extract_symbols(*lang, text, tree, options_.symbols);
    if (options_.count_references) parsed.references = count_references(text, tree);
  } else {
    std::unique_ptr<TSParser, parser_deleter> parser(ts_parser_new());
    parsed = parse_file(parser.get(), *lang, text, options_);
  }
  store(std::move(rel), *lang, std::move(parsed.symbols), std::move(parsed.references));
}

void workspace_index::remove_file(std::string_view path) {
  const std::string rel = relative(path);
  std::unique_lock lock(mutex_);
  if (auto it = ids_.find(rel); it != ids_.end()) erase_locked(it->second);
}

std::vector<indexed_definition> workspace_index::lookup(std::string_view name, std::size_t max) const {
  std::shared_lock lock(mutex_);
  std::vector<indexed_definition> out;
  const auto it = names_.find(std::string(name));
  if (it == names_.end()) return out;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> refs = it->second;
  std::sort(refs.begin(), refs.end(), [&](const auto& a, const auto& b) {
    const std::string& pa = files_[a.first]->path;
    const std::string& pb = files_[b.first]->path;
    return pa != pb ? pa < pb : a.second < b.second;
  });
  for (const auto& [file, def] : refs) {
    if (out.size() == max) break;
    const file_entry& entry = *files_[file];
    out.push_back(indexed_definition{entry.path, entry.lang, entry.symbols.definitions[def]});
  }
  return out;
}

std::size_t workspace_index::count(std::string_view name) const {
  std::shared_lock lock(mutex_);
  const auto it = names_.find(std::string(name));
  return it == names_.end() ? 0 : it->second.size();
}

bool workspace_index::contains(std::string_view path) const {
  std::shared_lock lock(mutex_);
  return ids_.count(std::string(path)) != 0;
}

std::uint32_t workspace_index::references(std::string_view name) const {
  std::shared_lock lock(mutex_);
  return references_locked(name);
}

std::uint32_t workspace_index::references_locked(std::string_view name) const {
  const auto it = reference_ids_.find(std::string(name));
  return it == reference_ids_.end() ? 0 : reference_totals_[it->second];
}

std::vector<indexed_definition> workspace_index::outline(std::string_view path, std::size_t max) const {
  const std::string rel = relative(path);
  std::shared_lock lock(mutex_);
  const auto it = ids_.find(rel);
  if (it == ids_.end()) return {};
  const file_entry& entry = *files_[it->second];
  // (constant, negated references, private, position): sorted, the first `max` are copied out.
  using key = std::tuple<bool, std::int64_t, bool, std::size_t>;
  std::vector<key> order;
  for (std::size_t k = 0; k < entry.symbols.definitions.size(); ++k) {
    const definition& d = entry.symbols.definitions[k];
    if (d.kind == def_kind::method) continue;
    order.emplace_back(d.kind == def_kind::constant, -static_cast<std::int64_t>(references_locked(d.name)),
                       d.name.starts_with("_"), k);
  }
  std::sort(order.begin(), order.end());
  std::vector<indexed_definition> out;
  for (std::size_t k = 0; k < order.size() && k < max; ++k) {
    out.push_back(indexed_definition{entry.path, entry.lang, entry.symbols.definitions[std::get<3>(order[k])]});
  }
  return out;
}

std::optional<file_symbols> workspace_index::file(std::string_view path) const {
  const std::string rel = relative(path);
  std::shared_lock lock(mutex_);
  const auto it = ids_.find(rel);
  if (it == ids_.end()) return std::nullopt;
  return files_[it->second]->symbols;
}

std::vector<std::string> workspace_index::paths() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  out.reserve(ids_.size());
  for (const auto& [path, id] : ids_) out.push_back(path);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> workspace_index::files_for_module(std::string_view module, std::size_t max) const {
  const std::vector<std::string> segments = module_segments(module);
  std::vector<std::string> out;
  if (segments.empty()) return out;
  std::shared_lock lock(mutex_);
  const auto it = stems_.find(segments.back());
  if (it == stems_.end()) return out;
  std::size_t best = 1;
  for (const std::uint32_t id : it->second) {
    const std::string& path = files_[id]->path;
    const std::size_t score = module_match(path, module);
    if (score < best) continue;
    if (score > best) out.clear(), best = score;
    out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > max) out.resize(max);
  return out;
}

index_stats workspace_index::stats() const {
  std::shared_lock lock(mutex_);
  return stats_;
}

fs::path workspace_index::root() const {
  std::shared_lock lock(mutex_);
  return root_;
}

std::string workspace_index::relative(std::string_view path) const {
  const fs::path p(path);
  if (p.is_absolute()) {
    const fs::path base = root();
    if (!base.empty()) {
      const fs::path rel = p.lexically_normal().lexically_relative(base.lexically_normal());
      if (!rel.empty() && *rel.begin() != "..") return generic(rel);
    }
  }
  return generic(p.lexically_normal());
}

}  // namespace qcoder::context
