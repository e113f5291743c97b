// Import resolution, uses around the cursor, and their ranking.
#include "context/related_code.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include <tree_sitter/api.h>

#include "context/text_lines.h"

namespace qcoder::context {
namespace {

using sv = std::string_view;

bool ends_with(sv s, sv tail) { return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail; }

std::string parent_dir(sv path) {
  const std::size_t slash = path.rfind('/');
  return slash == sv::npos ? std::string() : std::string(path.substr(0, slash));
}

// `dir` + "/" + `rel` with "." and ".." resolved; nullopt when ".." climbs above the root.
std::optional<std::string> join_path(sv dir, sv rel) {
  std::vector<std::string> parts;
  const auto push = [&](sv piece) {
    std::size_t i = 0;
    while (i <= piece.size()) {
      std::size_t j = piece.find('/', i);
      if (j == sv::npos) j = piece.size();
      const sv part = piece.substr(i, j - i);
      if (part == "..") {
        if (parts.empty()) return false;
        parts.pop_back();
      } else if (!part.empty() && part != ".") {
        parts.emplace_back(part);
      }
      i = j + 1;
    }
    return true;
  };
  if (!push(dir) || !push(rel)) return std::nullopt;
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out.push_back('/');
    out.append(p);
  }
  return out;
}

void add_unique(std::vector<std::string>& out, std::string value) {
  if (std::find(out.begin(), out.end(), value) == out.end()) out.push_back(std::move(value));
}

// Files whose path matches every segment of `module` at its end (a src/ layout still matches).
// Go's import paths start with the module's own path (example.com/app/...), which the folders do not
// repeat: there the last two segments are enough.
std::vector<std::string> by_module_table(const workspace_index& index, sv module, std::size_t max, bool go = false) {
  std::vector<std::string> found = index.files_for_module(module, max);
  const std::size_t segments = module_segments(module).size();
  const std::size_t want = go ? std::min<std::size_t>(segments, 2) : segments;
  std::erase_if(found, [&](const std::string& f) { return module_match(f, module) < want; });
  return found;
}

bool is_script(language lang) {
  return lang == language::javascript || lang == language::typescript || lang == language::tsx;
}

// What a local module name is called when the import gives none (`import os.path` binds "os" and
// "os.path"; a Go import binds its last path segment).
std::vector<std::string> implicit_module_names(language lang, sv module) {
  std::vector<std::string> names;
  if (module.empty()) return names;
  if (lang == language::python) {
    names.emplace_back(module);
    const std::size_t dot = module.find('.');
    if (dot != sv::npos && dot > 0) names.emplace_back(module.substr(0, dot));
  } else if (lang == language::go) {
    const std::size_t slash = module.rfind('/');
    names.emplace_back(slash == sv::npos ? module : module.substr(slash + 1));
  }
  return names;
}

}  // namespace

