// Language tables and the grammar entry points exported by the tree-sitter parsers.
#include "context/languages.h"

#include <algorithm>
#include <array>
#include <cctype>

extern "C" {
const TSLanguage* tree_sitter_python();
const TSLanguage* tree_sitter_javascript();
const TSLanguage* tree_sitter_typescript();
const TSLanguage* tree_sitter_tsx();
const TSLanguage* tree_sitter_c();
const TSLanguage* tree_sitter_cpp();
const TSLanguage* tree_sitter_rust();
const TSLanguage* tree_sitter_go();
const TSLanguage* tree_sitter_java();
}

namespace qcoder::context {
namespace {

using sv = std::string_view;

constexpr std::array<sv, 1> python_ids{"python"};
constexpr std::array<sv, 3> python_ext{".py", ".pyi", ".pyw"};
constexpr std::array<sv, 2> javascript_ids{"javascript", "javascriptreact"};
constexpr std::array<sv, 4> javascript_ext{".js", ".mjs", ".cjs", ".jsx"};
constexpr std::array<sv, 1> typescript_ids{"typescript"};
constexpr std::array<sv, 3> typescript_ext{".ts", ".mts", ".cts"};
constexpr std::array<sv, 1> tsx_ids{"typescriptreact"};
constexpr std::array<sv, 1> tsx_ext{".tsx"};
constexpr std::array<sv, 1> c_ids{"c"};
constexpr std::array<sv, 1> c_ext{".c"};
constexpr std::array<sv, 2> cpp_ids{"cpp", "cuda-cpp"};
// .h is ambiguous; C++ parses nearly all C headers, so it wins.
constexpr std::array<sv, 10> cpp_ext{".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h", ".cu", ".cuh"};
constexpr std::array<sv, 1> rust_ids{"rust"};
constexpr std::array<sv, 1> rust_ext{".rs"};
constexpr std::array<sv, 1> go_ids{"go"};
constexpr std::array<sv, 1> go_ext{".go"};
constexpr std::array<sv, 1> java_ids{"java"};
constexpr std::array<sv, 1> java_ext{".java"};

const std::array<language_info, 9> table{{
    {language::python, "python", python_ids, python_ext},
    {language::javascript, "javascript", javascript_ids, javascript_ext},
    {language::typescript, "typescript", typescript_ids, typescript_ext},
    {language::tsx, "tsx", tsx_ids, tsx_ext},
    {language::c, "c", c_ids, c_ext},
    {language::cpp, "cpp", cpp_ids, cpp_ext},
    {language::rust, "rust", rust_ids, rust_ext},
    {language::go, "go", go_ids, go_ext},
    {language::java, "java", java_ids, java_ext},
}};

bool iequals(sv a, sv b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const language_info> all_languages() { return table; }

const language_info& info(language lang) { return table[static_cast<std::size_t>(lang)]; }

const TSLanguage* grammar(language lang) {
  switch (lang) {
    case language::python: return tree_sitter_python();
    case language::javascript: return tree_sitter_javascript();
    case language::typescript: return tree_sitter_typescript();
    case language::tsx: return tree_sitter_tsx();
    case language::c: return tree_sitter_c();
    case language::cpp: return tree_sitter_cpp();
    case language::rust: return tree_sitter_rust();
    case language::go: return tree_sitter_go();
    case language::java: return tree_sitter_java();
  }
  return tree_sitter_python();  // unreachable: the switch covers every enumerator
}

std::optional<language> language_from_path(std::string_view path) {
  const std::size_t slash = path.find_last_of("/\\");
  const sv file = slash == sv::npos ? path : path.substr(slash + 1);
  const std::size_t dot = file.rfind('.');
  if (dot == sv::npos || dot == 0) return std::nullopt;
  const sv ext = file.substr(dot);
  for (const language_info& entry : table) {
    for (sv candidate : entry.extensions) {
      if (iequals(candidate, ext)) return entry.id;
    }
  }
  return std::nullopt;
}

std::optional<language> language_from_lsp_id(std::string_view lsp_id) {
  for (const language_info& entry : table) {
    if (std::find(entry.lsp_ids.begin(), entry.lsp_ids.end(), lsp_id) != entry.lsp_ids.end()) return entry.id;
  }
  return std::nullopt;
}

}  // namespace qcoder::context
