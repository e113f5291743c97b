// The tree-sitter queries we run, one set per language, embedded here (the grammars' own .scm files live
// in third_party/, which is not available at run time).
//
// symbols_query captures, per match, either a definition or an import:
//   @def.function / @def.method / @def.class / @def.type / @def.constant  the definition's node, with
//   @name                                                                  its name;
//   @import.module  the module or path text   @import.name  a name imported from it
//   @import.alias   the local name of a module (import x as y, import * as y, a Go package, a default import)
//   @import.require a CommonJS `require` callee (the match counts only when its text is "require")
// calls_query captures @call (a call expression) and @call.name (the called function's or method's name).
//
// Thread-safety: the queries are compiled once, on first use (std::call_once), and are immutable after;
// any thread may run them with its own TSQueryCursor.
#pragma once

#include <string_view>

#include "context/languages.h"

struct TSQuery;

namespace qcoder::context {

// Null only when the embedded text does not compile (a bug; the query test compiles every language).
const TSQuery* symbols_query(language lang);
const TSQuery* calls_query(language lang);

// The query texts, for the test that compiles them and names the offending position when one does not.
std::string_view symbols_query_text(language lang);
std::string_view calls_query_text(language lang);

}  // namespace qcoder::context
