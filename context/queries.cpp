// Query texts per language and their one-time compilation.
//
// Where one node could match several patterns (a method is also a function; an arrow function bound to a
// constant is also a constant), the symbol extractor keeps the most specific kind, so the patterns here
// can stay simple and overlap.
#include "context/queries.h"

#include <array>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>
#include <tree_sitter/api.h>

namespace qcoder::context {
namespace {

constexpr std::string_view python_symbols = R"scm(
(class_definition body: (block (function_definition name: (identifier) @name) @def.method))
(class_definition body: (block (decorated_definition definition: (function_definition name: (identifier) @name) @def.method)))
(function_definition name: (identifier) @name) @def.function
(class_definition name: (identifier) @name) @def.class
(module (expression_statement (assignment left: (identifier) @name)) @def.constant)
(module (expression_statement (assignment left: (identifier) @name type: (_))) @def.constant)

(import_statement name: (dotted_name) @import.module)
(import_statement name: (aliased_import name: (dotted_name) @import.module alias: (identifier) @import.alias))
(import_from_statement module_name: (_) @import.module name: (dotted_name) @import.name)
(import_from_statement module_name: (_) @import.module
  name: (aliased_import name: (dotted_name) @import.name alias: (identifier) @import.alias))
)scm";

// JavaScript, and the part of TypeScript that is JavaScript.
constexpr std::string_view javascript_symbols = R"scm(
(class_body (method_definition name: (_) @name) @def.method)
(function_declaration name: (identifier) @name) @def.function
(generator_function_declaration name: (identifier) @name) @def.function
(class_declaration name: (_) @name) @def.class
(lexical_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)])) @def.function
(variable_declaration (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)])) @def.function
(program (lexical_declaration (variable_declarator name: (identifier) @name)) @def.constant)
(program (variable_declaration (variable_declarator name: (identifier) @name)) @def.constant)
(program (export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name)) @def.constant))
(expression_statement (assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)])) @def.function

(import_statement (import_clause (named_imports (import_specifier name: (_) @import.name)))
  source: (string (string_fragment) @import.module))
(import_statement (import_clause (named_imports (import_specifier name: (_) @import.name alias: (_) @import.alias)))
  source: (string (string_fragment) @import.module))
(import_statement (import_clause (namespace_import (identifier) @import.alias))
  source: (string (string_fragment) @import.module))
(import_statement (import_clause (identifier) @import.alias)
  source: (string (string_fragment) @import.module))
(export_statement (export_clause (export_specifier name: (_) @import.name))
  source: (string (string_fragment) @import.module))
(export_statement (export_clause (export_specifier name: (_) @import.name alias: (_) @import.alias))
  source: (string (string_fragment) @import.module))
(variable_declarator name: (identifier) @import.alias
  value: (call_expression function: (identifier) @import.require
    arguments: (arguments . (string (string_fragment) @import.module))))
(variable_declarator name: (object_pattern (shorthand_property_identifier_pattern) @import.name)
  value: (call_expression function: (identifier) @import.require
    arguments: (arguments . (string (string_fragment) @import.module))))
)scm";

constexpr std::string_view typescript_extra_symbols = R"scm(
(interface_declaration name: (_) @name) @def.type
(type_alias_declaration name: (_) @name) @def.type
(enum_declaration name: (_) @name) @def.type
(abstract_class_declaration name: (_) @name) @def.class
(function_signature name: (identifier) @name) @def.function
(class_body (method_signature name: (_) @name) @def.method)
(class_body (abstract_method_signature name: (_) @name) @def.method)
(interface_body (method_signature name: (_) @name) @def.method)
(ambient_declaration (lexical_declaration (variable_declarator name: (identifier) @name)) @def.constant)
)scm";

// C, and the part of C++ that is C (namespaces hold what a translation unit holds).
constexpr std::string_view c_symbols = R"scm(
(function_definition declarator: (function_declarator declarator: (identifier) @name)) @def.function
(function_definition declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))) @def.function
(declaration declarator: (function_declarator declarator: (identifier) @name)) @def.function
(declaration declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))) @def.function
(struct_specifier name: (type_identifier) @name body: (_)) @def.class
(union_specifier name: (type_identifier) @name body: (_)) @def.class
(enum_specifier name: (type_identifier) @name body: (_)) @def.type
(type_definition declarator: (type_identifier) @name) @def.type
(preproc_def name: (identifier) @name) @def.constant
(preproc_function_def name: (identifier) @name) @def.function
(translation_unit (declaration declarator: (init_declarator declarator: (identifier) @name)) @def.constant)

(preproc_include path: (string_literal (string_content) @import.module))
(preproc_include path: (system_lib_string) @import.module)
)scm";

constexpr std::string_view cpp_extra_symbols = R"scm(
(function_definition declarator: (function_declarator declarator: (qualified_identifier name: (identifier) @name))) @def.method
(function_definition declarator: (function_declarator declarator: (field_identifier) @name)) @def.method
(field_declaration declarator: (function_declarator declarator: (field_identifier) @name)) @def.method
(class_specifier name: (type_identifier) @name body: (_)) @def.class
(alias_declaration name: (type_identifier) @name) @def.type
(declaration_list (declaration declarator: (init_declarator declarator: (identifier) @name)) @def.constant)
)scm";

constexpr std::string_view rust_symbols = R"scm(
(impl_item body: (declaration_list (function_item name: (identifier) @name) @def.method))
(trait_item body: (declaration_list (function_item name: (identifier) @name) @def.method))
(trait_item body: (declaration_list (function_signature_item name: (identifier) @name) @def.method))
(function_item name: (identifier) @name) @def.function
(struct_item name: (type_identifier) @name) @def.class
(union_item name: (type_identifier) @name) @def.class
(enum_item name: (type_identifier) @name) @def.type
(trait_item name: (type_identifier) @name) @def.type
(type_item name: (type_identifier) @name) @def.type
(const_item name: (identifier) @name) @def.constant
(static_item name: (identifier) @name) @def.constant
(macro_definition name: (identifier) @name) @def.function

