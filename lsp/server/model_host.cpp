// Background load with progress and status.
#include "lsp/server/model_host.h"

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;

model_host::model_host(jsonrpc::connection& rpc, service::inference_worker::loader_fn load)
    : rpc_(rpc), load_(std::move(load)) {}

model_host::~model_host() { stop(); }

void model_host::stop() {
  std::vector<waiter> waiters;
  {
    std::lock_guard lock(waiters_mutex_);
    waiters = std::move(waiters_);
  }
  waiters.clear();  // joins: each waits at most its timeout
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
  status_ = {{"state", "loading"}};
  rpc_.notify("qcoder/status", status_);
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
  {
    std::lock_guard lock(mutex_);
    status_ = status;
  }
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

void model_host::when_ready(std::chrono::milliseconds timeout, std::function<void(result<void>)> then) {
  service::inference_worker* w = worker();
  if (w == nullptr || w->state() != service::model_state::loading) return then(wait_ready(std::chrono::milliseconds(0)));
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(waiters_mutex_);
  std::erase_if(waiters_, [](const waiter& x) { return x.done->load(); });
  waiters_.push_back({std::jthread([this, timeout, then = std::move(then), done] {
                        then(wait_ready(timeout));
                        done->store(true);
                      }),
                      done});
}

result<void> model_host::shutdown() {
  service::inference_worker* w = worker();
  if (w == nullptr) return ok();
  return w->shutdown();
}

result<model_host::job_tools> model_host::tools(service::loaded_engine& engine, const context::prompt_options& prompt) {
  if (!tokenizer_) {
    if (engine.tokenizer) {
      tokenizer_ = engine.tokenizer;
    } else if (engine.model) {
      QCODER_TRY(engine::tokenizer loaded, engine::tokenizer::load_model_dir(engine.model->weights_file().dir()));
      tokenizer_ = std::make_shared<const engine::tokenizer>(std::move(loaded));
    } else {
      return fail(errc::internal, "the engine has neither a model nor a tokenizer");
    }
  }
  const bool stale = assistant_ && (assistant_->completions->prompt_options().budget_tokens != prompt.budget_tokens);
  if (!assistant_ || stale) {
    assistant_.reset();
    QCODER_TRY(assistant_, service::assistant::create(tokenizer_, prompt));
  }
  job_tools out;
  out.assistant = assistant_.get();
  out.tokenizer = tokenizer_;
  if (engine.remote) {
    out.backend = engine.remote.get();
  } else {
    if (!local_) local_ = std::make_unique<service::engine_backend>(tokenizer_, *engine.model, engine.cache.get());
    out.backend = out.local = local_.get();
  }
  return out;
}

void model_host::job_started() {
  json status;
  {
    std::lock_guard lock(mutex_);
    status_["state"] = "busy";
    status = status_;
  }
  rpc_.notify("qcoder/status", status);
}

void model_host::job_finished(const service::text_backend& backend, const job_figures& f, const error* failed) {
  if (failed != nullptr && failed->code == errc::unavailable) {
    json status = {{"state", "offline"}, {"message", failed->message}};
    {
      std::lock_guard lock(mutex_);
      status_ = status;
    }
    rpc_.notify("qcoder/status", status);
    if (!offline_) {
      rpc_.notify("window/showMessage", {{"type", 1}, {"message", "qcoder: " + failed->message +
                                                                      ". Completions and edits resume when it answers again."}});
    }
    offline_ = true;
    return;
  }
  if (offline_ && failed == nullptr) {
    offline_ = false;
    rpc_.notify("window/showMessage", {{"type", 3}, {"message", "qcoder: " + backend.where() + " answers again."}});
  }
  json status = {{"state", "idle"}, {"promptTokens", f.prompt_tokens}, {"reusedPromptTokens", f.restored_tokens},
                 {"generatedTokens", f.generated_tokens}};
  if (f.prompt_tokens > 0) status["prefixReuse"] = static_cast<double>(f.restored_tokens) / static_cast<double>(f.prompt_tokens);
  if (f.decode_seconds > 0) status["tokensPerSecond"] = static_cast<double>(f.generated_tokens) / f.decode_seconds;
  if (f.prefill_seconds > 0 && f.prompt_tokens > static_cast<std::size_t>(f.restored_tokens)) {
    status["prefillTokensPerSecond"] = static_cast<double>(f.prompt_tokens - static_cast<std::size_t>(f.restored_tokens)) / f.prefill_seconds;
  }
  if (std::optional<double> rate = backend.expert_hit_rate()) status["expertHitRate"] = *rate;
  {
    std::lock_guard lock(mutex_);
    status["requests"] = ++jobs_done_;
    // A job that decoded nothing (or found its whole prompt cached) measured no speed: the last figures
    // stay, rather than the status bar losing them until the next long enough job.
    for (const char* figure : {"tokensPerSecond", "prefillTokensPerSecond"}) {
      if (!status.contains(figure) && status_.contains(figure)) status[figure] = status_[figure];
    }
    status_ = status;
  }
  rpc_.notify("qcoder/status", status);
}

json model_host::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

}  // namespace qcoder::lsp