std::vector<std::string> resolve_module(const workspace_index& index, sv from_path, language lang, sv module) {
  std::vector<std::string> out;
  if (module.empty()) return out;
  const std::string dir = parent_dir(from_path);
  const auto try_file = [&](const std::optional<std::string>& candidate) {
    if (candidate && !candidate->empty() && index.contains(*candidate)) add_unique(out, *candidate);
  };
  if (lang == language::python) {
    std::size_t dots = 0;
    while (dots < module.size() && module[dots] == '.') ++dots;
    std::string rest(module.substr(dots));
    std::replace(rest.begin(), rest.end(), '.', '/');
    if (dots > 0) {  // relative: one dot is the file's package, each further dot goes up one
      std::string base = dir;
      for (std::size_t i = 1; i < dots; ++i) base = parent_dir(base);
      const std::optional<std::string> target = join_path(base, rest);
      if (!target) return out;
      if (!rest.empty()) try_file(*target + ".py");
      try_file(join_path(*target, "__init__.py"));
      return out;
    }
    try_file(rest + ".py");
    try_file(rest + "/__init__.py");
    if (out.empty()) out = by_module_table(index, module, 4);
    return out;
  }
  if (is_script(lang)) {
    if (module.starts_with("./") || module.starts_with("../") || module == "." || module == "..") {
      const std::optional<std::string> target = join_path(dir, module);
      if (!target) return out;
      std::string stem = *target;
      for (sv ext : {".js", ".mjs", ".cjs", ".jsx"}) {  // TS resolves './x.js' to x.ts
        if (ends_with(stem, ext)) {
          try_file(stem);
          stem.resize(stem.size() - ext.size());
          break;
        }
      }
      for (sv ext : {".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs"}) {
        try_file(stem + std::string(ext));
      }
      if (out.empty()) {
        for (sv ext : {".ts", ".tsx", ".js", ".jsx"}) try_file(stem + "/index" + std::string(ext));
      }
      try_file(*target);
      return out;
    }
    return by_module_table(index, module, 4);  // a package name: only when the workspace holds it
  }
  if (lang == language::c || lang == language::cpp) {
    try_file(join_path(dir, module));  // #include "x.h" looks next to the file first
    try_file(std::string(module));
    std::vector<std::string> same_stem = by_module_table(index, module, 8);
    if (!out.empty()) {
      // The header's files of the same stem beside it (x.c next to x.h) hold the definitions.
      const std::string folder = parent_dir(out.front());
      std::erase_if(same_stem, [&](const std::string& f) { return parent_dir(f) != folder; });
    }
    for (std::string& f : same_stem) add_unique(out, std::move(f));
    return out;
  }
  if (lang == language::rust && (module.starts_with("crate::") || module.starts_with("super::") ||
                                 module.starts_with("self::") || module == "crate" || module == "super" || module == "self")) {
    // crate:: from the crate's root folder (the nearest folder up with main.rs or lib.rs), super:: one up.
    std::string base = dir;
    if (module.starts_with("crate")) {
      for (std::string d = dir;; d = parent_dir(d)) {
        if (index.contains(d.empty() ? "main.rs" : d + "/main.rs") || index.contains(d.empty() ? "lib.rs" : d + "/lib.rs")) {
          base = d;
          break;
        }
        if (d.empty()) break;
      }
    } else if (module.starts_with("super")) {
      base = parent_dir(dir);
    }
    std::string rest;
    for (const std::string& segment : module_segments(module)) rest += (rest.empty() ? "" : "/") + segment;
    if (rest.empty()) return out;
    const std::optional<std::string> target = join_path(base, rest);
    if (!target) return out;
    try_file(*target + ".rs");
    try_file(join_path(*target, "mod.rs"));
    if (!out.empty()) return out;
  }
  return by_module_table(index, module, lang == language::go ? 16 : 4, lang == language::go);
}

import_table::import_table(const workspace_index& index, sv path, language lang, const std::vector<import_entry>& imports) {
  for (const import_entry& imp : imports) {
    std::vector<std::string> files = resolve_module(index, path, lang, imp.module);
    if (!imp.name.empty()) {
      // The imported name may itself be a module (from pkg import mod; use a::b::c; import a.b.C).
      std::vector<std::string> sub;
      if (lang == language::python) {
        sub = resolve_module(index, path, lang, imp.module.ends_with('.') ? imp.module + imp.name : imp.module + "." + imp.name);
      } else if (lang == language::rust) {
        sub = resolve_module(index, path, lang, imp.module.empty() ? imp.name : imp.module + "::" + imp.name);
      } else if (lang == language::java) {
        sub = resolve_module(index, path, lang, imp.module + "." + imp.name);
      }
      const std::string local = imp.alias.empty() ? imp.name : imp.alias;
      if (!sub.empty()) modules_.emplace(local, sub);
      bound_name& bound = names_[local];
      bound.original = imp.name;
      for (std::string& f : files) add_unique(bound.files, f);
      for (std::string& f : sub) add_unique(bound.files, f);
      for (const std::string& f : bound.files) add_unique(files_, f);
      continue;
    }
    if (!imp.alias.empty()) {
      modules_.emplace(imp.alias, files);
    } else {
      for (std::string& local : implicit_module_names(lang, imp.module)) {
        // `import a.b` also binds "a", which is the package a, not a.b.
        modules_.emplace(local, local == imp.module || lang != language::python ? files
                                                                                 : resolve_module(index, path, lang, local));
      }
    }
    for (std::string& f : files) add_unique(files_, std::move(f));
  }
}

