// Code actions: listing, resolving, commands.
#include "lsp/server/code_actions.h"

#include <future>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/server/positions.h"
#include "lsp/server/work_progress.h"

namespace qcoder::lsp {

using jsonrpc::json;
namespace codes = jsonrpc::codes;
using clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t max_fix_actions = 3;

bool kind_wanted(const json* only, std::string_view kind) {
  if (only == nullptr || !only->is_array() || only->empty()) return true;
  for (const json& o : *only) {
    if (!o.is_string()) continue;
    const std::string& want = o.get_ref<const std::string&>();
    if (kind == want || (kind.starts_with(want) && kind.size() > want.size() && kind[want.size()] == '.')) return true;
  }
  return false;
}

std::string first_line(std::string_view text, std::size_t max_chars) {
  std::string line(text.substr(0, text.find('\n')));
  if (line.size() > max_chars) {
    line.resize(max_chars);
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
    if (!line.empty() && static_cast<unsigned char>(line.back()) >= 0xC0) line.pop_back();
    line += "…";
  }
  return line;
}

}  // namespace

struct code_actions::edit_job {
  service::edit_request request;
  std::string uri;
  std::int64_t version = 0;
  std::shared_ptr<std::atomic<std::uint64_t>> changes;
  std::uint64_t changes_at_start = 0;
  context::column_unit unit = context::column_unit::utf16;
  bool versioned_edits = false;        // the client takes documentChanges
  std::optional<json> progress_token;  // the client's own (executeCommand's workDoneToken)
  bool server_progress = false;        // else: may we create one
  std::size_t context_tokens = 2048;
  std::string title;
  std::stop_token stop;
  std::function<void(const json& workspace_edit)> done;  // the edit, on the inference thread
  std::function<void(int code, const std::string& message)> failed;
};

code_actions::code_actions(jsonrpc::connection& rpc, const language_server& server, open_documents& docs,
                           model_host& host, const server_settings& settings, workspace_context* workspace,
                           std::chrono::milliseconds load_wait)
    : rpc_(rpc), server_(server), docs_(docs), host_(host), settings_(settings), workspace_(workspace), load_wait_(load_wait) {
  rpc_.on_request("textDocument/codeAction", [this](const json& p, jsonrpc::reply r) { on_code_action(p, std::move(r)); });
  rpc_.on_request("codeAction/resolve", [this](const json& p, jsonrpc::reply r) { on_resolve(p, std::move(r)); });
  rpc_.on_request("workspace/executeCommand", [this](const json& p, jsonrpc::reply r) { on_execute(p, std::move(r)); });
}

json code_actions::commands() {
  return json::array({"qcoder.applyAction", "qcoder.rewriteSelection", "qcoder.completeFunction",
                      "qcoder.addDocumentation", "qcoder.fixDiagnostic", "qcoder.status", "qcoder.refactorWorkspace"});
}

