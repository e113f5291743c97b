// Prompt assembly: budget split, syntactic cuts, definition selection, snippets, encoding.
#include "context/prompt_builder.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <unordered_map>

#include "context/related_code.h"
#include "context/symbols.h"
#include "context/syntax.h"
#include "context/text_lines.h"

namespace qcoder::context {
namespace {

using sv = std::string_view;

constexpr sv repo_name_token = "<|repo_name|>";
constexpr sv file_sep_token = "<|file_sep|>";
constexpr sv fim_prefix_token = "<|fim_prefix|>";
constexpr sv fim_suffix_token = "<|fim_suffix|>";
constexpr sv fim_middle_token = "<|fim_middle|>";
constexpr sv im_start_token = "<|im_start|>";
constexpr sv im_end_token = "<|im_end|>";
constexpr sv chat_system =
    "You are a code completion engine. Reply with only the code that belongs at the cursor, between the prefix "
    "and the suffix of the last file.";

std::size_t after_line(sv text, std::size_t offset) {
  const std::size_t eol = line_end_at(text, offset);
  return eol < text.size() ? eol + 1 : eol;
}

std::size_t count_newlines(sv text, std::size_t end) {
  return static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(end, text.size())), '\n'));
}

struct chosen_def {
  indexed_definition def;
  bool full = false;   // snippet rather than signature
  std::string brief;  // when set, shown instead: the first line alone (an outline entry)
  const std::string& text() const {
    if (!brief.empty()) return brief;
    return full && !def.def.snippet.empty() ? def.def.snippet : def.def.signature;
  }
};

// An outline entry: the definition's first line, without a block opener ("def f(a, b):", "function f(x)").
std::string outline_line(const definition& d) {
  std::string_view line = d.first_line;
  if (line.ends_with("{")) line = trim_right(line.substr(0, line.size() - 1));
  return std::string(line) + "\n";
}

