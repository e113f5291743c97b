// The code context the server keeps for the whole session: the workspace index (built in the background
// from the client's workspace folder, updated when a file is saved and, at most once a second, while it is
// edited) and the ring of recently edited and viewed code. Completions read both from the inference
// thread.
//
// "Recently edited" is the lines around each change; "recently viewed" is where the user last asked for a
// completion in a file they then left for another one (LSP has no notification for scrolling, but it
// does tell us where the cursor was).
// Thread-safety: the handlers and viewed() run on the I/O thread; index() and recent() are thread-safe
// to read from any thread (see workspace_index and recent_snippets).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "context/recent_snippets.h"
#include "context/workspace_index.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/open_documents.h"

namespace qcoder::lsp {

class workspace_context {
 public:
  explicit workspace_context(open_documents& docs, context::index_options options = {});
  ~workspace_context();

  // Starts indexing the workspace the initialize params name (workspaceFolders[0], rootUri or rootPath);
  // without one there is no index.
  void start(const jsonrpc::json& initialize_params);
  // The index, or nullptr without a workspace.
  const context::workspace_index* index() const { return root_ ? index_.get() : nullptr; }
  const context::recent_snippets& recent() const { return recent_; }
  // The workspace folder, when the client named one.
  const std::optional<std::string>& root() const { return root_; }
  // Blocks until the first build of the index finished (at once without a workspace); for benchmarks and
  // tests that measure the steady state.
  void wait_indexed() {
    if (root_) index_->wait();
  }
  // A document path as the prompt labels it: relative to the workspace root when under it.
  std::string label(const std::string& path) const;
  // The user asked for a completion at `line` of `uri`: when that is another file than last time, the
  // previous place becomes a recently viewed snippet.
  void viewed(const std::string& uri, const open_document& doc, std::size_t line);
  void stop();

 private:
  void on_event(const document_event& e);
  context::snippet lines_around(const open_document& doc, std::size_t first, std::size_t last,
                                context::snippet_source source) const;

  std::unique_ptr<context::workspace_index> index_;
  std::optional<std::string> root_;
  context::recent_snippets recent_;
  std::map<std::string, std::chrono::steady_clock::time_point> indexed_at_;  // uri -> last update from edits
  std::string last_uri_;
  std::optional<context::snippet> last_place_;
};

}  // namespace qcoder::lsp