const import_table::bound_name* import_table::name(sv local) const {
  const auto it = names_.find(std::string(local));
  return it == names_.end() ? nullptr : &it->second;
}

const std::vector<std::string>* import_table::module(sv local) const {
  const auto it = modules_.find(std::string(local));
  return it == modules_.end() || it->second.empty() ? nullptr : &it->second;
}

std::string_view to_string(relation r) {
  switch (r) {
    case relation::imported: return "imported";
    case relation::base_class: return "base_class";
    case relation::included: return "included";
    case relation::local: return "local";
    case relation::nearby: return "nearby";
    case relation::global: return "global";
  }
  return "?";
}

namespace {

constexpr std::array<sv, 8> member_types{"attribute", "member_expression", "selector_expression", "field_expression",
                                         "scoped_identifier", "field_access", "method_invocation", "qualified_identifier"};
constexpr std::array<const char*, 6> object_fields{"object", "operand", "value", "argument", "path", "scope"};
constexpr std::array<const char*, 4> member_fields{"attribute", "property", "field", "name"};

TSNode child_by_fields(TSNode n, const auto& fields) {
  for (const char* f : fields) {
    const TSNode c = ts_node_child_by_field_name(n, f, static_cast<uint32_t>(std::char_traits<char>::length(f)));
    if (!ts_node_is_null(c)) return c;
  }
  return TSNode{};
}

sv node_text(TSNode n, sv text) {
  const std::size_t begin = std::min<std::size_t>(ts_node_start_byte(n), text.size());
  const std::size_t end = std::min<std::size_t>(ts_node_end_byte(n), text.size());
  return text.substr(begin, end - begin);
}

// A receiver we can name: an identifier, `this`/`self`, or a dotted chain of them ("a.b"); else "?".
std::string object_name(TSNode object, sv text) {
  const sv t = node_text(object, text);
  if (t.empty() || t.size() > 80) return "?";
  for (char c : t) {
    if (!is_identifier_char(c) && c != '.') return "?";
  }
  return std::string(t);
}

bool is_function_type(sv type) {
  static constexpr std::array<sv, 12> types{"function_definition", "function_declaration", "method_definition",
                                            "method_declaration", "function_item", "arrow_function",
                                            "function_expression", "constructor_declaration", "func_literal",
                                            "generator_function_declaration", "lambda_expression", "function"};
  return std::find(types.begin(), types.end(), type) != types.end();
}

bool is_class_type(sv type) {
  static constexpr std::array<sv, 9> types{"class_definition", "class_declaration", "abstract_class_declaration",
                                           "class_specifier", "struct_specifier", "impl_item", "trait_item",
                                           "interface_declaration", "record_declaration"};
  return std::find(types.begin(), types.end(), type) != types.end();
}

bool is_self(sv object) { return object == "self" || object == "this" || object == "cls" || object == "Self"; }

// Words that can sit between a class's name and its body but are not base classes.
bool is_heritage_keyword(sv word) {
  static constexpr std::array<sv, 20> words{"class", "extends", "implements", "public", "private", "protected",
                                            "virtual", "final", "abstract", "export", "default", "struct",
                                            "interface", "metaclass", "object", "for", "impl", "where", "record",
                                            "declare"};
  return std::find(words.begin(), words.end(), word) != words.end();
}

struct use_key {
  std::string object;  // "" for a plain name
  std::string name;
  friend bool operator<(const use_key& a, const use_key& b) {
    return a.object != b.object ? a.object < b.object : a.name < b.name;
  }
};

struct use_stats {
  std::size_t distance = SIZE_MAX;  // lines from the cursor's line (after the cursor: doubled)
  std::size_t count = 0;
  bool called = false;
  bool type = false;
};

// The cursor's enclosing function and class: the ancestors of the last code before the cursor. Python's
// bodies end at their last statement, so a blank line below one still belongs to it when the cursor is
// indented deeper than the header.
struct enclosing {
  std::optional<TSNode> function;  // the outermost function inside the innermost class (or the file)
  std::optional<TSNode> klass;
};

enclosing find_enclosing(const source_view& src, std::size_t cursor) {
  enclosing out;
  const sv text = src.text;
  std::size_t anchor = cursor;
  while (anchor > 0 && is_blank_char(text[anchor - 1])) --anchor;
  anchor = anchor > 0 ? anchor - 1 : 0;
  const std::size_t cursor_line = line_start_at(text, cursor);
  const sv before = text.substr(cursor_line, cursor - cursor_line);
  const std::size_t cursor_indent = is_blank(before) ? before.size() : leading_space(text.substr(cursor_line)).size();
  const TSNode root = ts_tree_root_node(src.tree);
  for (TSNode n = ts_node_descendant_for_byte_range(root, static_cast<uint32_t>(anchor), static_cast<uint32_t>(anchor + 1));
       !ts_node_is_null(n); n = ts_node_parent(n)) {
    const sv type = ts_node_type(n);
    const bool function = is_function_type(type), klass = is_class_type(type);
    if (!function && !klass) continue;
    const std::size_t start = ts_node_start_byte(n), end = ts_node_end_byte(n);
    const std::size_t header_indent = leading_space(text.substr(line_start_at(text, start))).size();
    const bool inside = start < cursor && (end > cursor || (src.lang == language::python && header_indent < cursor_indent &&
                                                            line_start_at(text, start) < cursor_line));
    if (!inside) continue;
    if (function && !out.klass) out.function = n;  // nested functions: the outermost below the class
    if (klass && !out.klass) out.klass = n;
  }
  return out;
}

// Whether an identifier is the name a definition introduces (`def f`, `class A`, `int f(...)`), not a use.
bool is_definition_name(TSNode node) {
  const TSNode parent = ts_node_parent(node);
  if (ts_node_is_null(parent)) return false;
  const sv type = ts_node_type(parent);
  if (!is_function_type(type) && !is_class_type(type) && type != "function_declarator" && type != "type_spec" &&
      type != "type_alias_declaration" && type != "enum_declaration" && type != "enum_item" && type != "struct_item") {
    return false;
  }
  for (const char* field : {"name", "declarator"}) {
    const TSNode named = ts_node_child_by_field_name(parent, field, static_cast<uint32_t>(std::char_traits<char>::length(field)));
    if (!ts_node_is_null(named) && ts_node_eq(named, node)) return true;
  }
  return false;
}

// Identifier uses in [begin, end): plain names and `object.member`, with whether each is called or a type.
void collect_uses(const source_view& src, std::size_t begin, std::size_t end, std::size_t cursor,
                  std::map<use_key, use_stats>& uses) {
  const sv text = src.text;
  const std::size_t cursor_line = line_start_at(text, cursor);
  // Line of each use: count newlines as the walk moves forward (it visits in source order).
  std::size_t line_pos = begin, line_no = 0;
  const std::size_t cursor_no = static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(begin),
                                                                    text.begin() + static_cast<std::ptrdiff_t>(cursor_line), '\n'));
  const auto record = [&](std::string object, TSNode name_node, bool type) {
    const std::size_t start = ts_node_start_byte(name_node), stop = ts_node_end_byte(name_node);
    if (start < begin || stop > end || stop - start < 2) return;
    if (start > line_pos) {
      line_no += static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(line_pos),
                                                     text.begin() + static_cast<std::ptrdiff_t>(start), '\n'));
      line_pos = start;
    }
    const std::size_t distance = line_no <= cursor_no ? cursor_no - line_no : 2 * (line_no - cursor_no);
    std::size_t next = stop;
    while (next < text.size() && (text[next] == ' ' || text[next] == '\t')) ++next;
    use_stats& s = uses[{std::move(object), std::string(text.substr(start, stop - start))}];
    s.distance = std::min(s.distance, distance);
    s.count += 1;
    s.called = s.called || (next < text.size() && text[next] == '(');
    s.type = s.type || type;
  };
  std::set<std::uint32_t> members;  // start bytes of name nodes already recorded as a member
  TSTreeCursor walker = ts_tree_cursor_new(ts_tree_root_node(src.tree));
  for (;;) {
    const TSNode node = ts_tree_cursor_current_node(&walker);
    const bool overlap = ts_node_start_byte(node) < end && ts_node_end_byte(node) > begin;
    if (overlap) {
      const sv type = ts_node_type(node);
      if (std::find(member_types.begin(), member_types.end(), type) != member_types.end()) {
        const TSNode object = child_by_fields(node, object_fields);
        const TSNode member = child_by_fields(node, member_fields);
        if (object.id != nullptr && member.id != nullptr && ts_node_child_count(member) == 0) {
          record(object_name(object, text), member, false);
          members.insert(ts_node_start_byte(member));
        }
      } else if (ts_node_child_count(node) == 0 && ts_node_is_named(node) && ends_with(type, "identifier") &&
                 !members.count(ts_node_start_byte(node)) && !is_definition_name(node)) {
        record("", node, type.find("type_identifier") != sv::npos);
      }
    }
    // Straight to the first child that reaches the region: a long file's earlier siblings are skipped.
    if (overlap && ts_tree_cursor_goto_first_child_for_byte(&walker, static_cast<uint32_t>(begin)) >= 0) continue;
    bool moved = false;
    while (!(moved = ts_tree_cursor_goto_next_sibling(&walker))) {
      if (!ts_tree_cursor_goto_parent(&walker)) break;
    }
    if (!moved) break;
  }
  ts_tree_cursor_delete(&walker);
}

