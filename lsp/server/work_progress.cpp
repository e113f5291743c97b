#include "lsp/server/work_progress.h"

#include <future>
#include <memory>

namespace qcoder::lsp {
using jsonrpc::json;

work_progress::work_progress(jsonrpc::connection& rpc, std::optional<json> client_token, bool may_create, std::string name)
    : rpc_(rpc), token_(std::move(client_token)) {
  if (token_ || !may_create) return;
  auto created = std::make_shared<std::promise<bool>>();
  std::future<bool> answer = created->get_future();
  const json t = std::move(name);
  rpc_.request("window/workDoneProgress/create", {{"token", t}},
               [created](const json*, const jsonrpc::rpc_error* e) { created->set_value(e == nullptr); });
  if (answer.wait_for(std::chrono::seconds(2)) == std::future_status::ready && answer.get()) token_ = t;
}

void work_progress::begin(const std::string& title, bool cancellable) {
  if (!token_) return;
  rpc_.notify("$/progress", {{"token", *token_}, {"value", {{"kind", "begin"}, {"title", title}, {"cancellable", cancellable}}}});
  last_report_ = std::chrono::steady_clock::now();
}

void work_progress::report(const std::string& message, std::optional<int> percentage) {
  const auto now = std::chrono::steady_clock::now();
  if (!token_ || now - last_report_ < report_interval) return;
  last_report_ = now;
  json value = {{"kind", "report"}, {"message", message}};
  if (percentage) value["percentage"] = *percentage;
  rpc_.notify("$/progress", {{"token", *token_}, {"value", std::move(value)}});
}

void work_progress::end(const std::string& message) {
  if (!token_) return;
  rpc_.notify("$/progress", {{"token", *token_}, {"value", {{"kind", "end"}, {"message", message}}}});
}

}  // namespace qcoder::lsp
