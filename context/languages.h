// The programming languages we parse, and how a file or an LSP languageId maps to one.
// Thread-safe: the tables are constant; the TSLanguage objects are immutable and shared by all parsers.
#pragma once

#include <optional>
#include <span>
#include <string_view>

struct TSLanguage;

namespace qcoder::context {

enum class language { python, javascript, typescript, tsx, c, cpp, rust, go, java };

struct language_info {
  language id;
  std::string_view name;                    // our name, e.g. "cpp"
  std::span<const std::string_view> lsp_ids;      // LSP languageIds, e.g. "cpp", "cuda-cpp"
  std::span<const std::string_view> extensions;   // with the dot, lower case, e.g. ".hpp"
};

// Every language we support, in a stable order.
std::span<const language_info> all_languages();

const language_info& info(language lang);

// The compiled tree-sitter grammar of a language (never null).
const TSLanguage* grammar(language lang);

// "Foo.TSX" -> tsx. Matches the last extension, case-insensitively; nullopt when we do not parse it.
std::optional<language> language_from_path(std::string_view path);

// LSP languageId -> language ("typescriptreact" -> tsx); nullopt when we do not parse it.
std::optional<language> language_from_lsp_id(std::string_view lsp_id);

}  // namespace qcoder::context
