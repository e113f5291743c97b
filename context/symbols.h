// What a file defines and imports, read from its tree with the language's symbols query, and the short
// texts that stand for a definition in a prompt (its signature, and a snippet capped in lines).
//
// Thread-safety: free functions over caller-owned data; safe to call from any thread (the queries are
// shared immutable objects, each call uses its own cursor).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "context/languages.h"

struct TSTree;

namespace qcoder::context {

// Ordered from most to least specific: when one name node matches several patterns, the smallest wins.
enum class def_kind : std::uint8_t { method, function, class_, type, constant };
std::string_view to_string(def_kind kind);

struct definition {
  std::string name;
  def_kind kind = def_kind::function;
  std::uint32_t line = 0;      // 0-based line of the definition's first byte
  std::uint32_t end_line = 0;  // 0-based line of its last byte
  // The first line of the definition, trimmed: what a test (or the recall bench) looks for in a prompt.
  std::string first_line;
  // The header: from the definition's start to its body (the whole of it when it has no body), at most a
  // few lines, dedented. For a method, the enclosing class's first line comes first.
  std::string signature;
  // Signature plus the start of the body, at most snippet_lines lines, dedented, with an elision line when
  // cut. A class shows its members' first lines instead of their bodies. Empty when not kept (see options).
  std::string snippet;
};

struct import_entry {
  std::string module;  // as written: "os.path", "./util", "a/b/mod", "crate::a"; empty when the form has none
  std::string name;    // a name imported from the module; empty for a whole-module import
  std::string alias;   // the local name of a whole-module import, or of a renamed name
  std::uint32_t line = 0;
};

struct file_symbols {
  std::vector<definition> definitions;  // in source order
  std::vector<import_entry> imports;    // in source order
  std::size_t bytes() const;            // memory held by the strings (for the index's budget)
};

struct symbol_options {
  std::uint32_t snippet_lines = 14;    // 0: keep signatures only
  std::uint32_t signature_lines = 4;
  bool definitions = true;             // false: imports only (cheaper, for the file being edited)
};

// `tree` must be the parse of `text` in `lang`.
file_symbols extract_symbols(language lang, std::string_view text, const TSTree* tree,
                             const symbol_options& options = {});

// How well a definition's file matches the module an import names: the number of trailing segments
// they share ("a.b" and "src/a/b.py" share 2; "./util" matches "lib/util.ts"; Go's "x/y" matches the
// folder "x/y"; "crate", "self" and "super" are skipped). 0: no match.
std::size_t module_match(std::string_view def_path, std::string_view module);
// A module's segments: "os.path" -> {os, path}, "../a/b" -> {a, b}, "crate::x" -> {x}.
std::vector<std::string> module_segments(std::string_view module);

// The line comment opener of a language ("#" or "//"), for elision lines such as "# ...".
std::string_view line_comment(language lang);

}  // namespace qcoder::context
