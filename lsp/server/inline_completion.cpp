// Inline completion requests.
#include "lsp/server/inline_completion.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "lsp/server/positions.h"

namespace qcoder::lsp {

using jsonrpc::json;
namespace codes = jsonrpc::codes;
using clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t typing_history = 16;                     // pauses remembered per document
constexpr auto longest_typing_pause = std::chrono::milliseconds(1500);  // longer ones are not typing
constexpr auto partial_interval = std::chrono::milliseconds(50);
}  // namespace

struct inline_completion::job_input {
  std::shared_ptr<jsonrpc::reply> reply;
  std::stop_token stop;  // the per-document source: a newer request or $/cancelRequest
  service::completion_request request;
  server_settings settings;
  std::string uri;
  json position;
  json range_start;          // where the items' range starts (the selected item's start, or the position)
  std::string item_prefix;   // the selected item's text, which every item starts with
  completion_timing timing;
};

inline_completion::inline_completion(jsonrpc::connection& rpc, const language_server& server, open_documents& docs,
                                     model_host& host, const server_settings& settings, workspace_context* workspace,
                                     inline_completion_options options)
    : rpc_(rpc), server_(server), docs_(docs), host_(host), settings_(settings), workspace_(workspace), options_(options) {
  rpc_.on_request("textDocument/inlineCompletion", [this](const json& params, jsonrpc::reply r) {
    on_request(params, std::move(r));
  });
  // An edit makes the completion in flight for that document stale.
  docs_.add_listener([this](const document_event& e) {
    if (e.what == document_event::kind::opened) return;
    if (auto it = active_.find(e.uri); it != active_.end() && e.what != document_event::kind::saved) {
      it->second.request_stop();
      active_.erase(it);
    }
    if (e.what == document_event::kind::closed) typing_.erase(e.uri);
  });
}

inline_completion::~inline_completion() { stop(); }

void inline_completion::stop() {
  for (auto& [uri, source] : active_) source.request_stop();
  active_.clear();
  debounced_.stop();  // runs what was pending: each sees its stop and answers
}

std::chrono::milliseconds inline_completion::debounce_for(const std::string& uri) const {
  const std::chrono::milliseconds cap = settings_.debounce;
  auto it = typing_.find(uri);
  if (it == typing_.end() || it->second.intervals.size() < 3) return cap / 2;
  std::vector<std::chrono::milliseconds> sorted(it->second.intervals.begin(), it->second.intervals.end());
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
  // A little longer than the usual pause: a keystroke that is coming usually comes by then.
  return std::min(cap, sorted[sorted.size() / 2] * 5 / 4);
}

void inline_completion::on_request(const json& params, jsonrpc::reply r) {
  const clock::time_point received = clock::now();
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) {
    r.error(codes::invalid_params, "params.textDocument.uri: expected a string");
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
  const context::column_unit unit = column_unit_of(server_);
  result<std::size_t> offset = offset_of(doc->doc, jsonrpc::find_path(params, {"position"}), "params.position", unit);
  if (!offset) {
    r.error(codes::invalid_params, offset.err().message);
    return;
  }
  if (doc->out_of_sync) {
    r.error(codes::content_modified, "the server lost track of this document; reopen it");
    return;
  }
  auto in = std::make_shared<job_input>();
  in->timing.received = received;
  in->settings = settings_;
  in->uri = key;
  in->position = params["position"];
  in->range_start = in->position;
  in->request.text = doc->doc.text();
  in->request.cursor = *offset;
  // The suggest widget's selected item: complete as if it were accepted.
  if (const json* selected = jsonrpc::find_path(params, {"context", "selectedCompletionInfo"}); selected != nullptr && !selected->is_null()) {
    result<std::pair<std::size_t, std::size_t>> range =
        range_of(doc->doc, jsonrpc::find_path(*selected, {"range"}), "params.context.selectedCompletionInfo.range", unit);
    const json* text = jsonrpc::find_path(*selected, {"text"});
    if (!range || text == nullptr || !text->is_string()) {
      r.error(codes::invalid_params, !range ? range.err().message : "params.context.selectedCompletionInfo.text: expected a string");
      return;
    }
    if (range->second != *offset || doc->doc.line_of(range->first) != doc->doc.line_of(*offset)) {
      r.error(codes::invalid_params, "params.context.selectedCompletionInfo.range: must end at the position, on its line");
      return;
    }
    in->item_prefix = text->get<std::string>();
    in->request.text.replace(range->first, range->second - range->first, in->item_prefix);
    in->request.cursor = range->first + in->item_prefix.size();
    in->range_start = (*selected)["range"]["start"];
  }
  if (!settings_.enabled_for(doc->language_id)) {
    r.result({{"items", json::array()}});
    return;
  }
  if (workspace_ != nullptr) {
    workspace_->viewed(key, *doc, doc->doc.line_of(*offset));
    in->request.path = workspace_->label(doc->doc.path());
    in->request.index = workspace_->index();
    in->request.recent = &workspace_->recent();
  } else {
    in->request.path = doc->doc.path();
  }
  in->request.lang = doc->doc.lang();
  in->request.alternatives = trigger == 1 ? 3 : 1;
  in->request.max_tokens = settings_.max_tokens;

  // A newer request for the document cancels the one in flight.
  if (auto it = active_.find(key); it != active_.end()) it->second.request_stop();
  std::stop_source source;
  active_[key] = source;
  in->stop = source.get_token();
  // $/cancelRequest fires the reply's token: forward it to the document's source.
  auto forward = std::make_shared<std::stop_callback<std::function<void()>>>(r.stop(), [source]() mutable { source.request_stop(); });
  in->reply = std::shared_ptr<jsonrpc::reply>(new jsonrpc::reply(std::move(r)), [forward](jsonrpc::reply* p) { delete p; });

  // Typing rhythm, and the debounce it earns.
  if (trigger == 2) {
    typing& t = typing_[key];
    in->timing.debounce = debounce_for(key);
    if (t.last.time_since_epoch().count() != 0 && received - t.last < longest_typing_pause) {
      t.intervals.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(received - t.last));
      if (t.intervals.size() > typing_history) t.intervals.pop_front();
    }
    t.last = received;
  }
  if (in->timing.debounce.count() > 0) {
    debounced_.schedule(received + in->timing.debounce, in->stop, [this, in] { start(in); });
  } else {
    start(in);
  }
}