// Base classes named in a class's header: (object, name) pairs, "" object for a plain name.
std::vector<use_key> base_classes(TSNode klass, sv text) {
  std::vector<use_key> out;
  const TSNode name = ts_node_child_by_field_name(klass, "name", 4);
  const TSNode body = ts_node_child_by_field_name(klass, "body", 4);
  const std::size_t from = ts_node_is_null(name) ? ts_node_start_byte(klass) : ts_node_end_byte(name);
  const std::size_t to = ts_node_is_null(body) ? ts_node_end_byte(klass) : ts_node_start_byte(body);
  if (to <= from || to - from > 600) return out;
  const sv header = text.substr(from, to - from);
  std::string chain;  // a.b.C
  const auto flush = [&] {
    if (chain.empty()) return;
    const std::size_t dot = chain.rfind('.');
    use_key key{dot == std::string::npos ? "" : chain.substr(0, dot), dot == std::string::npos ? chain : chain.substr(dot + 1)};
    if (!is_heritage_keyword(key.name) && key.name.size() > 1 && !(key.name[0] >= '0' && key.name[0] <= '9')) {
      out.push_back(std::move(key));
    }
    chain.clear();
  };
  for (std::size_t i = 0; i < header.size();) {
    if (is_identifier_char(header[i])) {
      std::size_t j = i;
      while (j < header.size() && is_identifier_char(header[j])) ++j;
      chain.append(header.substr(i, j - i));
      i = j;
      if (i < header.size() && header[i] == '.') {
        chain.push_back('.');
        ++i;
      } else if (i + 1 < header.size() && header[i] == ':' && header[i + 1] == ':') {
        chain.push_back('.');
        i += 2;
      } else {
        flush();
      }
      continue;
    }
    if (header[i] == '=') {  // Python keyword arguments (metaclass=M): skip the value
      chain.clear();
      while (i < header.size() && header[i] != ',' && header[i] != ')') ++i;
      continue;
    }
    flush();
    ++i;
  }
  flush();
  return out;
}

