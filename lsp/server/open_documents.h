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

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "context/document.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"

namespace qcoder::lsp {

struct open_document {
  context::document doc;
  std::string language_id;  // as the client named it ("" when it did not)
  std::int64_t version = 0;
  // Changes applied so far, readable off the I/O thread: a job compares it at its end to tell whether the
  // text moved on while it worked.
  std::shared_ptr<std::atomic<std::uint64_t>> changes = std::make_shared<std::atomic<std::uint64_t>>(0);
  bool out_of_sync = false;
};

// What happened to a document, for the features that follow the text (workspace index, recent snippets,
// cancelling stale completions).
struct document_event {
  enum class kind { opened, changed, saved, closed };
  kind what = kind::changed;
  std::string uri;
  open_document* doc = nullptr;  // null for closed; valid only during the call
  // For changed: the lines of the new text the changes touched (inclusive); the whole text for a full change.
  std::size_t first_line = 0;
  std::size_t last_line = 0;
  std::chrono::steady_clock::time_point received;  // when the notification arrived
};

// "file:///a/b%20c.py" -> "/a/b c.py"; nullopt for other schemes or malformed escapes.
std::optional<std::string> uri_to_path(std::string_view uri);
// "/a/b c.py" -> "file:///a/b%20c.py" (an absolute path; unreserved characters and '/' stay as they are).
std::string path_to_uri(std::string_view path);

class open_documents {
 public:
  open_documents(jsonrpc::connection& rpc, const language_server& server);

  open_document* find(std::string_view uri);
  std::size_t size() const { return docs_.size(); }
  // Every open document, by uri.
  void for_each(const std::function<void(const std::string& uri, const open_document& doc)>& fn) const {
    for (const auto& [uri, doc] : docs_) fn(uri, *doc);
  }
  // Called (on the I/O thread) after each open, change, save and close, in the order added.
  void add_listener(std::function<void(const document_event&)> listener) { listeners_.push_back(std::move(listener)); }

 private:
  void did_open(const jsonrpc::json& params);
  void did_change(const jsonrpc::json& params);
  void did_close(const jsonrpc::json& params);
  void did_save(const jsonrpc::json& params);
  void emit(const document_event& event) const;
  context::column_unit unit() const;

  jsonrpc::connection& rpc_;
  const language_server& server_;
  std::map<std::string, std::unique_ptr<open_document>, std::less<>> docs_;
  std::vector<std::function<void(const document_event&)>> listeners_;
};

}  // namespace qcoder::lsp
