// Inline completion requests.
#include "lsp/server/inline_completion.h"

#include <spdlog/spdlog.h>

namespace qcoder::lsp {

using jsonrpc::json;
namespace codes = jsonrpc::codes;

struct inline_completion::job_input {
  std::shared_ptr<jsonrpc::reply> reply;
  std::stop_token stop;  // the per-document source: a newer request or $/cancelRequest
  service::completion_request request;
  std::string uri;
  json position;
};

inline_completion::inline_completion(jsonrpc::connection& rpc, const language_server& server, open_documents& docs,
                                     model_host& host, inline_completion_options options)
    : rpc_(rpc), server_(server), docs_(docs), host_(host), options_(options) {
  rpc_.on_request("textDocument/inlineCompletion", [this](const json& params, jsonrpc::reply r) {
    on_request(params, std::move(r));
  });
}

inline_completion::~inline_completion() { stop(); }

void inline_completion::stop() {
  for (auto& [uri, source] : active_) source.request_stop();
  waiters_.clear();  // joins
}

namespace {

// params.<path> as a non-negative integer, or an error naming the path.
result<std::size_t> unsigned_at(const json& params, std::initializer_list<const char*> path) {
  std::string name = "params";
  for (const char* key : path) name += std::string(".") + key;
  const json* at = jsonrpc::find_path(params, path);
  if (at == nullptr) return fail(errc::invalid_argument, "{}: missing", name);
  if (!at->is_number_unsigned()) return fail(errc::invalid_argument, "{}: expected a non-negative integer", name);
  return at->get<std::size_t>();
}

}  // namespace

void inline_completion::on_request(const json& params, jsonrpc::reply r) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) {
    r.error(codes::invalid_params, "params.textDocument.uri: expected a string");
    return;
  }
  result<std::size_t> line = unsigned_at(params, {"position", "line"});
  result<std::size_t> character = unsigned_at(params, {"position", "character"});
  if (!line || !character) {
    r.error(codes::invalid_params, (!line ? line : character).err().message);
    return;
  }
  int trigger = 2;
  if (const json* trigger_kind = jsonrpc::find_path(params, {"context", "triggerKind"})) {
    const json& kind = *trigger_kind;
    if (!kind.is_number_integer() || (kind != 1 && kind != 2)) {
      r.error(codes::invalid_params, "params.context.triggerKind: expected 1 (Invoked) or 2 (Automatic)");
      return;
    }
    trigger = kind.get<int>();
  }
  const std::string key = uri->get<std::string>();
  open_document* doc = docs_.find(key);
  if (doc == nullptr) {
    r.error(codes::invalid_params, "params.textDocument.uri: " + key + " is not open");
    return;
  }
  if (doc->out_of_sync) {
    r.error(codes::content_modified, "the server lost track of this document; reopen it");
    return;
  }
  const context::column_unit unit =
      server_.encoding() == position_encoding::utf8 ? context::column_unit::utf8 : context::column_unit::utf16;
  result<std::size_t> offset = doc->doc.offset_at({*line, *character}, unit);
  if (!offset) {
    r.error(codes::invalid_params, "params.position: " + offset.err().message);
    return;
  }

  // A newer request for the document cancels the one in flight.
  if (auto it = active_.find(key); it != active_.end()) it->second.request_stop();
  std::stop_source source;
  active_[key] = source;

  auto in = std::make_shared<job_input>();
  in->uri = key;
  in->position = params["position"];
  in->stop = source.get_token();
  in->request.path = doc->doc.path();
  in->request.lang = doc->doc.lang();
  in->request.text = doc->doc.text();
  in->request.cursor = *offset;
  in->request.alternatives = trigger == 1 ? 3 : 1;
  in->request.max_tokens = options_.max_tokens;
  // $/cancelRequest fires the reply's token: forward it to the document's source.
  auto forward = std::make_shared<std::stop_callback<std::function<void()>>>(r.stop(), [source]() mutable { source.request_stop(); });
  in->reply = std::shared_ptr<jsonrpc::reply>(new jsonrpc::reply(std::move(r)), [forward](jsonrpc::reply* p) { delete p; });

  service::inference_worker* worker = host_.worker();
  if (worker != nullptr && worker->state() == service::model_state::loading) {
    // A bounded wait for the load, off the I/O thread.
    std::erase_if(waiters_, [](std::jthread& t) { return !t.joinable(); });
    waiters_.emplace_back([this, in](std::stop_token) {
      if (result<void> ready = host_.wait_ready(options_.load_wait); !ready) {
        in->reply->error(codes::request_failed, ready.err().message);
        return;
      }
      run(in);
    });
    return;
  }
  if (result<void> ready = host_.wait_ready(std::chrono::milliseconds(0)); !ready) {
    in->reply->error(codes::request_failed, ready.err().message);
    return;
  }
  run(in);
}

void inline_completion::run(std::shared_ptr<job_input> in) {
  service::inference_worker* worker = host_.worker();
  if (worker == nullptr) {
    in->reply->error(codes::request_failed, "the server is shutting down");
    return;
  }
  worker->post(
      [this, in](engine::qwen3_next& model, engine::prefix_cache* cache) {
        if (in->stop.stop_requested()) {
          in->reply->error(codes::request_cancelled, "cancelled");
          return;
        }
        if (!service_) {
          result<std::unique_ptr<service::completion_service>> created =
              service::completion_service::create(model.weights_file().dir());
          if (!created) {
            in->reply->error(codes::request_failed, created.err().message);
            return;
          }
          service_ = std::move(created).value();
        }
        service::completion_request request = in->request;
        request.stop = in->stop;
        auto last_partial = std::chrono::steady_clock::now() - std::chrono::seconds(1);
        request.on_partial = [&](const std::string& text) {
          const auto now = std::chrono::steady_clock::now();
          if (now - last_partial >= std::chrono::milliseconds(50)) {
            last_partial = now;
            rpc_.notify("qcoder/inlineCompletionPartial",
                        {{"id", in->reply->id()}, {"uri", in->uri}, {"position", in->position}, {"text", text}});
          }
          return true;
        };
        const auto t0 = std::chrono::steady_clock::now();
        result<service::completion_result> done = service_->complete(model, cache, request);
        if (!done) {
          in->reply->error(codes::request_failed, done.err().message);
          return;
        }
        if (done->cancelled) {
          in->reply->error(codes::request_cancelled, "cancelled");
          return;
        }
        spdlog::debug("lsp: inline completion {} in {:.1f} ms: {} prompt tokens ({} cached), {} generated, {} items",
                      to_string(done->mode), std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
                      done->prompt_tokens, done->restored_tokens, done->generated_tokens, done->items.size());
        json items = json::array();
        for (const std::string& text : done->items) {
          items.push_back({{"insertText", text}, {"range", {{"start", in->position}, {"end", in->position}}}});
        }
        in->reply->result({{"items", std::move(items)}});
      },
      [in](const error& why) { in->reply->error(codes::request_failed, why.message); });
}

}  // namespace qcoder::lsp