// The longest run of leading folders two paths share.
std::size_t shared_folders(sv a, sv b) {
  std::size_t n = 0, i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) {
    if (a[i] == '/') ++n;
    ++i;
  }
  return n;
}

class resolver {
 public:
  resolver(const source_view& src, const workspace_index& index, const import_table& imports, const related_options& options)
      : path_(src.path), dir_(parent_dir(src.path)), index_(index), imports_(imports), options_(options) {}

  // The definitions named `name`, at most `max`.
  std::vector<indexed_definition> named(const std::string& name, std::size_t max) const {
    if (index_.count(name) == 0) return {};
    return index_.lookup(name, max);
  }

  bool in_imported_file(const indexed_definition& d) const {
    return std::find(imports_.files().begin(), imports_.files().end(), d.path) != imports_.files().end();
  }

  // The definition of `name` in one of `files`, or in a file one of them re-exports it from (`from .case
  // import TestCase` in a package's __init__.py, `export { map } from './map'` in an index.ts).
  std::optional<indexed_definition> defined_in(const std::string& name, const std::vector<std::string>& files) const {
    std::vector<indexed_definition> found = named(name, 64);
    if (found.empty()) return std::nullopt;
    const auto in = [](const std::vector<std::string>& list, const std::string& f) {
      return std::find(list.begin(), list.end(), f) != list.end();
    };
    for (indexed_definition& d : found) {
      if (in(files, d.path)) return std::move(d);
    }
    for (const std::string& f : files) {
      const std::optional<language> lang = language_from_path(f);
      const std::optional<file_symbols> symbols = lang ? index_.file(f) : std::nullopt;
      if (!symbols) continue;
      for (const import_entry& imp : symbols->imports) {
        if (imp.name != name && imp.alias != name) continue;
        const std::vector<std::string> from = resolve_module(index_, f, *lang, imp.module);
        for (indexed_definition& d : found) {
          if (in(from, d.path) && d.def.name == (imp.name.empty() ? name : imp.name)) return std::move(d);
        }
      }
    }
    return std::nullopt;
  }