(use_declaration argument: (identifier) @import.name)
(use_declaration argument: (scoped_identifier path: (_) @import.module name: (identifier) @import.name))
(use_declaration argument: (use_as_clause path: (scoped_identifier path: (_) @import.module name: (identifier) @import.name)
  alias: (identifier) @import.alias))
(use_declaration argument: (scoped_use_list path: (_) @import.module list: (use_list (identifier) @import.name)))
(use_declaration argument: (scoped_use_list path: (_) @import.module
  list: (use_list (use_as_clause path: (identifier) @import.name alias: (identifier) @import.alias))))
)scm";

constexpr std::string_view go_symbols = R"scm(
(function_declaration name: (identifier) @name) @def.function
(method_declaration name: (field_identifier) @name) @def.method
(type_spec name: (type_identifier) @name type: (struct_type)) @def.class
(type_spec name: (type_identifier) @name) @def.type
(source_file (const_declaration (const_spec name: (identifier) @name) @def.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @def.constant))

(import_spec name: (package_identifier) @import.alias
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module))
(import_spec !name path: (interpreted_string_literal (interpreted_string_literal_content) @import.module))
)scm";

constexpr std::string_view java_symbols = R"scm(
(method_declaration name: (identifier) @name) @def.method
(constructor_declaration name: (identifier) @name) @def.method
(class_declaration name: (identifier) @name) @def.class
(record_declaration name: (identifier) @name) @def.class
(interface_declaration name: (identifier) @name) @def.type
(enum_declaration name: (identifier) @name) @def.type
(class_body (field_declaration (modifiers "static") declarator: (variable_declarator name: (identifier) @name)) @def.constant)

(import_declaration (scoped_identifier scope: (_) @import.module name: (identifier) @import.name))
)scm";

constexpr std::string_view python_calls = R"scm(
(call function: [(identifier) @call.name (attribute attribute: (identifier) @call.name)]) @call
)scm";
constexpr std::string_view javascript_calls = R"scm(
(call_expression function: [(identifier) @call.name (member_expression property: (property_identifier) @call.name)]) @call
)scm";
constexpr std::string_view c_calls = R"scm(
(call_expression function: [(identifier) @call.name (field_expression field: (field_identifier) @call.name)]) @call
)scm";
constexpr std::string_view cpp_calls = R"scm(
(call_expression function: [(identifier) @call.name (field_expression field: (field_identifier) @call.name)
  (qualified_identifier name: (identifier) @call.name)]) @call
)scm";
constexpr std::string_view rust_calls = R"scm(
(call_expression function: [(identifier) @call.name (field_expression field: (field_identifier) @call.name)
  (scoped_identifier name: (identifier) @call.name)]) @call
)scm";
constexpr std::string_view go_calls = R"scm(
(call_expression function: [(identifier) @call.name (selector_expression field: (field_identifier) @call.name)]) @call
)scm";
constexpr std::string_view java_calls = R"scm(
(method_invocation name: (identifier) @call.name) @call
)scm";

constexpr std::size_t language_count = 9;

struct compiled {
  std::once_flag once;
  TSQuery* query = nullptr;
};
std::array<compiled, language_count> symbol_queries;
std::array<compiled, language_count> call_queries;

const TSQuery* compile(compiled& slot, language lang, std::string_view text) {
  std::call_once(slot.once, [&] {
    uint32_t error_offset = 0;
    TSQueryError error = TSQueryErrorNone;
    slot.query = ts_query_new(grammar(lang), text.data(), static_cast<uint32_t>(text.size()), &error_offset, &error);
    if (slot.query == nullptr) {
      // A bug in the embedded text (the query test catches it); the caller sees "no symbols".
      spdlog::error("{} query does not compile at offset {} (error {}): '{}'", info(lang).name, error_offset,
                    static_cast<int>(error), text.substr(error_offset, 40));
    }
  });
  return slot.query;
}

}  // namespace

std::string_view symbols_query_text(language lang) {
  // Concatenations are built once; the views stay valid for the program's life.
  static const std::string typescript = std::string(javascript_symbols) + std::string(typescript_extra_symbols);
  static const std::string cpp = std::string(c_symbols) + std::string(cpp_extra_symbols);
  switch (lang) {
    case language::python: return python_symbols;
    case language::javascript: return javascript_symbols;
    case language::typescript:
    case language::tsx: return typescript;
    case language::c: return c_symbols;
    case language::cpp: return cpp;
    case language::rust: return rust_symbols;
    case language::go: return go_symbols;
    case language::java: return java_symbols;
  }
  return {};
}

std::string_view calls_query_text(language lang) {
  switch (lang) {
    case language::python: return python_calls;
    case language::javascript:
    case language::typescript:
    case language::tsx: return javascript_calls;
    case language::c: return c_calls;
    case language::cpp: return cpp_calls;
    case language::rust: return rust_calls;
    case language::go: return go_calls;
    case language::java: return java_calls;
  }
  return {};
}

const TSQuery* symbols_query(language lang) {
  return compile(symbol_queries[static_cast<std::size_t>(lang)], lang, symbols_query_text(lang));
}

const TSQuery* calls_query(language lang) {
  return compile(call_queries[static_cast<std::size_t>(lang)], lang, calls_query_text(lang));
}

}  // namespace qcoder::context
