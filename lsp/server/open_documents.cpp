// Text synchronisation.
#include "lsp/server/open_documents.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;

std::string path_to_uri(std::string_view path) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string uri = "file://";
  for (const char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      uri += ch;
    } else {
      uri += '%';
      uri += hex[c >> 4];
      uri += hex[c & 15];
    }
  }
  return uri;
}

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
  rpc_.on_notification("textDocument/didSave", [this](const json& p) { did_save(p); });
}

context::column_unit open_documents::unit() const {
  return server_.encoding() == position_encoding::utf8 ? context::column_unit::utf8 : context::column_unit::utf16;
}

open_document* open_documents::find(std::string_view uri) {
  auto it = docs_.find(uri);
  return it == docs_.end() ? nullptr : it->second.get();
}


void open_documents::did_open(const json& params) {
  const auto received = std::chrono::steady_clock::now();
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
  if (language_id != nullptr && language_id->is_string()) doc->language_id = language_id->get<std::string>();
  open_document* opened = doc.get();
  docs_[key] = std::move(doc);
  emit({document_event::kind::opened, key, opened, 0, opened->doc.line_count() - 1, received});
}

void open_documents::did_change(const json& params) {
  const auto received = std::chrono::steady_clock::now();
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  const json* changes = jsonrpc::find_path(params, {"contentChanges"});
  if (uri == nullptr || !uri->is_string() || changes == nullptr || !changes->is_array()) {
    spdlog::warn("lsp: didChange without textDocument.uri or contentChanges: ignored");
    return;
  }
  const std::string key = uri->get<std::string>();
  open_document* d = find(key);
  std::size_t first_line = SIZE_MAX, last_line = 0;
  const auto touched = [&](std::size_t first, std::size_t last) {
    first_line = std::min(first_line, first);
    last_line = std::max(last_line, last);
  };
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
      touched(0, d->doc.line_count() - 1);
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
    if (applied) {
      // The changed lines in the new text: from the start line to where the inserted text ends.
      const std::string& inserted = text->get_ref<const std::string&>();
      touched(begin->line, begin->line + static_cast<std::size_t>(std::count(inserted.begin(), inserted.end(), '\n')));
    } else {
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
  d->changes->fetch_add(1);
  if (first_line != SIZE_MAX) {
    last_line = std::min(last_line, d->doc.line_count() - 1);
    emit({document_event::kind::changed, key, d, std::min(first_line, last_line), last_line, received});
  }
}

void open_documents::did_close(const json& params) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) return;
  const std::string key = uri->get<std::string>();
  if (open_document* d = find(key)) d->changes->fetch_add(1);  // a job still working on it is stale
  docs_.erase(key);
  emit({document_event::kind::closed, key, nullptr, 0, 0, std::chrono::steady_clock::now()});
}

void open_documents::did_save(const json& params) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) return;
  const std::string key = uri->get<std::string>();
  open_document* d = find(key);
  if (d == nullptr || d->out_of_sync) return;
  emit({document_event::kind::saved, key, d, 0, d->doc.line_count() - 1, std::chrono::steady_clock::now()});
}

void open_documents::emit(const document_event& event) const {
  for (const auto& listener : listeners_) listener(event);
}

}  // namespace qcoder::lsp