  // A plain name: imported by name, the file's own, from an imported file, a neighbour, or nearly unique.
  std::optional<std::pair<indexed_definition, relation>> plain(const std::string& name) const {
    if (const import_table::bound_name* bound = imports_.name(name)) {
      if (auto d = defined_in(bound->original, bound->files)) return std::pair{std::move(*d), relation::imported};
      // Re-exported some other way: the name's only definition will do.
      std::vector<indexed_definition> found = named(bound->original, 2);
      if (found.size() == 1) return std::pair{std::move(found.front()), relation::imported};
      return std::nullopt;
    }
    // A module bound to the name (`const Base = require('./base')`, a default import): the definition of
    // that name in it, before the binding itself (which the file defines as a constant).
    if (const std::vector<std::string>* files = imports_.module(name)) {
      if (auto d = defined_in(name, *files)) return std::pair{std::move(*d), relation::imported};
    }
    std::vector<indexed_definition> found = named(name, options_.max_candidates * 4);
    if (found.empty()) return std::nullopt;
    for (indexed_definition& d : found) {
      if (d.path == path_) return std::pair{std::move(d), relation::local};
    }
    for (indexed_definition& d : found) {
      if (in_imported_file(d)) return std::pair{std::move(d), relation::included};
    }
    for (indexed_definition& d : found) {
      if (parent_dir(d.path) == dir_) return std::pair{std::move(d), relation::nearby};
    }
    if (found.size() > options_.max_candidates) return std::nullopt;
    std::stable_sort(found.begin(), found.end(), [&](const auto& a, const auto& b) {
      return shared_folders(a.path, path_) > shared_folders(b.path, path_);
    });
    if (found.size() > 1 && shared_folders(found[0].path, path_) == shared_folders(found[1].path, path_)) {
      return std::nullopt;  // no reason to prefer one
    }
    return std::pair{std::move(found.front()), relation::global};
  }

  // `module.name` where `module` is an imported module's local name.
  std::optional<indexed_definition> module_member(const std::string& object, const std::string& name) const {
    const std::vector<std::string>* files = imports_.module(object);
    if (files == nullptr) return std::nullopt;
    return defined_in(name, *files);
  }

