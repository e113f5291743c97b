// Parsing of ignore files and wildmatch-style globbing.
#include "context/gitignore.h"

namespace qcoder::context {
namespace {

// Matches one bracket expression at p[0] == '[' against c; sets *length to the expression's size. A '['
// without its ']' is a literal '[' (length 1).
bool match_class(std::string_view p, char c, std::size_t* length) {
  std::size_t i = 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) negate = true, ++i;
  bool matched = false;
  bool first = true;
  while (i < p.size() && (p[i] != ']' || first)) {
    first = false;
    char lo = p[i];
    if (lo == '\\' && i + 1 < p.size()) lo = p[++i];
    char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = p[i + 2];
      if (hi == '\\' && i + 3 < p.size()) hi = p[++i + 2];
      i += 2;
    }
    if (lo <= c && c <= hi) matched = true;
    ++i;
  }
  if (i >= p.size()) {  // unterminated: a literal '['
    *length = 1;
    return c == '[';
  }
  *length = i + 1;
  return matched != negate;
}

}  // namespace

bool glob_match(std::string_view p, std::string_view s) {
  while (!p.empty()) {
    if (p.substr(0, 2) == "**") {
      if (p.size() == 2) return true;  // trailing "**": everything below
      if (p[2] == '/') {
        // "**/": zero or more whole folders.
        const std::string_view rest = p.substr(3);
        if (glob_match(rest, s)) return true;
        for (std::size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '/' && glob_match(rest, s.substr(i + 1))) return true;
        }
        return false;
      }
      p.remove_prefix(1);  // "**x" elsewhere acts like "*x"
      continue;
    }
    const char c = p[0];
    if (c == '*') {
      const std::string_view rest = p.substr(1);
      for (std::size_t i = 0; i <= s.size(); ++i) {
        if (glob_match(rest, s.substr(i))) return true;
        if (i < s.size() && s[i] == '/') break;
      }
      return false;
    }
    if (s.empty()) return false;
    if (c == '?') {
      if (s[0] == '/') return false;
      p.remove_prefix(1);
    } else if (c == '[') {
      std::size_t length = 1;
      if (s[0] == '/' || !match_class(p, s[0], &length)) return false;
      p.remove_prefix(length);
    } else {
      char literal = c;
      if (c == '\\' && p.size() > 1) {
        literal = p[1];
        p.remove_prefix(1);
      }
      if (s[0] != literal) return false;
      p.remove_prefix(1);
    }
    s.remove_prefix(1);
  }
  return s.empty();
}

void gitignore::add(std::string_view dir, std::string_view content) {
  std::string base(dir);
  if (!base.empty() && base.back() != '/') base.push_back('/');
  std::size_t pos = 0;
  while (pos <= content.size()) {
    std::size_t eol = content.find('\n', pos);
    if (eol == std::string_view::npos) eol = content.size();
    std::string_view line = content.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Trailing spaces go unless the last one is escaped.
    while (!line.empty() && line.back() == ' ' && !(line.size() >= 2 && line[line.size() - 2] == '\\')) {
      line.remove_suffix(1);
    }
    if (line.empty() || line[0] == '#') continue;
    rule r;
    r.base = base;
    if (line[0] == '!') {
      r.negate = true;
      line.remove_prefix(1);
    } else if (line.size() >= 2 && line[0] == '\\' && (line[1] == '!' || line[1] == '#')) {
      line.remove_prefix(1);
    }
    if (!line.empty() && line.back() == '/') {
      r.dir_only = true;
      line.remove_suffix(1);
    }
    if (line.empty()) continue;
    r.anchored = line.find('/') != std::string_view::npos;
    if (line[0] == '/') line.remove_prefix(1);
    r.pattern = std::string(line);
    rules_.push_back(std::move(r));
  }
}

bool gitignore::ignored(std::string_view path, bool is_dir) const {
  const std::size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    const rule& r = *it;
    if (r.dir_only && !is_dir) continue;
    if (path.substr(0, r.base.size()) != r.base) continue;
    const bool hit = r.anchored ? glob_match(r.pattern, path.substr(r.base.size())) : glob_match(r.pattern, name);
    if (hit) return !r.negate;
  }
  return false;
}

}  // namespace qcoder::context
