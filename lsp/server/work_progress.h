// Work-done progress of one long job (an edit, a refactor), sent from the thread doing the work: under the
// client's own token (a request's workDoneToken) or, when the client accepts server-initiated progress, one
// created with window/workDoneProgress/create (waiting at most 2 s for its answer). Without either it
// sends nothing. Reports are rate-limited.
// Thread-safety: one thread uses an instance; notifications go through the (thread-safe) connection.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "lsp/jsonrpc/connection.h"

namespace qcoder::lsp {

class work_progress {
 public:
  static constexpr std::chrono::milliseconds report_interval{250};

  // `client_token`: the request's workDoneToken, if any; `may_create`: the client supports
  // window/workDoneProgress/create; `name`: the token to create (unique per job).
  work_progress(jsonrpc::connection& rpc, std::optional<jsonrpc::json> client_token, bool may_create, std::string name);

  void begin(const std::string& title, bool cancellable);
  // At most one report per report_interval (a final state goes in end()).
  void report(const std::string& message, std::optional<int> percentage = std::nullopt);
  void end(const std::string& message);
  bool active() const { return token_.has_value(); }

 private:
  jsonrpc::connection& rpc_;
  std::optional<jsonrpc::json> token_;
  std::chrono::steady_clock::time_point last_report_{};
};

}  // namespace qcoder::lsp