  // A member of a class definition (by line range), from its file's definitions.
  std::optional<indexed_definition> member_of(const indexed_definition& klass, const std::string& name) const {
    for (indexed_definition& d : named(name, 64)) {
      if (d.path == klass.path && d.def.line > klass.def.line && d.def.line <= klass.def.end_line) return std::move(d);
    }
    return std::nullopt;
  }

  // A base class named in the header, as a class or type definition in another file.
  std::optional<indexed_definition> base(const use_key& key) const {
    std::optional<indexed_definition> found;
    if (!key.object.empty()) {
      found = module_member(key.object, key.name);
    } else if (auto p = plain(key.name)) {
      found = std::move(p->first);
    }
    if (!found || (found->def.kind != def_kind::class_ && found->def.kind != def_kind::type)) return std::nullopt;
    return found;
  }

  // A module's top-level definitions in outline order (workspace_index::outline), at most `max` per file.
  std::vector<indexed_definition> module_outline(const std::vector<std::string>& files, std::size_t max) const {
    std::vector<indexed_definition> out;
    for (const std::string& f : files) {
      for (indexed_definition& d : index_.outline(f, max)) out.push_back(std::move(d));
    }
    return out;
  }

  // The outline of a class: its first line and each member's first line, as one definition.
  indexed_definition outline(const indexed_definition& klass) const {
    indexed_definition out = klass;
    std::string text = klass.def.first_line + "\n";
    std::size_t members = 0;
    if (const std::optional<file_symbols> symbols = index_.file(klass.path)) {
      for (const definition& d : symbols->definitions) {
        if (d.line <= klass.def.line || d.line > klass.def.end_line) continue;
        if (++members > 40) {
          text.append("    ").append(line_comment(klass.lang)).append(" ...\n");
          break;
        }
        text.append("    ").append(d.first_line).push_back('\n');
      }
    }
    if (members == 0) return klass;
    out.def.signature = text;
    out.def.snippet = std::move(text);
    return out;
  }

 private:
  std::string path_;
  std::string dir_;
  const workspace_index& index_;
  const import_table& imports_;
  const related_options& options_;
};

double weight(relation r) {
  switch (r) {
    case relation::imported: return 3.0;
    case relation::base_class: return 2.5;
    case relation::included: return 2.0;
    case relation::local: return 1.5;
    case relation::nearby: return 1.5;
    case relation::global: return 1.0;
  }
  return 0;
}

}  // namespace

