// Definitions and imports from the symbols query; signature and snippet texts.
#include "context/symbols.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>

#include <tree_sitter/api.h>

#include "context/queries.h"
#include "context/text_lines.h"

namespace qcoder::context {
namespace {

enum class role : std::uint8_t { none, def, name, module, import_name, alias, require };

struct capture_role {
  role what = role::none;
  def_kind kind = def_kind::function;
};

capture_role role_of(std::string_view capture) {
  if (capture == "name") return {role::name};
  if (capture == "def.method") return {role::def, def_kind::method};
  if (capture == "def.function") return {role::def, def_kind::function};
  if (capture == "def.class") return {role::def, def_kind::class_};
  if (capture == "def.type") return {role::def, def_kind::type};
  if (capture == "def.constant") return {role::def, def_kind::constant};
  if (capture == "import.module") return {role::module};
  if (capture == "import.name") return {role::import_name};
  if (capture == "import.alias") return {role::alias};
  if (capture == "import.require") return {role::require};
  return {};
}

std::string_view node_text(TSNode node, std::string_view text) {
  const uint32_t begin = std::min<uint32_t>(ts_node_start_byte(node), static_cast<uint32_t>(text.size()));
  const uint32_t end = std::min<uint32_t>(ts_node_end_byte(node), static_cast<uint32_t>(text.size()));
  return text.substr(begin, end - begin);
}

bool is_container_type(std::string_view type) {
  static constexpr std::array<std::string_view, 12> types{
      "class_definition", "class_declaration", "class_specifier", "struct_specifier", "impl_item", "trait_item",
      "interface_declaration", "abstract_class_declaration", "enum_declaration", "record_declaration", "class",
      "object"};
  return std::find(types.begin(), types.end(), type) != types.end();
}

// The node that holds a definition's body: its own `body` field, or that of the function bound to it
// (const f = () => {...}), searched a few levels down.
std::optional<TSNode> find_body(TSNode node, int depth = 0) {
  TSNode body = ts_node_child_by_field_name(node, "body", 4);
  if (!ts_node_is_null(body)) return body;
  if (depth >= 3) return std::nullopt;
  for (uint32_t i = 0; i < ts_node_named_child_count(node); ++i) {
    if (std::optional<TSNode> found = find_body(ts_node_named_child(node, i), depth + 1)) return found;
  }
  return std::nullopt;
}

// Lines of text[begin, end), dedented by `indent`, at most `max_lines`; sets *cut when lines were left out.
void append_lines(std::string& out, std::string_view text, std::size_t begin, std::size_t end, std::string_view indent,
                  std::uint32_t max_lines, bool* cut) {
  std::uint32_t count = 0;
  std::size_t pos = begin;
  while (pos < end) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos || eol > end) eol = end;
    if (count == max_lines) {
      if (cut != nullptr) *cut = true;
      return;
    }
    std::string_view line = trim_right(text.substr(pos, eol - pos));
    if (eol == end && line.empty() && count > 0) return;  // the blank start of the body's line
    line = remove_indent(line, indent);
    out.append(line);
    out.push_back('\n');
    ++count;
    pos = eol + 1;
  }
}

struct found_def {
  def_kind kind;
  TSNode node;
  TSNode name;
};

