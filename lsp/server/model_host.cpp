// Background load with progress and status.
#include "lsp/server/model_host.h"

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;

model_host::model_host(jsonrpc::connection& rpc, service::inference_worker::loader_fn load)
    : rpc_(rpc), load_(std::move(load)) {}

model_host::~model_host() { stop(); }

void model_host::stop() {
  std::unique_ptr<service::inference_worker> worker;
  {
    std::lock_guard lock(mutex_);
    worker = std::move(worker_);
  }
  worker.reset();  // joins the worker outside the lock (its state callback takes the lock)
}

void model_host::start(bool progress) {
  std::lock_guard lock(mutex_);
  if (worker_) return;
  if (progress) {
    progress_token_ = "qcoder/load-model";
    rpc_.request("window/workDoneProgress/create", {{"token", *progress_token_}}, [](const json*, const jsonrpc::rpc_error* e) {
      if (e != nullptr) spdlog::debug("lsp: the client refused a progress token: {}", e->message);
    });
    rpc_.notify("$/progress", {{"token", *progress_token_},
                               {"value", {{"kind", "begin"}, {"title", "qcoder: loading the model"}, {"cancellable", false}}}});
  }
  rpc_.notify("qcoder/status", {{"state", "loading"}});
  worker_ = std::make_unique<service::inference_worker>(
      load_, [this](service::model_state s, const std::string& detail) { on_state(s, detail); });
}

void model_host::on_state(service::model_state state, const std::string& detail) {
  const bool ready = state == service::model_state::ready;
  if (!ready && state != service::model_state::failed) return;
  std::optional<std::string> token;
  {
    std::lock_guard lock(mutex_);
    if (!progress_ended_) token = progress_token_;
    progress_ended_ = true;
  }
  if (token) {
    rpc_.notify("$/progress", {{"token", *token},
                               {"value", {{"kind", "end"}, {"message", ready ? "ready" : "failed: " + detail}}}});
  }
  json status = {{"state", ready ? "idle" : "error"}};
  if (!ready) status["message"] = detail;
  rpc_.notify("qcoder/status", status);
  if (!ready) {
    rpc_.notify("window/showMessage", {{"type", 1}, {"message", "qcoder: the model could not be loaded: " + detail}});
  }
}

service::inference_worker* model_host::worker() const {
  std::lock_guard lock(mutex_);
  return worker_.get();
}

result<void> model_host::wait_ready(std::chrono::milliseconds timeout) const {
  service::inference_worker* w = worker();
  if (w == nullptr) return fail(errc::unsupported, "the model is not loaded yet (the client has not sent initialized)");
  return w->wait_ready(timeout);
}

result<void> model_host::shutdown() {
  service::inference_worker* w = worker();
  if (w == nullptr) return ok();
  return w->shutdown();
}

}  // namespace qcoder::lsp
