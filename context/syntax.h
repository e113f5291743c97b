// What the parse tree says about a cursor: where the prompt's prefix may start and its suffix may end
// without cutting a statement in half, which definitions enclose the cursor, whether it sits in a string
// or a comment. (The names the code uses are related_code's business.)
// Every function degrades to line-based answers when the source has no tree (plain text, or a file too
// large to parse).
//
// Thread-safety: free functions over caller-owned data; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "context/document.h"

namespace qcoder::context {

struct scope_header {
  std::size_t start = 0;   // byte offset of the header line
  std::string text;        // the header's first line, as in the file (indentation kept), no newline
  std::string body_indent;  // the indentation of the body's first line ("" when unknown)
};

struct cursor_syntax {
  // Line starts (ascending, all <= the cursor's line start) where a prefix may begin: the starts of
  // statements and definitions around the cursor. Always holds the cursor's own line start.
  std::vector<std::size_t> prefix_starts;
  // Offsets (ascending, all >= the end of the cursor's line) just past a line where a statement or
  // definition around the cursor ends. Always holds the end of the cursor's line.
  std::vector<std::size_t> suffix_ends;
  std::vector<scope_header> scopes;  // enclosing definitions, outermost first
  bool in_string = false;
  bool in_comment = false;
  bool near_error = false;  // an ERROR or MISSING node holds the cursor
};

// `window` bounds how far (in bytes) from the cursor boundaries are looked for.
cursor_syntax analyze_cursor(const source_view& src, std::size_t cursor, std::size_t window = 64 * 1024);

}  // namespace qcoder::context
