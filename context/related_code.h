// Which definitions in the workspace the code around the cursor refers to, resolved the way the
// language does it, and ranked for the prompt.
//
// Two steps:
//  - import_table: a file's imports resolved to indexed files. Python `from a.b import c` / `import a.b
//    as m` / relative `from ..x import y`; JS/TS `import {x} from './y'`, `import * as ns`, default imports
//    and `require`; C/C++ `#include "..."` (next to the file first); Rust `use`, Go packages, Java imports
//    through the index's module table. Relative forms are resolved against the file's folder, never by a
//    bare stem (which would find every util.py of a large workspace).
//  - find_related: the names used in the cursor's enclosing function and the lines before the cursor
//    (calls, `obj.member` and `self.x()`, constructors, type names), each resolved in that order: a name
//    imported into the file, a member of an imported module, a method of the enclosing class's base
//    classes, a definition of an imported file (C includes), a file in the same folder, a name defined
//    once in the workspace. When the cursor is in a method whose class derives from a class defined in
//    another file, that class's outline (its members' first lines) is added too: it holds the `self.x()`
//    about to be typed. So are the most used definitions of each module the code around the cursor
//    uses (`os.path.exists` next to `os.path.join`), ranked below everything actually used.
// Results are ranked: nearer uses, calls and imported names first; ties by path and line, so the same
// code gives the same list.
//
// Thread-safety: free functions over caller-owned data and the (thread-safe) index; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "context/document.h"
#include "context/symbols.h"
#include "context/workspace_index.h"

namespace qcoder::context {

// The indexed files an import names, seen from `from_path` (relative to the index root). Empty when none.
std::vector<std::string> resolve_module(const workspace_index& index, std::string_view from_path, language lang,
                                        std::string_view module);

class import_table {
 public:
  import_table() = default;
  // Resolves every import of the file at `path`.
  import_table(const workspace_index& index, std::string_view path, language lang,
               const std::vector<import_entry>& imports);

  struct bound_name {
    std::string original;            // the name in the module it comes from (differs when renamed)
    std::vector<std::string> files;  // the module's files
  };
  // A name imported by name (`from m import f`, `import {f as g}`: "g" -> f in m), or null.
  const bound_name* name(std::string_view local) const;
  // The files a module's local name stands for (`import a.b as m`: "m"; `import os.path`: "os.path" and
  // "os"), or null.
  const std::vector<std::string>* module(std::string_view local) const;
  // Every file some import resolved to, in import order, without repeats.
  const std::vector<std::string>& files() const { return files_; }
  bool empty() const { return files_.empty(); }

 private:
  std::unordered_map<std::string, bound_name> names_;
  std::unordered_map<std::string, std::vector<std::string>> modules_;
  std::vector<std::string> files_;
};

enum class relation : std::uint8_t {
  imported,    // a name imported into the file, or a member of an imported module
  base_class,  // a member of (or the outline of) a base class of the enclosing class
  included,    // defined in a file the imports name (C/C++ includes, Go packages)
  local,       // defined in the file itself
  nearby,      // defined in a file of the same folder
  global,      // defined once (or nearly) in the workspace
};
std::string_view to_string(relation r);

struct related_definition {
  indexed_definition def;
  relation why = relation::global;
  double score = 0;   // higher first
  std::size_t uses = 0;  // uses in the searched region (0: predicted, not used)
  bool outline = false;  // a base class shown as its members' first lines (def.snippet == def.signature)
  bool brief = false;    // predicted from a module used nearby: worth its first line only
};


struct related_options {
  std::size_t lines_before = 60;      // searched before the cursor, or the enclosing function if longer...
  std::size_t max_lines_before = 200;  // ... up to this many lines
  std::size_t lines_after = 10;
  std::size_t max_results = 48;
  std::size_t module_outline = 12;  // per module used near the cursor: its most used other definitions
  std::size_t max_candidates = 8;  // a name with more definitions than this (and none preferred) is skipped
};

// The definitions the code around `cursor` refers to (see the file comment), best first. `imports` are
// the file's resolved imports. The file's own definitions come back as relation::local; the caller
// decides whether they are already in view.
std::vector<related_definition> find_related(const source_view& src, std::size_t cursor, const workspace_index& index,
                                             const import_table& imports, const related_options& options = {});

}  // namespace qcoder::context