void code_actions::on_code_action(const json& params, jsonrpc::reply r) {
  const json* uri = jsonrpc::find_path(params, {"textDocument", "uri"});
  if (uri == nullptr || !uri->is_string()) return r.error(codes::invalid_params, "params.textDocument.uri: expected a string");
  const std::string key = uri->get<std::string>();
  open_document* doc = docs_.find(key);
  if (doc == nullptr) return r.error(codes::invalid_params, "params.textDocument.uri: " + key + " is not open");
  const context::column_unit unit = column_unit_of(server_);
  const json* range_json = jsonrpc::find_path(params, {"range"});
  result<std::pair<std::size_t, std::size_t>> range = range_of(doc->doc, range_json, "params.range", unit);
  if (!range) return r.error(codes::invalid_params, range.err().message);
  json actions = json::array();
  if (doc->out_of_sync || !settings_.enabled_for(doc->language_id)) return r.result(actions);

  const json* only = jsonrpc::find_path(params, {"context", "only"});
  const json* resolve_props = jsonrpc::find_path(server_.client(), {"capabilities", "textDocument", "codeAction", "resolveSupport", "properties"});
  const bool resolves = resolve_props != nullptr && resolve_props->is_array() &&
                        std::find(resolve_props->begin(), resolve_props->end(), json("edit")) != resolve_props->end();
  const auto add = [&](std::string title, std::string_view kind, json data, const json* diagnostic = nullptr) {
    if (!kind_wanted(only, kind)) return;
    data["uri"] = key;
    data["version"] = doc->version;
    json action = {{"title", title}, {"kind", kind}, {"data", data}};
    if (diagnostic != nullptr) action["diagnostics"] = json::array({*diagnostic});
    if (!resolves) action["command"] = {{"title", title}, {"command", "qcoder.applyAction"}, {"arguments", json::array({data})}};
    actions.push_back(std::move(action));
  };

  if (range->second > range->first) {
    add("qcoder: Rewrite selection", "refactor.rewrite",
        {{"kind", "rewrite"}, {"range", *range_json}, {"instruction", settings_.rewrite_instruction}});
  }
  // Complete / document the function under the cursor (asks the tree, not the model).
  service::edit_request probe;
  probe.begin = probe.end = range->first;
  const context::source_view view = doc->doc.view();
  for (service::edit_kind kind : {service::edit_kind::complete_body, service::edit_kind::document}) {
    probe.kind = kind;
    result<service::edit_target> target = service::find_edit_target(view, probe);
    if (!target) continue;
    const json cursor = (*range_json)["start"];
    add(fmt::format("qcoder: {} {}", kind == service::edit_kind::complete_body ? "Complete" : "Document", target->subject),
        "refactor.rewrite", {{"kind", to_string(kind)}, {"range", {{"start", cursor}, {"end", cursor}}}});
  }
  if (const json* diagnostics = jsonrpc::find_path(params, {"context", "diagnostics"}); diagnostics != nullptr && diagnostics->is_array()) {
    std::size_t added = 0;
    for (const json& d : *diagnostics) {
      const json* message = jsonrpc::find_path(d, {"message"});
      if (message == nullptr || !message->is_string() || !range_of(doc->doc, jsonrpc::find_path(d, {"range"}), "diagnostic", unit)) continue;
      if (added++ == max_fix_actions) break;
      add("qcoder: Fix: " + first_line(message->get<std::string>(), 80), "quickfix",
          {{"kind", "fix"}, {"range", d["range"]}, {"instruction", message->get<std::string>()}}, &d);
    }
  }
  r.result(std::move(actions));
}

result<std::shared_ptr<code_actions::edit_job>> code_actions::prepare(const json& data, const std::string& name) {
  if (!data.is_object()) return fail(errc::invalid_argument, "{}: expected an object", name);
  const json* uri = jsonrpc::find_path(data, {"uri"});
  if (uri == nullptr || !uri->is_string()) return fail(errc::invalid_argument, "{}.uri: expected a string", name);
  open_document* doc = docs_.find(uri->get<std::string>());
  if (doc == nullptr) return fail(errc::invalid_argument, "{}.uri: {} is not open", name, uri->get<std::string>());
  const json* kind_name = jsonrpc::find_path(data, {"kind"});
  std::optional<service::edit_kind> kind =
      kind_name != nullptr && kind_name->is_string() ? service::edit_kind_from(kind_name->get<std::string>()) : std::nullopt;
  if (!kind) return fail(errc::invalid_argument, "{}.kind: expected rewrite, complete, document or fix", name);
  if (const json* version = jsonrpc::find_path(data, {"version"}); version != nullptr) {
    if (!version->is_number_integer()) return fail(errc::invalid_argument, "{}.version: expected an integer", name);
    if (version->get<std::int64_t>() != doc->version) {
      return fail(errc::cancelled, "the document changed since the action was offered (version {}, now {})",
                  version->get<std::int64_t>(), doc->version);
    }
  }
  if (doc->out_of_sync) return fail(errc::cancelled, "the server lost track of this document; reopen it");
  const context::column_unit unit = column_unit_of(server_);
  QCODER_TRY(auto range, range_of(doc->doc, jsonrpc::find_path(data, {"range"}), name + ".range", unit));
  auto job = std::make_shared<edit_job>();
  job->request.kind = *kind;
  if (const json* instruction = jsonrpc::find_path(data, {"instruction"}); instruction != nullptr) {
    if (!instruction->is_string()) return fail(errc::invalid_argument, "{}.instruction: expected a string", name);
    job->request.instruction = instruction->get<std::string>();
  }
  if (*kind == service::edit_kind::rewrite && job->request.instruction.empty()) job->request.instruction = settings_.rewrite_instruction;
  job->request.path = workspace_ != nullptr ? workspace_->label(doc->doc.path()) : doc->doc.path();
  job->request.lang = doc->doc.lang();
  job->request.text = doc->doc.text();
  job->request.begin = range.first;
  job->request.end = range.second;
  job->request.max_tokens = settings_.edit_max_tokens;
  job->request.accept_incomplete = settings_.accept_incomplete_edits;
  // Check the target now, so a bad request fails before it waits for the model.
  QCODER_TRY(service::edit_target target, service::find_edit_target(doc->doc.view(), job->request));
  job->title = fmt::format("qcoder: {} {}", to_string(*kind), target.subject);
  job->uri = uri->get<std::string>();
  job->version = doc->version;
  job->changes = doc->changes;
  job->changes_at_start = doc->changes->load();
  job->unit = unit;
  const json* versioned = jsonrpc::find_path(server_.client(), {"capabilities", "workspace", "workspaceEdit", "documentChanges"});
  job->versioned_edits = versioned != nullptr && versioned->is_boolean() && versioned->get<bool>();
  job->server_progress = server_.client_supports_progress();
  job->context_tokens = settings_.context_tokens;
  return job;
}

