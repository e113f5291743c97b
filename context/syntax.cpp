// Cursor analysis over tree-sitter trees, with line-based fallbacks.
#include "context/syntax.h"

#include <algorithm>
#include <array>
#include <string_view>

#include <tree_sitter/api.h>

#include "context/text_lines.h"

namespace qcoder::context {
namespace {

using sv = std::string_view;

bool is_scope_type(sv type) {
  static constexpr std::array<sv, 15> parts{"function", "method", "class", "impl", "trait", "interface", "struct",
                                            "namespace", "mod_item", "constructor", "enum", "record", "arrow",
                                            "func_literal", "lambda"};
  return std::any_of(parts.begin(), parts.end(), [&](sv p) { return type.find(p) != sv::npos; });
}

// Whether only blanks separate `offset` from the start of its line.
bool starts_line(sv text, std::size_t offset) {
  for (std::size_t i = line_start_at(text, offset); i < offset; ++i) {
    if (text[i] != ' ' && text[i] != '\t') return false;
  }
  return true;
}

// Whether only blanks follow `offset` up to the end of its line.
bool ends_line(sv text, std::size_t offset) { return is_blank(text.substr(offset, line_end_at(text, offset) - offset)); }

std::size_t after_line(sv text, std::size_t offset) {
  const std::size_t eol = line_end_at(text, offset);
  return eol < text.size() ? eol + 1 : eol;
}

void add_line_fallbacks(sv text, std::size_t cursor, std::size_t window, cursor_syntax& out) {
  const std::size_t from = cursor > window ? cursor - window : 0;
  for (std::size_t p = line_start_at(text, from); p < line_start_at(text, cursor);) {
    out.prefix_starts.push_back(p);
    p = after_line(text, p);
  }
  for (std::size_t p = after_line(text, cursor); p < text.size() && p < cursor + window;) {
    p = after_line(text, p);
    out.suffix_ends.push_back(p);
  }
}

}  // namespace

cursor_syntax analyze_cursor(const source_view& src, std::size_t cursor, std::size_t window) {
  const sv text = src.text;
  cursor = std::min(cursor, text.size());
  cursor_syntax out;
  const std::size_t cursor_line = line_start_at(text, cursor);
  out.prefix_starts.push_back(cursor_line);
  out.suffix_ends.push_back(after_line(text, cursor));
  if (src.tree == nullptr) {
    add_line_fallbacks(text, cursor, window, out);
  } else {
    const TSNode root = ts_tree_root_node(src.tree);
    // What the cursor is inside of: the innermost node spanning it.
    for (TSNode n = ts_node_descendant_for_byte_range(root, static_cast<uint32_t>(cursor), static_cast<uint32_t>(cursor));
         !ts_node_is_null(n); n = ts_node_parent(n)) {
      const sv type = ts_node_type(n);
      const std::size_t start = ts_node_start_byte(n), end = ts_node_end_byte(n);
      if (ts_node_is_error(n) || ts_node_is_missing(n)) out.near_error = true;
      if (type.find("substitution") != sv::npos || type == "interpolation") break;  // code inside a string
      if (type.find("comment") != sv::npos && start < cursor && cursor <= end) out.in_comment = true;
      if (type.find("string") != sv::npos && type.find("content") == sv::npos && start < cursor && cursor < end) {
        out.in_string = true;
      }
    }

    // The statement chain: ancestors of the last non-blank byte before the cursor.
    std::size_t anchor = cursor;
    while (anchor > 0 && is_blank_char(text[anchor - 1])) --anchor;
    anchor = anchor > 0 ? anchor - 1 : 0;
    std::vector<TSNode> chain;
    for (TSNode n = ts_node_descendant_for_byte_range(root, static_cast<uint32_t>(anchor), static_cast<uint32_t>(anchor + 1));
         !ts_node_is_null(n); n = ts_node_parent(n)) {
      chain.push_back(n);
      if (ts_node_is_error(n)) out.near_error = true;
    }

    const std::size_t low = cursor > window ? cursor - window : 0;
    const std::size_t high = cursor + window;
    const std::size_t cursor_line_end = out.suffix_ends.front();
    for (const TSNode& parent : chain) {
      TSTreeCursor walker = ts_tree_cursor_new(parent);
      if (ts_tree_cursor_goto_first_child_for_byte(&walker, static_cast<uint32_t>(low)) >= 0) {
        do {
          const TSNode child = ts_tree_cursor_current_node(&walker);
          if (!ts_node_is_named(child)) continue;
          const std::size_t start = ts_node_start_byte(child), end = ts_node_end_byte(child);
          if (start > high) break;
          if (start < cursor && start >= low && starts_line(text, start)) {
            const std::size_t line = line_start_at(text, start);
            if (line < cursor_line) out.prefix_starts.push_back(line);
          }
          if (end > cursor && end <= high && ends_line(text, end)) {
            const std::size_t stop = after_line(text, end);
            if (stop > cursor_line_end) out.suffix_ends.push_back(stop);
          }
        } while (ts_tree_cursor_goto_next_sibling(&walker));
      }
      ts_tree_cursor_delete(&walker);
    }

    // Enclosing definitions. Python's scope is its indentation: a blank line after a body still belongs
    // to it when the cursor is indented deeper than the header.
    const sv line_before = text.substr(cursor_line, cursor - cursor_line);
    const std::size_t cursor_indent =
        is_blank(line_before) ? line_before.size() : leading_space(text.substr(cursor_line)).size();
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const TSNode n = *it;
      if (!is_scope_type(ts_node_type(n))) continue;
      const TSNode body = ts_node_child_by_field_name(n, "body", 4);
      if (ts_node_is_null(body)) continue;
      const std::size_t start = ts_node_start_byte(n), end = ts_node_end_byte(n);
      const std::size_t header = line_start_at(text, start);
      const std::size_t header_indent = leading_space(text.substr(header)).size();
      const bool inside = start < cursor && (end > cursor || (src.lang == language::python && header_indent < cursor_indent &&
                                                               header < cursor_line));
      if (!inside) continue;
      scope_header s;
      s.start = header;
      s.text = std::string(trim_right(text.substr(header, line_end_at(text, header) - header)));
      const TSNode first = ts_node_named_child(body, 0);
      if (!ts_node_is_null(first) && line_start_at(text, ts_node_start_byte(first)) > header) {
        s.body_indent = std::string(leading_space(text.substr(line_start_at(text, ts_node_start_byte(first)))));
      }
      out.scopes.push_back(std::move(s));
    }
  }
  std::sort(out.prefix_starts.begin(), out.prefix_starts.end());
  out.prefix_starts.erase(std::unique(out.prefix_starts.begin(), out.prefix_starts.end()), out.prefix_starts.end());
  std::sort(out.suffix_ends.begin(), out.suffix_ends.end());
  out.suffix_ends.erase(std::unique(out.suffix_ends.begin(), out.suffix_ends.end()), out.suffix_ends.end());
  return out;
}

}  // namespace qcoder::context
