// The documents the editor has open, kept in sync through textDocument/didOpen, didChange (incremental and
// full), didSave and didClose, with positions in the encoding negotiated at initialize (UTF-16 by default,
// through astral characters and CRLF; see context::document).
//
// A change that does not fit the document (a range out of bounds or inside a character) means the client
// and the server disagree about the text: the notification's remaining changes are not applied, the
// document is marked out of sync, and requests on it fail with ContentModified until the client sends its
// full text again (a full-content change or a reopen). The user is told once.
// Thread-safety: I/O thread only (the handlers run there); copy what another thread needs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "context/document.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"

namespace qcoder::lsp {

struct open_document {
  context::document doc;
  std::int64_t version = 0;
  bool out_of_sync = false;
};

// "file:///a/b%20c.py" -> "/a/b c.py"; nullopt for other schemes or malformed escapes.
std::optional<std::string> uri_to_path(std::string_view uri);

class open_documents {
 public:
  open_documents(jsonrpc::connection& rpc, const language_server& server);

  open_document* find(std::string_view uri);
  std::size_t size() const { return docs_.size(); }
  // Called after a document's text changed (open, change, close), e.g. to cancel completions made stale.
  void set_on_change(std::function<void(const std::string& uri)> hook) { on_change_ = std::move(hook); }

 private:
  void did_open(const jsonrpc::json& params);
  void did_change(const jsonrpc::json& params);
  void did_close(const jsonrpc::json& params);
  context::column_unit unit() const;

  jsonrpc::connection& rpc_;
  const language_server& server_;
  std::map<std::string, std::unique_ptr<open_document>, std::less<>> docs_;
  std::function<void(const std::string&)> on_change_;
};

}  // namespace qcoder::lsp