namespace {
int code_for(const error& e) {
  switch (e.code) {
    case errc::invalid_argument: return codes::invalid_params;
    case errc::cancelled: return codes::content_modified;
    default: return codes::request_failed;
  }
}
}  // namespace

void code_actions::on_resolve(const json& params, jsonrpc::reply r) {
  const json* data = jsonrpc::find_path(params, {"data"});
  if (data == nullptr) return r.error(codes::invalid_params, "params.data: missing (not one of qcoder's actions)");
  result<std::shared_ptr<edit_job>> job = prepare(*data, "params.data");
  if (!job) return r.error(code_for(job.err()), job.err().message);
  auto reply = std::make_shared<jsonrpc::reply>(std::move(r));
  (*job)->stop = reply->stop();
  (*job)->done = [reply, action = params](const json& edit) mutable {
    action["edit"] = edit;
    reply->result(std::move(action));
  };
  (*job)->failed = [reply](int code, const std::string& message) { reply->error(code, message); };
  run(*job);
}

void code_actions::on_execute(const json& params, jsonrpc::reply r) {
  const json* command = jsonrpc::find_path(params, {"command"});
  if (command == nullptr || !command->is_string()) return r.error(codes::invalid_params, "params.command: expected a string");
  const std::string name = command->get<std::string>();
  if (const auto extra = extra_commands_.find(name); extra != extra_commands_.end()) return extra->second(params, std::move(r));
  const json* arguments = jsonrpc::find_path(params, {"arguments"});
  const json empty = json::object();
  const json& arg = arguments != nullptr && arguments->is_array() && !arguments->empty() ? (*arguments)[0] : empty;
  if (name == "qcoder.status") {
    json status = host_.status();
    if (workspace_ != nullptr && workspace_->index() != nullptr) {
      const context::index_stats s = workspace_->index()->stats();
      status["index"] = {{"files", s.files}, {"definitions", s.definitions}, {"bytes", s.bytes}, {"building", s.building}};
    }
    status["openDocuments"] = docs_.size();
    return r.result(std::move(status));
  }
  json data;
  if (name == "qcoder.applyAction") {
    data = arg;
  } else if (name == "qcoder.rewriteSelection") {
    data = {{"kind", "rewrite"}, {"uri", arg.value("uri", json())}, {"range", arg.value("range", json())}};
    if (arg.contains("instruction")) data["instruction"] = arg["instruction"];
  } else if (name == "qcoder.completeFunction" || name == "qcoder.addDocumentation") {
    const json position = arg.value("position", json());
    data = {{"kind", name == "qcoder.completeFunction" ? "complete" : "document"}, {"uri", arg.value("uri", json())},
            {"range", {{"start", position}, {"end", position}}}};
  } else if (name == "qcoder.fixDiagnostic") {
    const json* range = jsonrpc::find_path(arg, {"diagnostic", "range"});
    const json* message = jsonrpc::find_path(arg, {"diagnostic", "message"});
    data = {{"kind", "fix"}, {"uri", arg.value("uri", json())}, {"range", range ? *range : json()},
            {"instruction", message ? *message : json()}};
  } else {
    return r.error(codes::invalid_params, "params.command: unknown command " + name);
  }
  result<std::shared_ptr<edit_job>> job = prepare(data, "params.arguments[0]");
  if (!job) return r.error(code_for(job.err()), job.err().message);
  auto reply = std::make_shared<jsonrpc::reply>(std::move(r));
  (*job)->stop = reply->stop();
  if (const json* token = jsonrpc::find_path(params, {"workDoneToken"}); token != nullptr && (token->is_string() || token->is_number_integer())) {
    (*job)->progress_token = *token;
  }
  (*job)->done = [this, reply, label = (*job)->title](const json& edit) {
    rpc_.request("workspace/applyEdit", {{"label", label}, {"edit", edit}}, [reply](const json* result, const jsonrpc::rpc_error* e) {
      if (e != nullptr) return reply->error(codes::request_failed, "the editor did not apply the edit: " + e->message);
      json out = {{"applied", result != nullptr && result->value("applied", false)}};
      if (result != nullptr && result->contains("failureReason")) out["failureReason"] = (*result)["failureReason"];
      reply->result(std::move(out));
    });
  };
  (*job)->failed = [reply](int code, const std::string& message) { reply->error(code, message); };
  run(*job);
}

