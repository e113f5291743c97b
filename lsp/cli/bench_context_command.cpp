// `qcoder bench context`: does the prompt builder put the right definitions in the prompt, and how fast?
//
// Indexes the workspace, then samples call sites whose callee is a function or method defined exactly once
// in the workspace, in another file (so finding it takes the index, and "the right definition" is not
// ambiguous), and which really call it (find_call_sites: not a builtin of the same name). While a sample is
// measured, the index holds its file without the hidden line, as the editor's index would. For each, the call's line is emptied (its indentation kept) and the cursor put there, as if
// the user were about to type the call; the prompt is built at each budget and counts as a hit when the
// callee's first line (less an opening brace) appears in a context block (imports, used, snippet). Build time is the builder's
// call alone (in the server the tree is already up to date when a request comes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <tree_sitter/api.h>

#include "context/document.h"
#include "context/prompt_builder.h"
#include "context/queries.h"
#include "context/related_code.h"
#include "context/symbols.h"
#include "context/text_lines.h"
#include "context/workspace_index.h"
#include "lsp/cli/bench_command.h"
#include "lsp/cli/tokenize_command.h"

namespace qcoder::cli {
namespace {
namespace fs = std::filesystem;

struct call_site {
  std::string path;
  context::language lang;
  std::size_t line_start = 0;  // byte offsets of the call's line
  std::size_t line_end = 0;
  std::string callee;
  std::string callee_first_line;
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

bool has_name_imports(context::language lang) {
  return lang == context::language::python || lang == context::language::javascript ||
         lang == context::language::typescript || lang == context::language::tsx;
}

// Methods of the languages' built-in types: `s.startswith(x)` or `list.push(x)` on a receiver of unknown type
// calls the built-in, not a workspace method that happens to share the name.
bool is_builtin_method(context::language lang, std::string_view name) {
  static constexpr std::string_view python[] = {
      "append", "extend", "insert", "remove", "pop", "clear", "index", "count", "sort", "reverse", "copy", "keys",
      "values", "items", "get", "setdefault", "update", "popitem", "fromkeys", "add", "discard", "union",
      "intersection", "difference", "issubset", "issuperset", "isdisjoint", "join", "split", "rsplit", "splitlines",
      "strip", "lstrip", "rstrip", "startswith", "endswith", "find", "rfind", "rindex", "replace", "lower", "upper",
      "format", "format_map", "encode", "decode", "partition", "rpartition", "ljust", "rjust", "center", "zfill",
      "expandtabs", "translate", "maketrans", "casefold", "capitalize", "title", "swapcase", "isalnum", "isalpha",
      "isdigit", "isdecimal", "isnumeric", "isspace", "isidentifier", "islower", "isupper", "istitle", "isascii",
      "isprintable", "removeprefix", "removesuffix", "hex", "fromhex", "read", "readline", "readlines", "write",
      "writelines", "close", "flush", "seek", "tell", "fileno", "truncate", "readable", "writable", "seekable"};
  static constexpr std::string_view script[] = {
      "push", "pop", "shift", "unshift", "slice", "splice", "concat", "join", "reverse", "sort", "indexOf",
      "lastIndexOf", "includes", "find", "findIndex", "filter", "map", "forEach", "reduce", "reduceRight", "some",
      "every", "flat", "flatMap", "fill", "keys", "values", "entries", "at", "charAt", "charCodeAt", "split",
      "substring", "substr", "toLowerCase", "toUpperCase", "trim", "trimStart", "trimEnd", "startsWith", "endsWith",
      "padStart", "padEnd", "repeat", "replace", "replaceAll", "match", "matchAll", "search", "localeCompare",
      "normalize", "get", "set", "has", "delete", "clear", "add", "hasOwnProperty", "toString", "valueOf", "then",
      "catch", "finally", "call", "apply", "bind", "parse", "stringify", "log", "error", "warn", "info", "debug"};
  const auto in = [&](const auto& list) { return std::find(std::begin(list), std::end(list), name) != std::end(list); };
  if (lang == context::language::python) return in(python);
  if (has_name_imports(lang)) return in(script);
  return false;
}

// The receiver of a call's name (`obj` in obj.f()), empty for a plain call.
std::string receiver_of(TSNode name, std::string_view text) {
  const TSNode parent = ts_node_parent(name);
  if (ts_node_is_null(parent)) return {};
  const std::string_view type = ts_node_type(parent);
  if (type == "call" || type == "call_expression" || type == "method_invocation") {
    const TSNode object = ts_node_child_by_field_name(parent, "object", 6);  // Java: object.name(...)
    if (ts_node_is_null(object)) return {};
    return std::string(text.substr(ts_node_start_byte(object), ts_node_end_byte(object) - ts_node_start_byte(object)));
  }
  const TSNode first = ts_node_named_child(parent, 0);
  if (ts_node_is_null(first) || ts_node_eq(first, name)) return {};
  return std::string(text.substr(ts_node_start_byte(first), ts_node_end_byte(first) - ts_node_start_byte(first)));
}

// Call sites in one file whose callee the index holds exactly once, in another file, that really refer to
// that definition: in languages that import names (Python, JS/TS), a plain call's name must be imported from
// the definition's file and `module.f()` must name a module that resolves to it; a call on another receiver
// must not be a built-in type's method. Elsewhere (C includes, Go packages, Rust, Java), one of the file's
// imports must name the definition's file.
void find_call_sites(const context::workspace_index& index, const std::string& path, context::language lang,
                     const std::string& text, std::vector<call_site>& out) {
  const TSQuery* query = context::calls_query(lang);
  if (query == nullptr) return;
  context::document doc(path, lang, text);
  const TSTree* tree = doc.tree();
  if (tree == nullptr) return;
  context::symbol_options only_imports;
  only_imports.definitions = false;
  std::vector<std::string> modules;
  const std::vector<context::import_entry> imports = context::extract_symbols(lang, text, tree, only_imports).imports;
  for (const context::import_entry& imp : imports) {
    modules.push_back(imp.module);
    if (!imp.name.empty()) modules.push_back(imp.module + "/" + imp.name);
  }
  const context::import_table table(index, path, lang, imports);
  const auto imported = [&](const std::string& def_path) {
    return std::any_of(modules.begin(), modules.end(),
                       [&](const std::string& m) { return context::module_match(def_path, m) > 0; });
  };
  const auto contains = [](const std::vector<std::string>* files, const std::string& f) {
    return files != nullptr && std::find(files->begin(), files->end(), f) != files->end();
  };
  // Whether the call really names the definition in `def_path` (see above).
  const auto refers_to = [&](const std::string& name, const std::string& receiver, const std::string& def_path) {
    if (!has_name_imports(lang)) return imported(def_path);
    if (receiver.empty()) {
      const context::import_table::bound_name* bound = table.name(name);
      return (bound != nullptr && contains(&bound->files, def_path)) || contains(table.module(name), def_path);
    }
    if (const std::vector<std::string>* files = table.module(receiver)) return contains(files, def_path);
    return !is_builtin_method(lang, name) && imported(def_path);
  };
  uint32_t name_capture = 0;
  for (uint32_t id = 0; id < ts_query_capture_count(query); ++id) {
    uint32_t length = 0;
    if (std::string_view(ts_query_capture_name_for_id(query, id, &length), length) == "call.name") name_capture = id;
  }
  TSQueryCursor* cursor = ts_query_cursor_new();
  ts_query_cursor_exec(cursor, query, ts_tree_root_node(tree));
  TSQueryMatch match;
  std::size_t last_line = std::string::npos;
  while (ts_query_cursor_next_match(cursor, &match)) {
    for (uint16_t i = 0; i < match.capture_count; ++i) {
      if (match.captures[i].index != name_capture) continue;
      const TSNode node = match.captures[i].node;
      const std::string name = text.substr(ts_node_start_byte(node), ts_node_end_byte(node) - ts_node_start_byte(node));
      const std::size_t line_start = context::line_start_at(text, ts_node_start_byte(node));
      if (line_start == last_line || name.starts_with("__") || index.count(name) != 1) continue;
      const std::vector<context::indexed_definition> defs = index.lookup(name, 1);
      if (defs.empty() || defs[0].path == path ||
          (defs[0].def.kind != context::def_kind::function && defs[0].def.kind != context::def_kind::method) ||
          !refers_to(name, receiver_of(node, text), defs[0].path)) {
        continue;
      }
      last_line = line_start;
      // The header as a prompt shows it: signatures stop before the body, so without an opening brace.
      std::string_view header = defs[0].def.first_line;
      if (header.ends_with("{")) header = context::trim_right(header.substr(0, header.size() - 1));
      out.push_back({path, lang, line_start, context::line_end_at(text, line_start), name, std::string(header)});
    }
  }
  ts_query_cursor_delete(cursor);
}

}  // namespace

int run_bench_context(args_view args) {
  std::string workspace, model_dir, tokenizer_file;
  int samples = 200, seed = 1, show_misses = 0;
  bool as_json = false;
  arg_parser parser("bench context --workspace DIR [--samples N] [--model DIR] [--json]",
                    "Definition recall of the prompt builder on real code: sampled call sites of functions defined\n"
                    "in another file of the workspace have their line hidden; is the callee's definition in the\n"
                    "prompt at 1,024 and 2,048 tokens? Also the build time per prompt (p50, p95).");
  parser.option("workspace", "DIR", "the project to measure on", &workspace);
  parser.option("samples", "N", "call sites to sample", &samples);
  parser.option("seed", "N", "sampling seed", &seed);
  parser.option("model", "DIR", "model folder with the tokenizer (default: the Hugging Face cache)", &model_dir);
  parser.option("tokenizer", "FILE", "a tokenizer.json instead of --model", &tokenizer_file);
  parser.option("show-misses", "N", "print up to N missed call sites to stderr (file:line callee)", &show_misses);
  parser.flag("json", "print one JSON object", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (workspace.empty() || samples < 1) {
    fmt::print(stderr, "qcoder: --workspace is required and --samples must be positive\n");
    return exit_usage;
  }
  std::error_code ec;
  const fs::path root = fs::canonical(workspace, ec);
  if (ec) return report_failure(fail(errc::not_found, "--workspace {}: {}", workspace, ec.message()));
  result<engine::tokenizer> tok = load_cli_tokenizer(tokenizer_file, model_dir);
  if (!tok) return report_failure(tok.err());

  context::workspace_index index;
  index.start(root);
  index.wait();
  const context::index_stats stats = index.stats();

  std::vector<call_site> sites;
  std::map<std::string, std::string> texts;
  for (const std::string& path : index.paths()) {
    const std::optional<context::language> lang = context::language_from_path(path);
    if (!lang) continue;
    std::string text = read_all(root / path);
    const std::size_t before = sites.size();
    find_call_sites(index, path, *lang, text, sites);
    if (sites.size() > before) texts.emplace(path, std::move(text));
  }
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::shuffle(sites.begin(), sites.end(), rng);
  if (sites.size() > static_cast<std::size_t>(samples)) sites.resize(static_cast<std::size_t>(samples));
  if (sites.empty()) return report_failure(fail(errc::not_found, "{}: no call sites of functions defined in another file", workspace));

  const std::vector<std::size_t> budgets{1024, 2048};
  struct tally {
    std::size_t hits = 0, total = 0;
    std::vector<double> ms;
  };
  std::map<std::pair<std::size_t, std::string>, tally> by_language;  // (budget, language)
  std::map<std::size_t, tally> overall;
  std::vector<context::prompt_builder> builders;
  for (std::size_t b : budgets) {
    context::prompt_options options;
    options.budget_tokens = b;
    options.repo_name = root.filename().string();
    result<context::prompt_builder> builder = context::prompt_builder::create(*tok, options);
    if (!builder) return report_failure(builder.err());
    builders.push_back(std::move(*builder));
  }
  for (const call_site& site : sites) {
    const std::string& original = texts[site.path];
    const std::string_view line(original.data() + site.line_start, site.line_end - site.line_start);
    const std::size_t indent = context::leading_space(line).size();
    const std::string hidden = original.substr(0, site.line_start + indent) + original.substr(site.line_end);
    context::document doc(site.path, site.lang, hidden);
    const context::source_view view = doc.view();
    // As in the editor, the index holds the file as it is being edited: without the hidden line (so the
    // reference counts cannot see the call either). The original goes back after this sample.
    index.update_file(site.path, hidden, view.tree);
    for (std::size_t k = 0; k < budgets.size(); ++k) {
      const auto start = std::chrono::steady_clock::now();
      result<context::prompt> prompt = builders[k].build({view, site.line_start + indent, &index, nullptr});
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      bool hit = false;
      if (prompt) {
        for (const context::prompt_block& block : prompt->blocks) {
          const bool context_block = block.kind == context::block_kind::imports || block.kind == context::block_kind::used ||
                                     block.kind == context::block_kind::snippet;
          if (context_block && block.text.find(site.callee_first_line) != std::string::npos) hit = true;
        }
      }
      if (!hit && k + 1 == budgets.size() && show_misses > 0) {
        --show_misses;
        fmt::print(stderr, "miss {}:{} {} -> {}\n", site.path, std::count(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(site.line_start), '\n') + 1,
                   site.callee, site.callee_first_line);
      }
      for (tally* t : {&overall[budgets[k]], &by_language[{budgets[k], std::string(context::info(site.lang).name)}]}) {
        t->hits += hit;
        t->total += 1;
        t->ms.push_back(ms);
      }
    }
    index.update_file(site.path, original);
  }

  if (as_json) {
    nlohmann::json out = {{"workspace", root.string()},
                          {"files", stats.files},
                          {"definitions", stats.definitions},
                          {"index_seconds", stats.build_seconds},
                          {"samples", sites.size()}};
    for (std::size_t b : budgets) {
      const tally& t = overall[b];
      nlohmann::json per_language = nlohmann::json::object();
      for (const auto& [key, lt] : by_language) {
        if (key.first == b) per_language[key.second] = {{"recall", static_cast<double>(lt.hits) / static_cast<double>(lt.total)}, {"samples", lt.total}};
      }
      out["budgets"][std::to_string(b)] = {{"recall", static_cast<double>(t.hits) / static_cast<double>(t.total)},
                                           {"build_ms_p50", percentile(t.ms, 0.5)},
                                           {"build_ms_p95", percentile(t.ms, 0.95)},
                                           {"languages", per_language}};
    }
    fmt::print("{}\n", out.dump());
    return exit_ok;
  }
  fmt::print("workspace   {}\n", root.string());
  fmt::print("index       {} files, {} definitions, {:.1f} MB, {:.2f} s\n", stats.files, stats.definitions,
             static_cast<double>(stats.bytes) / 1e6, stats.build_seconds);
  fmt::print("samples     {} call sites (callee defined once, in another file)\n\n", sites.size());
  fmt::print("{:<8} {:<12} {:>8} {:>9} {:>12} {:>12}\n", "budget", "language", "samples", "recall", "build p50", "build p95");
  for (std::size_t b : budgets) {
    for (const auto& [key, t] : by_language) {
      if (key.first != b) continue;
      fmt::print("{:<8} {:<12} {:>8} {:>8.1f}% {:>9.2f} ms {:>9.2f} ms\n", b, key.second, t.total,
                 100.0 * static_cast<double>(t.hits) / static_cast<double>(t.total), percentile(t.ms, 0.5),
                 percentile(t.ms, 0.95));
    }
    const tally& t = overall[b];
    fmt::print("{:<8} {:<12} {:>8} {:>8.1f}% {:>9.2f} ms {:>9.2f} ms\n", b, "all", t.total,
               100.0 * static_cast<double>(t.hits) / static_cast<double>(t.total), percentile(t.ms, 0.5),
               percentile(t.ms, 0.95));
  }
  return exit_ok;
}

}  // namespace qcoder::cli
