// LSP positions and ranges <-> byte offsets of a document, in the encoding negotiated at initialize, with
// errors that name the JSON path of the bad field ("params.range.start.line: expected a non-negative
// integer", "params.position: line 99 is past the end (12 lines)").
// Thread-safety: free functions; the document must not change during the call.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "context/document.h"
#include "kernels/common/result.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"

namespace qcoder::lsp {

context::column_unit column_unit_of(const language_server& server);

// `value` ({line, character}) as a byte offset of `doc`; `name` is its JSON path for messages.
result<std::size_t> offset_of(const context::document& doc, const jsonrpc::json* value, const std::string& name,
                              context::column_unit unit);
// `value` ({start, end}) as byte offsets; an end before the start is an error.
result<std::pair<std::size_t, std::size_t>> range_of(const context::document& doc, const jsonrpc::json* value,
                                                     const std::string& name, context::column_unit unit);

// A byte offset of `doc` as an LSP position.
result<jsonrpc::json> position_json(const context::document& doc, std::size_t offset, context::column_unit unit);

}  // namespace qcoder::lsp