// The file's words, counted, and its `object.member` (or `object::member`) pairs whose object is a plain
// word: one lexical pass, far cheaper than walking a large tree twice, for the imports block's scores
// (a word in a string or a comment counts too, which only nudges a score).
struct word_scan {
  std::unordered_map<std::string_view, int> counts;
  std::vector<std::pair<std::string_view, std::string_view>> members;
};
word_scan scan_words(sv text) {
  word_scan out;
  const std::size_t n = text.size();
  const auto separator_before = [&](std::size_t at) {
    while (at > 0 && (text[at - 1] == ' ' || text[at - 1] == '\t')) --at;
    return at > 0 && (text[at - 1] == '.' || (at > 1 && text[at - 1] == ':' && text[at - 2] == ':'));
  };
  for (std::size_t i = 0; i < n;) {
    if (!is_identifier_char(text[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < n && is_identifier_char(text[i])) ++i;
    if (text[start] >= '0' && text[start] <= '9') continue;
    const sv word = text.substr(start, i - start);
    ++out.counts[word];
    std::size_t j = i;
    while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
    if (j < n && text[j] == '.' && (j + 1 >= n || text[j + 1] != '.')) {
      ++j;
    } else if (j + 1 < n && text[j] == ':' && text[j + 1] == ':') {
      j += 2;
    } else {
      continue;
    }
    while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
    std::size_t k = j;
    while (k < n && is_identifier_char(text[k])) ++k;
    if (k > j && !(text[j] >= '0' && text[j] <= '9') && !separator_before(start)) {
      out.members.emplace_back(word, text.substr(j, k - j));
    }
  }
  return out;
}

// One block per file, files in path order, definitions in line order: the text depends only on the set.
std::vector<std::pair<std::string, std::string>> group_by_file(std::vector<chosen_def> defs) {
  std::sort(defs.begin(), defs.end(), [](const chosen_def& a, const chosen_def& b) {
    return a.def.path != b.def.path ? a.def.path < b.def.path : a.def.def.line < b.def.def.line;
  });
  std::vector<std::pair<std::string, std::string>> files;
  const chosen_def* previous = nullptr;
  for (const chosen_def& d : defs) {
    if (files.empty() || files.back().first != d.def.path) {
      files.emplace_back(d.def.path, std::string());
    } else if (previous->brief.empty() || d.brief.empty()) {
      files.back().second.push_back('\n');  // a blank line around a signature or snippet; outlines stay tight
    }
    files.back().second.append(d.text());
    previous = &d;
  }
  return files;
}

related_options related_options_of(const prompt_options& options) {
  related_options out;
  out.lines_before = options.near_lines_before;
  out.lines_after = options.near_lines_after;
  return out;
}

}  // namespace

std::string_view to_string(block_kind kind) {
  switch (kind) {
    case block_kind::chat_open: return "chat";
    case block_kind::repo: return "repo";
    case block_kind::imports: return "imports";
    case block_kind::used: return "used";
    case block_kind::snippet: return "snippet";
    case block_kind::file: return "file";
    case block_kind::scope: return "scope";
    case block_kind::prefix: return "prefix";
    case block_kind::suffix: return "suffix";
    case block_kind::middle: return "middle";
    case block_kind::chat_close: return "chat";
  }
  return "?";
}

prompt_builder::prompt_builder(const engine::tokenizer& tok, prompt_options options)
    : tok_(&tok), encoder_(tok, 1 << 12), options_(std::move(options)) {}

result<prompt_builder> prompt_builder::create(const engine::tokenizer& tok, prompt_options options) {
  for (sv token : {repo_name_token, file_sep_token, fim_prefix_token, fim_suffix_token, fim_middle_token}) {
    QCODER_CHECK(tok.require_token(token));
  }
  if (options.chat) {
    QCODER_CHECK(tok.require_token(im_start_token));
    QCODER_CHECK(tok.require_token(im_end_token));
  }
  if (options.budget_tokens < 32) return fail(errc::invalid_argument, "token budget {} is too small (at least 32)", options.budget_tokens);
  if (options.prefix_share <= 0 || options.suffix_share < 0 || options.imports_share < 0 ||
      options.prefix_share + options.suffix_share + options.imports_share > 1) {
    return fail(errc::invalid_argument, "budget shares must be positive and sum to at most 1 (prefix {}, suffix {}, imports {})",
                options.prefix_share, options.suffix_share, options.imports_share);
  }
  if (options.related_share < 0 || options.related_share > 0.5) {
    return fail(errc::invalid_argument, "related_share {} must be between 0 and 0.5", options.related_share);
  }
  return prompt_builder(tok, std::move(options));
}

std::size_t prompt_builder::count_tokens(std::string_view text) {
  if (text.empty()) return 0;
  std::vector<engine::token_id> ids;
  encoder_.encode(text, /*allow_special=*/false, ids);
  return ids.size();
}

prompt_block prompt_builder::make_block(block_kind kind, std::string name, const std::vector<piece>& pieces,
                                        std::vector<engine::token_id>* ids) {
  prompt_block block{kind, std::move(name), {}, 0};
  const std::size_t before = ids->size();
  for (const piece& p : pieces) {
    block.text.append(p.text);
    if (p.control) {
      ids->push_back(tok_->find_token(p.text).value_or(0));  // present: checked in create()
    } else if (!p.text.empty()) {
      encoder_.encode(p.text, /*allow_special=*/false, *ids);
    }
  }
  block.tokens = ids->size() - before;
  return block;
}

result<prompt> prompt_builder::build(const prompt_request& request) {
  const source_view& src = request.source;
  const sv text = src.text;
  if (request.cursor > text.size()) {
    return fail(errc::invalid_argument, "{}: cursor offset {} is past the end ({} bytes)", src.path, request.cursor,
                text.size());
  }
  const std::size_t cursor = request.cursor;
  const std::size_t budget = options_.budget_tokens;
  const std::string path(src.path);
  const cursor_syntax syntax = analyze_cursor(src, cursor);
  const auto share = [&](double s) { return static_cast<std::size_t>(static_cast<double>(budget) * s); };

  // Fixed pieces: their cost comes off the top.
  std::vector<piece> chat_open, chat_close;
  if (options_.chat) {
    chat_open = {{true, std::string(im_start_token)}, {false, "system\n" + std::string(chat_system)},
                 {true, std::string(im_end_token)}, {false, "\n"}, {true, std::string(im_start_token)}, {false, "user\n"}};
    chat_close = {{true, std::string(im_end_token)}, {false, "\n"}, {true, std::string(im_start_token)},
                  {false, "assistant\n"}};
  }
  const std::vector<piece> repo = {{true, std::string(repo_name_token)}, {false, options_.repo_name + "\n"}};
  const std::vector<piece> file_head = {{true, std::string(file_sep_token)}, {false, path + "\n"},
                                        {true, std::string(fim_prefix_token)}};
  std::size_t used_tokens = 2;  // <|fim_suffix|>, <|fim_middle|>
  {
    std::vector<engine::token_id> scratch;
    for (const std::vector<piece>* pieces : std::array<const std::vector<piece>*, 4>{&chat_open, &chat_close, &repo, &file_head}) {
      used_tokens += make_block(block_kind::repo, "", *pieces, &scratch).tokens;
      scratch.clear();
    }
  }
  if (used_tokens + 8 > budget) {
    return fail(errc::invalid_argument, "token budget {} does not cover the prompt's frame ({} tokens)", budget, used_tokens);
  }
  const auto header_cost = [&](const std::string& p) { return 2 + count_tokens(p); };

  // 1. Definitions of imported names: chosen from the file's imports and the index alone (not the cursor).
  //    Ranked: names imported by name, then `module.member` uses, then other names of the file that an
  //    imported module defines; what budget is left shows the imported modules' outlines (first lines,
  //    file order), so a call about to be typed can find its callee.
  std::vector<chosen_def> imported;
  std::set<std::pair<std::string, std::uint32_t>> taken;  // (path, line) of chosen definitions
  std::unordered_map<std::string, std::string> imported_from;  // imported name -> module (or its local name)
  import_table imports;
  if (request.index != nullptr && src.tree != nullptr && src.lang) {
    symbol_options only_imports;
    only_imports.definitions = false;
    const file_symbols own = extract_symbols(*src.lang, text, src.tree, only_imports);
    // Names the file defines itself are not imported, whatever else defines them too.

    std::map<std::string, double> score;  // name -> score (std::map: deterministic order)
    std::vector<std::string> module_files;  // files the imports name, in import order
    imports = import_table(*request.index, path, *src.lang, own.imports);
    for (const import_entry& imp : own.imports) {
      if (!imp.name.empty()) {
        imported_from.emplace(imp.name, imp.module);
        score[imp.name] += 3;
      }
    }
    // Names the file defines itself are not imported, whatever else defines them too (but the constant a
    // `const X = require(...)` defines is the import).
    std::set<std::string> own_names;
    if (const std::optional<file_symbols> indexed = request.index->file(path)) {
      for (const definition& d : indexed->definitions) {
        if (imports.module(d.name) == nullptr && imports.name(d.name) == nullptr) own_names.insert(d.name);
      }
    }
    // The files the imports resolve to (relative imports against this file's folder).
    for (const std::string& f : imports.files()) {
      if (f != path && module_files.size() < 16) module_files.push_back(f);
    }
    const word_scan words = scan_words(text.substr(0, std::min<std::size_t>(text.size(), 512u << 10)));
    std::map<std::string, int> file_uses;  // module file -> `module.member` uses in the file
    for (const auto& [object, member] : words.members) {
      const std::vector<std::string>* files_of = imports.module(object);
      if (files_of == nullptr) continue;
      imported_from.emplace(member, object);
      score[std::string(member)] += 2;
      for (const std::string& f : *files_of) ++file_uses[f];
    }
    // The modules the file uses most show their outlines first.
    std::stable_sort(module_files.begin(), module_files.end(),
                     [&](const std::string& a, const std::string& b) { return file_uses[a] > file_uses[b]; });
    // What the imported modules define, and the file's other uses of those names.
    std::unordered_map<std::string, indexed_definition> exported;
    std::vector<std::vector<indexed_definition>> outlines;  // per module file, in outline order
    for (const std::string& f : module_files) {
      const std::optional<file_symbols> symbols = request.index->file(f);
      if (!symbols) continue;
      for (const definition& d : symbols->definitions) {
        exported.emplace(d.name, indexed_definition{f, language_from_path(f).value_or(language::python), d});
      }
      outlines.push_back(request.index->outline(f, 200));
    }
    // Round robin over the modules, so one large module does not crowd out the others. (Giving the modules
    // the file uses more a larger share per round did worse: their used names are ranked above already.)
    std::vector<indexed_definition> outline;
    for (std::size_t k = 0, added = 1; added != 0; ++k) {
      added = 0;
      for (std::vector<indexed_definition>& o : outlines) {
        if (k < o.size()) outline.push_back(std::move(o[k])), ++added;
      }
    }
    for (const auto& [word, n] : words.counts) {
      if (const auto it = exported.find(std::string(word)); it != exported.end()) score[it->first] += 1 + 0.1 * std::min(n, 9);
    }
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto& [name, s] : score) ranked.emplace_back(-s, name);
    std::sort(ranked.begin(), ranked.end());
    const std::size_t cap = share(options_.imports_share);
    std::set<std::string> files;
    std::size_t spent = 0;
    const auto try_add = [&](indexed_definition def, bool brief) {
      if (taken.count({def.path, def.def.line})) return;
      chosen_def pick{std::move(def), false, {}};
      if (brief) pick.brief = outline_line(pick.def.def);
      std::size_t cost = count_tokens(pick.text()) + 1;
      if (!files.count(pick.def.path)) cost += header_cost(pick.def.path);
      if (spent + cost > cap) return;
      spent += cost;
      files.insert(pick.def.path);
      taken.emplace(pick.def.path, pick.def.def.line);
      imported.push_back(std::move(pick));
    };
    for (const auto& [negative, name] : ranked) {
      if (spent >= cap) break;
      if (own_names.count(name)) continue;
      if (const auto it = exported.find(name); it != exported.end()) {
        // Imported by name or used as module.member: the signature; only used elsewhere: the first line.
        try_add(it->second, /*brief=*/-negative < 2);
        continue;
      }
      // Not defined where the imports lead. A name imported by name may be re-exported some other way;
      // a module's member that the module does not define here (os.major is C) is nobody else's.
      if (imports.name(name) == nullptr) continue;
      std::vector<indexed_definition> found = request.index->lookup(name, 64);
      std::erase_if(found, [&](const indexed_definition& d) { return d.path == path; });
      if (found.empty()) continue;
      const std::string& module = imported_from[name];
      std::stable_sort(found.begin(), found.end(), [&](const auto& x, const auto& y) {
        return module_match(x.path, module) > module_match(y.path, module);
      });
      if (found.size() > 1 && module_match(found[0].path, module) == 0) continue;  // ambiguous
      try_add(std::move(found.front()), false);
    }
    for (indexed_definition& def : outline) {
      if (spent >= cap) break;
      if (!own_names.count(def.def.name)) try_add(std::move(def), /*brief=*/true);
    }
    used_tokens += spent;
  }

  // The definitions the code around the cursor refers to; they get a share of the budget before the
  // prefix reaches further back (what they leave goes back to the prefix in step 5).
  std::vector<related_definition> related;
  if (request.index != nullptr && src.tree != nullptr && src.lang) {
    related = find_related(src, cursor, *request.index, imports, related_options_of(options_));
    // What the imports block shows already, unless it is a base class's outline (the block has its header).
    std::erase_if(related, [&](const related_definition& r) { return !r.outline && taken.count({r.def.path, r.def.def.line}); });
  }

  // 2. Prefix and suffix, cut at statement boundaries within their shares.
  const std::size_t cursor_line = line_start_at(text, cursor);
  const auto cut_prefix = [&](std::size_t max_tokens, std::size_t* tokens) {
    std::size_t total = count_tokens(text.substr(cursor_line, cursor - cursor_line));
    if (total > max_tokens) {  // one enormous line: keep its tail, on a character boundary
      std::size_t start = cursor - std::min(cursor - cursor_line, max_tokens * 2);
      while (start < cursor && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
      *tokens = count_tokens(text.substr(start, cursor - start));
      return start;
    }
    std::map<std::size_t, std::size_t> cumulative{{cursor_line, total}};
    std::size_t p = cursor_line;
    while (p > 0) {
      const std::size_t previous = line_start_at(text, p - 1);
      const std::size_t t = count_tokens(text.substr(previous, p - previous));
      if (total + t > max_tokens) break;
      total += t;
      p = previous;
      cumulative[p] = total;
    }
    const auto boundary = std::lower_bound(syntax.prefix_starts.begin(), syntax.prefix_starts.end(), p);
    const std::size_t syntactic = boundary == syntax.prefix_starts.end() ? cursor_line : *boundary;
    // A statement boundary unless it would waste more than half of what fits.
    if (p > 0 && cumulative[syntactic] * 2 >= total) {
      *tokens = cumulative[syntactic];
      return syntactic;
    }
    *tokens = total;
    return p;
  };
  const std::size_t cursor_line_end = after_line(text, cursor);
  const auto cut_suffix = [&](std::size_t max_tokens, std::size_t* tokens) {
    std::size_t total = count_tokens(text.substr(cursor, cursor_line_end - cursor));
    if (total > max_tokens) {
      std::size_t end = cursor + std::min(cursor_line_end - cursor, max_tokens * 2);
      while (end > cursor && end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
      *tokens = count_tokens(text.substr(cursor, end - cursor));
      return end;
    }
    std::map<std::size_t, std::size_t> cumulative{{cursor_line_end, total}};
    std::size_t p = cursor_line_end;
    while (p < text.size()) {
      const std::size_t next = after_line(text, p);
      const std::size_t t = count_tokens(text.substr(p, next - p));
      if (total + t > max_tokens) break;
      total += t;
      p = next;
      cumulative[p] = total;
    }
    auto boundary = std::upper_bound(syntax.suffix_ends.begin(), syntax.suffix_ends.end(), p);
    const std::size_t syntactic = boundary == syntax.suffix_ends.begin() ? cursor_line_end : *std::prev(boundary);
    if (p < text.size() && cumulative.count(syntactic) && cumulative[syntactic] * 2 >= total) {
      *tokens = cumulative[syntactic];
      return syntactic;
    }
    *tokens = total;
    return p;
  };
  const std::size_t room = budget > used_tokens ? budget - used_tokens : 0;
  std::size_t suffix_tokens = 0;
  const std::size_t suffix_end = cut_suffix(std::min(share(options_.suffix_share), room / 3), &suffix_tokens);
  std::size_t prefix_tokens = 0;
  const std::size_t related_reserve = related.empty() ? 0 : std::min(share(options_.related_share), (room - suffix_tokens) / 2);
  std::size_t prefix_start =
      cut_prefix(std::min(share(options_.prefix_share), room - suffix_tokens - related_reserve), &prefix_tokens);

  // Enclosing definitions whose headers the prefix left out.
  const auto scope_text = [&](std::size_t start) {
    std::string out;
    std::vector<const scope_header*> outside;
    for (const scope_header& s : syntax.scopes) {
      if (s.start < start) outside.push_back(&s);
    }
    for (std::size_t i = 0; i < outside.size(); ++i) {
      const scope_header& s = *outside[i];
      out.append(s.text).push_back('\n');
      const std::size_t next = i + 1 < outside.size() ? outside[i + 1]->start : start;
      if (next > after_line(text, s.start)) {
        const std::string indent = s.body_indent.empty() ? std::string(leading_space(s.text)) + "    " : s.body_indent;
        out.append(indent).append(src.lang ? line_comment(*src.lang) : "#").append(" ...\n");
      }
    }
    return out;
  };
  std::string scope = scope_text(prefix_start);
  used_tokens += prefix_tokens + suffix_tokens + count_tokens(scope);

  // 3. Definitions of the names the code around the cursor uses, best first (related_code).
  std::vector<chosen_def> used;
  const std::size_t window_first_line = count_newlines(text, prefix_start);
  const std::size_t window_last_line = count_newlines(text, suffix_end);
  const std::vector<snippet> recent = request.recent != nullptr ? request.recent->items() : std::vector<snippet>{};
  {
    const std::size_t reserve = recent.empty() ? 0 : share(0.1);
    std::set<std::string> files;
    std::size_t full_picks = 0;
    for (const related_definition& r : related) {
      if (used_tokens + reserve >= budget) break;
      const indexed_definition& def = r.def;
      // The file's own definitions are only worth showing outside the text the prompt already holds.
      if (def.path == path && def.def.end_line >= window_first_line && def.def.line <= window_last_line) continue;
      if (!r.outline && taken.count({def.path, def.def.line})) continue;
      chosen_def pick{def, !r.brief && full_picks < options_.full_snippets, r.brief ? outline_line(def.def) : std::string()};
      std::size_t cost = count_tokens(pick.text()) + 1;
      if (!files.count(pick.def.path)) cost += header_cost(pick.def.path);
      if (used_tokens + reserve + cost > budget) {
        if (!pick.full || pick.def.def.snippet.empty()) continue;
        pick.full = false;  // the snippet does not fit: try the signature
        cost -= count_tokens(pick.def.def.snippet);
        cost += count_tokens(pick.def.def.signature);
        if (used_tokens + reserve + cost > budget) continue;
      }
      used_tokens += cost;
      files.insert(pick.def.path);
      taken.emplace(pick.def.path, pick.def.def.line);
      full_picks += pick.full;
      used.push_back(std::move(pick));
    }
  }

  // 4. Recent snippets, newest first while they fit; shown viewed before edited, oldest first.
  std::vector<const snippet*> shown;
  for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
    const std::size_t lines = static_cast<std::size_t>(std::count(it->text.begin(), it->text.end(), '\n'));
    if (it->path == path && it->line + lines >= window_first_line && it->line <= window_last_line) continue;
    const std::size_t cost = header_cost(it->path) + count_tokens(it->text) + 1;
    if (used_tokens + cost > budget) continue;
    used_tokens += cost;
    shown.push_back(&*it);
  }
  std::stable_sort(shown.begin(), shown.end(), [&](const snippet* a, const snippet* b) {
    if (a->source != b->source) return a->source == snippet_source::viewed;
    return a < b;  // same vector: address order is ring order
  });

  // 5. Whatever is left lets the prefix reach further back.
  if (used_tokens < budget && prefix_start > 0) {
    const std::size_t extra = budget - used_tokens;
    std::size_t longer_tokens = 0;
    const std::size_t longer = cut_prefix(prefix_tokens + extra, &longer_tokens);
    if (longer < prefix_start) {
      const std::string longer_scope = scope_text(longer);
      used_tokens = used_tokens - prefix_tokens - count_tokens(scope) + longer_tokens + count_tokens(longer_scope);
      prefix_start = longer;
      prefix_tokens = longer_tokens;
      scope = longer_scope;
    }
  }

  // Assemble and encode; per-line counts can differ a little from the whole, so trim the prefix to fit.
  for (;;) {
    prompt out;
    out.budget = budget;
    const auto add = [&](block_kind kind, std::string name, const std::vector<piece>& pieces) {
      out.blocks.push_back(make_block(kind, std::move(name), pieces, &out.ids));
    };
    if (options_.chat) add(block_kind::chat_open, "chat", chat_open);
    add(block_kind::repo, "repo", repo);
    for (auto& [file, body] : group_by_file(imported)) {
      add(block_kind::imports, "imports " + file, {{true, std::string(file_sep_token)}, {false, file + "\n" + body}});
    }
    for (auto& [file, body] : group_by_file(used)) {
      add(block_kind::used, "used " + file, {{true, std::string(file_sep_token)}, {false, file + "\n" + body}});
    }
    for (const snippet* s : shown) {
      std::string body = s->text;
      if (body.back() != '\n') body.push_back('\n');
      add(block_kind::snippet, std::string(s->source == snippet_source::viewed ? "viewed " : "edited ") + s->path,
          {{true, std::string(file_sep_token)}, {false, s->path + "\n" + body}});
    }
    add(block_kind::file, "file " + path, file_head);
    if (!scope.empty()) add(block_kind::scope, "scope", {{false, scope}});
    // The cursor's line up to the cursor, after <|fim_middle|> (see the header); a very long one stays.
    constexpr std::size_t max_middle_bytes = 4096;
    const std::size_t middle_start =
        !options_.chat && prefix_start <= cursor_line && cursor - cursor_line <= max_middle_bytes ? cursor_line : cursor;
    add(block_kind::prefix, "prefix", {{false, std::string(text.substr(prefix_start, middle_start - prefix_start))}});
    add(block_kind::suffix, "suffix",
        {{true, std::string(fim_suffix_token)}, {false, std::string(text.substr(cursor, suffix_end - cursor))},
         {true, std::string(fim_middle_token)}});
    if (middle_start < cursor) {
      add(block_kind::middle, "middle", {{false, std::string(text.substr(middle_start, cursor - middle_start))}});
    }
    if (options_.chat) add(block_kind::chat_close, "chat", chat_close);
    if (out.ids.size() <= budget || prefix_start >= cursor_line) {
      if (out.ids.size() > budget) {
        return fail(errc::invalid_argument, "{}: the cursor's line alone needs more than the {} token budget", path, budget);
      }
      for (const prompt_block& b : out.blocks) out.text.append(b.text);
      return out;
    }
    prefix_start = after_line(text, prefix_start);
    scope = scope_text(prefix_start);
  }
}

}  // namespace qcoder::context