void code_actions::run(std::shared_ptr<edit_job> job) {
  host_.when_ready(load_wait_, [this, job](result<void> ready) {
    if (!ready) return job->failed(codes::request_failed, ready.err().message);
    post(job);
  });
}

void code_actions::post(std::shared_ptr<edit_job> job) {
  service::inference_worker* worker = host_.worker();
  if (worker == nullptr) return job->failed(codes::request_failed, "the server is shutting down");
  const std::uint64_t progress_id = next_progress_++;
  worker->post(
      [this, job, progress_id](service::loaded_engine& engine) {
        if (job->stop.stop_requested()) return job->failed(codes::request_cancelled, "cancelled");
        context::prompt_options prompt;
        prompt.budget_tokens = job->context_tokens;
        result<model_host::job_tools> tools = host_.tools(engine, prompt);
        if (!tools) return job->failed(codes::request_failed, tools.err().message);

        work_progress progress(rpc_, job->progress_token, job->server_progress, fmt::format("qcoder/edit/{}", progress_id));
        progress.begin(job->title, false);
        service::edit_request request = job->request;
        request.stop = job->stop;
        request.on_progress = [&](std::size_t generated) { progress.report(fmt::format("{} tokens", generated)); };
        host_.job_started();
        result<service::edit_result> done = tools->assistant->edits->edit(*tools->backend, request);
        if (done) {
          host_.job_finished(*tools->backend, {done->prompt_tokens, done->restored_tokens, done->generated_tokens,
                                               done->prefill_seconds, done->decode_seconds});
        } else {
          host_.job_finished(*tools->backend, {}, &done.err());
        }
        progress.end(done ? "done" : "failed");
        if (!done) return job->failed(codes::request_failed, done.err().message);
        if (done->cancelled) return job->failed(codes::request_cancelled, "cancelled");
        if (job->changes->load() != job->changes_at_start) {
          return job->failed(codes::content_modified, "the document changed while the edit was being made; try again");
        }
        // Positions of the old text (the snapshot the edit was made on).
        context::document before(job->request.path, std::nullopt, job->request.text);
        json edits = json::array();
        for (const service::text_replacement& e : done->edits) {
          result<json> start = position_json(before, e.begin, job->unit);
          result<json> end = position_json(before, e.end, job->unit);
          if (!start || !end) return job->failed(codes::internal_error, "an edit does not fall on character boundaries");
          edits.push_back({{"range", {{"start", *start}, {"end", *end}}}, {"newText", e.text}});
        }
        spdlog::debug("lsp: {}: {} prompt tokens ({} cached), {} generated, {} text edits", job->title, done->prompt_tokens,
                      done->restored_tokens, done->generated_tokens, edits.size());
        if (job->versioned_edits) {
          job->done({{"documentChanges", json::array({{{"textDocument", {{"uri", job->uri}, {"version", job->version}}}, {"edits", edits}}})}});
        } else {
          job->done({{"changes", {{job->uri, edits}}}});
        }
      },
      [job](const error& why) { job->failed(codes::request_failed, why.message); });
}

}  // namespace qcoder::lsp
