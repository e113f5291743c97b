// Text synchronisation.
#include "lsp/server/open_documents.h"

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;

std::optional<std::string> uri_to_path(std::string_view uri) {
  constexpr std::string_view scheme = "file://";
  if (uri.substr(0, scheme.size()) != scheme) return std::nullopt;
  uri.remove_prefix(scheme.size());
  if (!uri.empty() && uri.front() != '/') {  // file://host/path: only an empty or local host
    const std::size_t slash = uri.find('/');
    if (slash == std::string_view::npos || uri.substr(0, slash) != "localhost") return std::nullopt;
    uri.remove_prefix(slash);
  }
  std::string path;
  for (std::size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] != '%') {
      path += uri[i];
      continue;
    }
    if (i + 2 >= uri.size()) return std::nullopt;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(uri[i + 1]), lo = hex(uri[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    path += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return path;
}

open_documents::open_documents(jsonrpc::connection& rpc, const language_server& server) : rpc_(rpc), server_(server) {
  rpc_.on_notification("textDocument/didOpen", [this](const json& p) { did_open(p); });
  rpc_.on_notification("textDocument/didChange", [this](const json& p) { did_change(p); });
  rpc_.on_notification("textDocument/didClose", [this](const json& p) { did_close(p); });
  rpc_.on_notification("textDocument/didSave", [](const json&) {});
}

context::column_unit open_documents::unit() const {
  return server_.encoding() == position_encoding::utf8 ? context::column_unit::utf8 : context::column_unit::utf16;
}

open_document* open_documents::find(std::string_view uri) {
  auto it = docs_.find(uri);
  return it == docs_.end() ? nullptr : it->second.get();
}


void open_documents::did_open(const json& params) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  const json* text = jsonrpc::find_path(params, {"textDocument", "text"});
  if (uri == nullptr || !uri->is_string() || text == nullptr || !text->is_string()) {
    spdlog::warn("lsp: didOpen without textDocument.uri or textDocument.text: ignored");
    return;
  }
  const std::string key = uri->get<std::string>();
  const json* language_id = jsonrpc::find_path(params, {"textDocument", "languageId"});
  const json* version = jsonrpc::find_path(params, {"textDocument", "version"});
  const std::string path = uri_to_path(key).value_or(key);
  std::optional<context::language> lang =
      language_id != nullptr && language_id->is_string() ? context::language_from_lsp_id(language_id->get<std::string>())
                                                         : std::nullopt;
  if (!lang) lang = context::language_from_path(path);
  auto doc = std::make_unique<open_document>(open_document{context::document(path, lang, text->get<std::string>())});
  doc->version = version != nullptr && version->is_number_integer() ? version->get<std::int64_t>() : 0;
  docs_[key] = std::move(doc);
  if (on_change_) on_change_(key);
}

void open_documents::did_change(const json& params) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  const json* changes = jsonrpc::find_path(params, {"contentChanges"});
  if (uri == nullptr || !uri->is_string() || changes == nullptr || !changes->is_array()) {
    spdlog::warn("lsp: didChange without textDocument.uri or contentChanges: ignored");
    return;
  }
  const std::string key = uri->get<std::string>();
  open_document* d = find(key);
  if (d == nullptr) {
    spdlog::warn("lsp: didChange for {}, which is not open: ignored", key);
    return;
  }
  for (const json& change : *changes) {
    const json* text = jsonrpc::find_path(change, {"text"});
    if (text == nullptr || !text->is_string()) {
      spdlog::warn("lsp: a change to {} without text: ignored", key);
      continue;
    }
    const json* range = jsonrpc::find_path(change, {"range"});
    if (range == nullptr) {  // full content: also the way back into sync
      d->doc.set_text(text->get<std::string>());
      d->out_of_sync = false;
      continue;
    }
    if (d->out_of_sync) continue;
    auto position = [&](const char* which) -> std::optional<context::text_position> {
      const json* line = jsonrpc::find_path(*range, {which, "line"});
      const json* character = jsonrpc::find_path(*range, {which, "character"});
      if (line == nullptr || character == nullptr || !line->is_number_unsigned() || !character->is_number_unsigned()) {
        return std::nullopt;
      }
      return context::text_position{line->get<std::size_t>(), character->get<std::size_t>()};
    };
    const std::optional<context::text_position> begin = position("start"), end = position("end");
    result<void> applied = begin && end ? d->doc.replace(*begin, *end, unit(), text->get<std::string>())
                                        : result<void>(fail(errc::invalid_argument, "malformed range"));
    if (!applied) {
      spdlog::error("lsp: change to {} does not fit the document ({}); out of sync until the client resends it",
                    key, applied.err().message);
      d->out_of_sync = true;
      rpc_.notify("window/showMessage",
                  {{"type", 2}, {"message", "qcoder: lost track of " + d->doc.path() + "; reopen it to resume completions"}});
    }
  }
  if (const json* version = jsonrpc::find_path(params, {"textDocument", "version"}); version != nullptr && version->is_number_integer()) {
    d->version = version->get<std::int64_t>();
  }
  if (on_change_) on_change_(key);
}

void open_documents::did_close(const json& params) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) return;
  const std::string key = uri->get<std::string>();
  docs_.erase(key);
  if (on_change_) on_change_(key);
}

}  // namespace qcoder::lsp