// After the debounce (on the timer thread, or the I/O thread without one).
void inline_completion::start(std::shared_ptr<job_input> in) {
  if (in->stop.stop_requested()) {
    in->reply->error(codes::request_cancelled, "cancelled");
    return;
  }
  // A bounded wait while the model loads (off the I/O thread).
  host_.when_ready(options_.load_wait, [this, in](result<void> ready) {
    if (!ready) return in->reply->error(codes::request_failed, ready.err().message);
    run(in);
  });
}

void inline_completion::run(std::shared_ptr<job_input> in) {
  service::inference_worker* worker = host_.worker();
  if (worker == nullptr) {
    in->reply->error(codes::request_failed, "the server is shutting down");
    return;
  }
  worker->post(
      [this, in](service::loaded_engine& engine) {
        in->timing.started = clock::now();
        const auto finish = [&] {
          in->timing.replied = clock::now();
          if (on_timing_) on_timing_(in->timing);
        };
        if (in->stop.stop_requested()) {
          in->reply->error(codes::request_cancelled, "cancelled");
          return finish();
        }
        context::prompt_options prompt;
        prompt.budget_tokens = in->settings.context_tokens;
        result<model_host::job_tools> tools = host_.tools(engine, prompt);
        if (!tools) {
          in->reply->error(codes::request_failed, tools.err().message);
          return finish();
        }
        host_.job_started();
        service::completion_request request = in->request;
        request.stop = in->stop;
        request.on_prompt = [&] { in->timing.prompt_ready = clock::now(); };
        auto last_partial = clock::now() - std::chrono::seconds(1);
        request.on_partial = [&](const std::string& text) {
          const auto now = clock::now();
          if (in->timing.first_token.time_since_epoch().count() == 0) in->timing.first_token = now;
          if (now - last_partial >= partial_interval) {
            last_partial = now;
            rpc_.notify("qcoder/inlineCompletionPartial", {{"id", in->reply->id()},
                                                            {"uri", in->uri},
                                                            {"position", in->position},
                                                            {"text", in->item_prefix + text}});
            if (in->timing.first_partial.time_since_epoch().count() == 0) in->timing.first_partial = clock::now();
          }
          return true;
        };
        result<service::completion_result> done = tools->assistant->completions->complete(*tools->backend, request);
        if (done) {
          host_.job_finished(*tools->backend, {done->prompt_tokens, done->restored_tokens, done->generated_tokens,
                                               done->prefill_seconds, done->decode_seconds});
        } else {
          host_.job_finished(*tools->backend, {}, &done.err());
        }
        if (!done) {
          in->reply->error(codes::request_failed, done.err().message);
          return finish();
        }
        if (done->cancelled) {
          in->reply->error(codes::request_cancelled, "cancelled");
          return finish();
        }
        spdlog::debug("lsp: inline completion {} in {:.1f} ms: {} prompt tokens ({} cached), {} generated, {} items",
                      to_string(done->mode),
                      std::chrono::duration<double, std::milli>(clock::now() - in->timing.received).count(),
                      done->prompt_tokens, done->restored_tokens, done->generated_tokens, done->items.size());
        json items = json::array();
        for (const std::string& text : done->items) {
          items.push_back({{"insertText", in->item_prefix + text}, {"range", {{"start", in->range_start}, {"end", in->position}}}});
        }
        in->reply->result({{"items", std::move(items)}});
        finish();
      },
      [in](const error& why) { in->reply->error(codes::request_failed, why.message); });
}

}  // namespace qcoder::lsp
