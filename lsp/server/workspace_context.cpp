// Index and snippets from the editor's events.
#include "lsp/server/workspace_context.h"

#include <filesystem>

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;
namespace {
constexpr std::size_t snippet_context_lines = 6;  // around an edit or a viewed place
constexpr auto reindex_interval = std::chrono::seconds(1);
}  // namespace

workspace_context::workspace_context(open_documents& docs, context::index_options options)
    : index_(std::make_unique<context::workspace_index>(options)) {
  docs.add_listener([this](const document_event& e) { on_event(e); });
}

workspace_context::~workspace_context() { stop(); }

void workspace_context::stop() { index_->cancel(); }

void workspace_context::start(const json& params) {
  std::optional<std::string> root;
  if (const json* folders = jsonrpc::find_path(params, {"workspaceFolders"}); folders != nullptr && folders->is_array()) {
    for (const json& f : *folders) {
      if (f.is_object() && f.contains("uri") && f["uri"].is_string()) {
        root = uri_to_path(f["uri"].get<std::string>());
        if (root) break;
      }
    }
  }
  if (!root) {
    if (const json* uri = jsonrpc::find_path(params, {"rootUri"}); uri != nullptr && uri->is_string()) root = uri_to_path(uri->get<std::string>());
  }
  if (!root) {
    if (const json* path = jsonrpc::find_path(params, {"rootPath"}); path != nullptr && path->is_string()) root = path->get<std::string>();
  }
  std::error_code ec;
  if (!root || !std::filesystem::is_directory(*root, ec)) {
    spdlog::info("lsp: no workspace folder; completions use the open file only");
    return;
  }
  root_ = root;
  spdlog::info("lsp: indexing {}", *root_);
  index_->start(*root_);
}

std::string workspace_context::label(const std::string& path) const {
  return root_ ? index_->relative(path) : path;
}

context::snippet workspace_context::lines_around(const open_document& doc, std::size_t first, std::size_t last,
                                                 context::snippet_source source) const {
  const std::size_t lines = doc.doc.line_count();
  first = first > snippet_context_lines ? first - snippet_context_lines : 0;
  last = std::min(lines - 1, last + snippet_context_lines);
  const std::size_t end = last + 1 < lines ? doc.doc.line_start(last + 1) : doc.doc.size();
  return context::snippet{label(doc.doc.path()), static_cast<std::uint32_t>(first),
                          doc.doc.slice(doc.doc.line_start(first), end), source};
}

void workspace_context::viewed(const std::string& uri, const open_document& doc, std::size_t line) {
  if (uri != last_uri_ && last_place_) recent_.add(*last_place_);
  last_uri_ = uri;
  last_place_ = lines_around(doc, line, line, context::snippet_source::viewed);
}

void workspace_context::on_event(const document_event& e) {
  switch (e.what) {
    case document_event::kind::opened:
      break;
    case document_event::kind::changed: {
      // Edits of a few lines are what the user works on; a full replacement (reload, format) is not.
      if (e.last_line - e.first_line < 40) recent_.add(lines_around(*e.doc, e.first_line, e.last_line, context::snippet_source::edited));
      if (!root_) break;
      auto& at = indexed_at_[e.uri];
      if (e.received - at >= reindex_interval) {
        at = e.received;
        index_->update_file(e.doc->doc.path(), e.doc->doc.text(), e.doc->doc.tree());
      }
      break;
    }
    case document_event::kind::saved:
      if (root_) index_->update_file(e.doc->doc.path(), e.doc->doc.text(), e.doc->doc.tree());
      break;
    case document_event::kind::closed:
      indexed_at_.erase(e.uri);
      break;
  }
}

}  // namespace qcoder::lsp
