// Position checks and conversions.
#include "lsp/server/positions.h"

namespace qcoder::lsp {

using jsonrpc::json;

context::column_unit column_unit_of(const language_server& server) {
  return server.encoding() == position_encoding::utf8 ? context::column_unit::utf8 : context::column_unit::utf16;
}

result<std::size_t> offset_of(const context::document& doc, const json* value, const std::string& name,
                              context::column_unit unit) {
  if (value == nullptr) return fail(errc::invalid_argument, "{}: missing", name);
  if (!value->is_object()) return fail(errc::invalid_argument, "{}: expected an object with line and character", name);
  std::size_t parts[2] = {0, 0};
  const char* keys[2] = {"line", "character"};
  for (int i = 0; i < 2; ++i) {
    auto it = value->find(keys[i]);
    if (it == value->end()) return fail(errc::invalid_argument, "{}.{}: missing", name, keys[i]);
    if (!it->is_number_unsigned()) return fail(errc::invalid_argument, "{}.{}: expected a non-negative integer", name, keys[i]);
    parts[i] = it->get<std::size_t>();
  }
  result<std::size_t> offset = doc.offset_at({parts[0], parts[1]}, unit);
  if (!offset) return fail(errc::invalid_argument, "{}: {}", name, offset.err().message);
  return *offset;
}

result<std::pair<std::size_t, std::size_t>> range_of(const context::document& doc, const json* value,
                                                     const std::string& name, context::column_unit unit) {
  if (value == nullptr) return fail(errc::invalid_argument, "{}: missing", name);
  if (!value->is_object()) return fail(errc::invalid_argument, "{}: expected an object with start and end", name);
  QCODER_TRY(std::size_t begin, offset_of(doc, jsonrpc::find_path(*value, {"start"}), name + ".start", unit));
  QCODER_TRY(std::size_t end, offset_of(doc, jsonrpc::find_path(*value, {"end"}), name + ".end", unit));
  if (end < begin) return fail(errc::invalid_argument, "{}: the end is before the start", name);
  return std::pair{begin, end};
}

result<json> position_json(const context::document& doc, std::size_t offset, context::column_unit unit) {
  QCODER_TRY(context::text_position p, doc.position_at(offset, unit));
  return json{{"line", p.line}, {"character", p.column}};
}

}  // namespace qcoder::lsp