definition make_definition(language lang, std::string_view text, const found_def& found,
                           const symbol_options& options) {
  definition def;
  def.name = std::string(node_text(found.name, text));
  def.kind = found.kind;
  def.line = ts_node_start_point(found.node).row;
  def.end_line = ts_node_end_point(found.node).row;
  const std::size_t start = line_start_at(text, ts_node_start_byte(found.node));
  const std::size_t end = std::min<std::size_t>(ts_node_end_byte(found.node), text.size());
  def.first_line = std::string(trim(text.substr(start, line_end_at(text, start) - start)));

  // A method is shown inside the first line of its class, dedented to the class's indentation.
  std::string head;
  std::string_view indent = leading_space(text.substr(start));
  for (TSNode up = ts_node_parent(found.node); !ts_node_is_null(up); up = ts_node_parent(up)) {
    if (!is_container_type(ts_node_type(up))) continue;
    if (found.kind == def_kind::method || found.kind == def_kind::function) {
      const std::size_t container = line_start_at(text, ts_node_start_byte(up));
      indent = leading_space(text.substr(container));
      head = std::string(trim_right(text.substr(container, line_end_at(text, container) - container)));
      head = std::string(remove_indent(head, indent));
      head.push_back('\n');
    }
    break;
  }

  const std::optional<TSNode> body = find_body(found.node);
  const std::size_t body_start =
      body ? std::clamp<std::size_t>(ts_node_start_byte(*body), start, end) : end;
  def.signature = head;
  append_lines(def.signature, text, start, body_start > start ? body_start : end, indent, options.signature_lines,
               nullptr);
  if (options.snippet_lines == 0) return def;

  def.snippet = head;
  bool cut = false;
  const bool is_container = body && (found.kind == def_kind::class_ || found.kind == def_kind::type);
  if (is_container) {
    // Header, then one line per member: their first lines, not their bodies.
    append_lines(def.snippet, text, start, body_start, indent, options.signature_lines, nullptr);
    const std::size_t body_line = line_start_at(text, body_start);
    if (!def.snippet.empty() && def.snippet.back() == '\n' && body_start < end &&
        !is_blank(text.substr(body_line, body_start - body_line))) {
      // The body opens on the header's line ("class A {"): keep that opener on it.
      def.snippet.pop_back();
      if (body_start > start && (text[body_start - 1] == ' ' || text[body_start - 1] == '\t')) def.snippet.push_back(' ');
      const std::size_t opener_end = line_end_at(text, body_start);
      def.snippet.append(trim_right(text.substr(body_start, std::min(opener_end, end) - body_start)));
      def.snippet.push_back('\n');
    }
    std::uint32_t lines = 1;
    for (uint32_t i = 0; i < ts_node_named_child_count(*body); ++i) {
      const TSNode member = ts_node_named_child(*body, i);
      if (std::string_view(ts_node_type(member)) == "comment") continue;
      if (lines >= options.snippet_lines) {
        cut = true;
        break;
      }
      const std::size_t member_start = line_start_at(text, ts_node_start_byte(member));
      append_lines(def.snippet, text, member_start, line_end_at(text, member_start), indent, 1, nullptr);
      ++lines;
    }
  } else {
    append_lines(def.snippet, text, start, end, indent, options.snippet_lines, &cut);
  }
  if (cut) {
    std::string_view last = def.snippet;
    last.remove_suffix(1);
    last = last.substr(last.rfind('\n') + 1);
    def.snippet.append(leading_space(last));
    def.snippet.append(lang == language::python ? "..." : std::string(line_comment(lang)) + " ...");
    def.snippet.push_back('\n');
  }
  return def;
}

}  // namespace

std::string_view to_string(def_kind kind) {
  switch (kind) {
    case def_kind::method: return "method";
    case def_kind::function: return "function";
    case def_kind::class_: return "class";
    case def_kind::type: return "type";
    case def_kind::constant: return "constant";
  }
  return "?";
}

namespace {
std::vector<std::string> split_segments(std::string_view text, std::string_view separators) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t j = text.find_first_of(separators, i);
    if (j == std::string_view::npos) j = text.size();
    const std::string_view part = text.substr(i, j - i);
    if (!part.empty() && part != "." && part != ".." && part != "crate" && part != "self" && part != "super") {
      out.emplace_back(part);
    }
    i = j + 1;
  }
  return out;
}

std::size_t common_tail(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::size_t n = 0;
  while (n < a.size() && n < b.size() && a[a.size() - 1 - n] == b[b.size() - 1 - n]) ++n;
  return n;
}

}  // namespace

std::vector<std::string> module_segments(std::string_view module) {
  if (module.find('/') == std::string_view::npos && !module.ends_with(".h") && !module.ends_with(".hpp")) {
    return split_segments(module, ".:\\");  // os.path, java.util, crate::a
  }
  // A path ("./util.js", "a/b/mod", "util.h"): drop the file extension, split on '/'.
  const std::size_t slash = module.rfind('/');
  const std::size_t dot = module.rfind('.');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash + 1) && module.size() - dot <= 5) {
    module = module.substr(0, dot);
  }
  return split_segments(module, "/\\");
}