std::vector<related_definition> find_related(const source_view& src, std::size_t cursor, const workspace_index& index,
                                             const import_table& imports, const related_options& options) {
  std::vector<related_definition> out;
  const sv text = src.text;
  if (src.tree == nullptr || !src.lang || cursor > text.size()) return out;

  // The region: the enclosing function and at least lines_before lines, at most max_lines_before.
  const enclosing around = find_enclosing(src, cursor);
  const std::size_t cursor_line = line_start_at(text, cursor);
  std::size_t begin = cursor_line, lines = 0;
  const std::size_t function_start = around.function ? line_start_at(text, ts_node_start_byte(*around.function)) : cursor_line;
  while (begin > 0 && lines < options.max_lines_before && (lines < options.lines_before || begin > function_start)) {
    begin = line_start_at(text, begin - 1);
    ++lines;
  }
  std::size_t end = cursor_line;
  for (std::size_t i = 0; i <= options.lines_after && end < text.size(); ++i) {
    const std::size_t eol = line_end_at(text, end);
    end = eol < text.size() ? eol + 1 : eol;
  }
  std::map<use_key, use_stats> uses;
  collect_uses(src, begin, end, cursor, uses);

  const resolver resolve(src, index, imports, options);
  std::map<std::pair<std::string, std::uint32_t>, std::size_t> at;  // (path, line) -> index in out
  const auto add = [&](indexed_definition def, relation why, double score, std::size_t count, bool outline = false,
                       bool brief = false) {
    const auto key = std::make_pair(def.path, def.def.line);
    if (const auto it = at.find(key); it != at.end()) {
      related_definition& r = out[it->second];
      r.score = std::max(r.score, score) + 0.1;
      r.uses += count;
      r.brief = r.brief && brief;
      return;
    }
    at.emplace(key, out.size());
    out.push_back({std::move(def), why, score, count, outline, brief});
  };

  // Base classes of the enclosing class, when they live in another file.
  std::vector<indexed_definition> bases;
  if (around.klass) {
    for (const use_key& key : base_classes(*around.klass, text)) {
      if (std::optional<indexed_definition> b = resolve.base(key); b && b->path != src.path) bases.push_back(std::move(*b));
    }
  }

  // The base classes' outlines: what `self.` is about to call.
  for (const indexed_definition& b : bases) {
    add(resolve.outline(b), relation::base_class, weight(relation::base_class) + 1.0, 0, /*outline=*/true);
  }

  for (const auto& [key, stats] : uses) {
    std::optional<indexed_definition> def;
    relation why = relation::global;
    double bonus = 0;
    if (key.object.empty()) {
      if (auto found = resolve.plain(key.name)) def = std::move(found->first), why = found->second;
    } else if (auto member = resolve.module_member(key.object, key.name)) {
      def = std::move(member), why = relation::imported;
    } else if (imports.module(key.object) != nullptr) {
      continue;  // a member the imported module does not define in the workspace (os.major is C): no guess
    } else if (is_self(key.object) || key.object.starts_with("self.") || key.object.starts_with("this.")) {
      if (is_self(key.object)) {
        for (const indexed_definition& b : bases) {
          if ((def = resolve.member_of(b, key.name))) {
            why = relation::base_class;
            break;
          }
        }
      }
      if (!def) {
        std::vector<indexed_definition> found = resolve.named(key.name, 2);
        if (found.size() == 1) {
          why = found.front().path == src.path ? relation::local : relation::global;
          def = std::move(found.front());
        }
      }
    } else {
      // A method of an object whose type we do not know: a definition in an imported file, or a unique one.
      std::vector<indexed_definition> found = resolve.named(key.name, options.max_candidates);
      std::vector<indexed_definition> imported;
      for (indexed_definition& d : found) {
        if (resolve.in_imported_file(d)) imported.push_back(std::move(d));
      }
      if (imported.size() == 1) {
        def = std::move(imported.front()), why = relation::included;
      } else if (found.size() == 1) {
        why = found.front().path == src.path ? relation::local : relation::global;
        def = std::move(found.front());
        bonus = -0.5;  // less sure: the object may be of another type
      }
    }
    if (!def) continue;
    double score = weight(why) + bonus + 2.0 / (1.0 + static_cast<double>(stats.distance) / 8.0);
    if (stats.called || stats.type) score += 0.5;
    score += 0.2 * static_cast<double>(std::min<std::size_t>(stats.count - 1, 5));
    add(std::move(*def), why, score, stats.count);
  }

  // Modules used near the cursor: their most used definitions, as first lines, below everything used.
  std::map<std::string, std::size_t> module_distance;  // local module name -> nearest use
  for (const auto& [key, stats] : uses) {
    if (key.object.empty() || imports.module(key.object) == nullptr) continue;
    const auto [it, fresh] = module_distance.emplace(key.object, stats.distance);
    if (!fresh) it->second = std::min(it->second, stats.distance);
  }
  for (const auto& [object, distance] : module_distance) {
    double score = 1.0 + 1.0 / (1.0 + static_cast<double>(distance) / 8.0);
    for (indexed_definition& d : resolve.module_outline(*imports.module(object), options.module_outline)) {
      add(std::move(d), relation::imported, score, 0, false, /*brief=*/true);
      score -= 0.001;  // keep the outline's order
    }
  }

  std::sort(out.begin(), out.end(), [](const related_definition& a, const related_definition& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.def.path != b.def.path ? a.def.path < b.def.path : a.def.def.line < b.def.def.line;
  });
  if (out.size() > options.max_results) out.resize(options.max_results);
  return out;
}

}  // namespace qcoder::context