// How well a definition's file matches the module it was imported from: trailing segments in common
// ("a.b" matches "src/a/b.py", "./util" matches "lib/util.ts", Go's "x/y" matches the folder "x/y").
std::size_t module_match(std::string_view def_path, std::string_view module) {
  if (module.empty()) return 0;
  const std::vector<std::string> mod = module_segments(module);
  std::string stem(def_path);
  if (const std::size_t slash = stem.rfind('/'), dot = stem.rfind('.'); dot != std::string::npos &&
                                                                         (slash == std::string::npos || dot > slash)) {
    stem.resize(dot);
  }
  std::vector<std::string> path = split_segments(stem, "/");
  std::size_t best = common_tail(mod, path);
  if (!path.empty()) {
    path.pop_back();  // the folder: Go packages, Python packages (__init__), index.ts, mod.rs
    best = std::max(best, common_tail(mod, path));
  }
  return best;
}

std::string_view line_comment(language lang) { return lang == language::python ? "#" : "//"; }

std::size_t file_symbols::bytes() const {
  std::size_t total = sizeof(*this);
  for (const definition& d : definitions) {
    total += sizeof(d) + d.name.capacity() + d.first_line.capacity() + d.signature.capacity() + d.snippet.capacity();
  }
  for (const import_entry& i : imports) {
    total += sizeof(i) + i.module.capacity() + i.name.capacity() + i.alias.capacity();
  }
  return total;
}

file_symbols extract_symbols(language lang, std::string_view text, const TSTree* tree, const symbol_options& options) {
  file_symbols out;
  const TSQuery* query = symbols_query(lang);
  if (tree == nullptr || query == nullptr) return out;

  std::vector<capture_role> roles(ts_query_capture_count(query));
  for (uint32_t id = 0; id < roles.size(); ++id) {
    uint32_t length = 0;
    const char* name = ts_query_capture_name_for_id(query, id, &length);
    roles[id] = role_of(std::string_view(name, length));
  }

  std::unique_ptr<TSQueryCursor, decltype(&ts_query_cursor_delete)> cursor(ts_query_cursor_new(),
                                                                           ts_query_cursor_delete);
  ts_query_cursor_exec(cursor.get(), query, ts_tree_root_node(tree));
  std::map<uint32_t, found_def> defs;            // by the name node's start byte
  std::map<std::pair<uint32_t, uint32_t>, import_entry> imports;  // by (statement line, name start)
  TSQueryMatch match;
  while (ts_query_cursor_next_match(cursor.get(), &match)) {
    std::optional<found_def> def;
    std::optional<TSNode> name, module, imported, alias;
    bool require_ok = true;
    for (uint16_t i = 0; i < match.capture_count; ++i) {
      const TSQueryCapture& c = match.captures[i];
      const capture_role r = roles[c.index];
      switch (r.what) {
        case role::def: def = found_def{r.kind, c.node, c.node}; break;
        case role::name: name = c.node; break;
        case role::module: module = c.node; break;
        case role::import_name: imported = c.node; break;
        case role::alias: alias = c.node; break;
        case role::require: require_ok = node_text(c.node, text) == "require"; break;
        case role::none: break;
      }
    }
    if (def && name) {
      if (!options.definitions) continue;
      def->name = *name;
      auto [it, inserted] = defs.emplace(ts_node_start_byte(*name), *def);
      if (!inserted && def->kind < it->second.kind) it->second = *def;
      continue;
    }
    if (!require_ok || !(module || imported || alias)) continue;
    import_entry entry;
    if (module) {
      std::string_view m = node_text(*module, text);
      if (m.size() >= 2 && m.front() == '<' && m.back() == '>') m = m.substr(1, m.size() - 2);
      entry.module = std::string(m);
    }
    if (imported) entry.name = std::string(node_text(*imported, text));
    if (alias) entry.alias = std::string(node_text(*alias, text));
    const TSNode anchor = imported ? *imported : alias ? *alias : *module;
    entry.line = ts_node_start_point(anchor).row;
    auto [it, inserted] = imports.emplace(std::make_pair(entry.line, ts_node_start_byte(anchor)), entry);
    if (!inserted && it->second.alias.empty()) it->second.alias = entry.alias;
  }

  out.definitions.reserve(defs.size());
  for (const auto& [start, found] : defs) out.definitions.push_back(make_definition(lang, text, found, options));
  std::stable_sort(out.definitions.begin(), out.definitions.end(),
                   [](const definition& a, const definition& b) { return a.line < b.line; });
  out.imports.reserve(imports.size());
  for (auto& [key, entry] : imports) out.imports.push_back(std::move(entry));
  return out;
}

}  // namespace qcoder::context
