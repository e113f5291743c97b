// The refactor command over LSP.
#include "lsp/server/refactor_workspace.h"

#include <filesystem>
#include <map>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/server/positions.h"
#include "lsp/server/work_progress.h"
#include "service/refactor.h"
#include "service/text_diff.h"

namespace qcoder::lsp {
namespace {
using jsonrpc::json;
namespace codes = jsonrpc::codes;
namespace fs = std::filesystem;

// An open document under the workspace, as it was when the command arrived.
struct open_snapshot {
  std::string uri;
  std::int64_t version = 0;
  std::shared_ptr<std::atomic<std::uint64_t>> changes;
  std::uint64_t changes_at_start = 0;
};

result<std::vector<std::string>> string_list(const json& arg, const char* key) {
  std::vector<std::string> out;
  const auto it = arg.find(key);
  if (it == arg.end() || it->is_null()) return out;
  if (!it->is_array()) return fail(errc::invalid_argument, "params.arguments[0].{}: expected an array of strings", key);
  for (const json& v : *it) {
    if (!v.is_string()) return fail(errc::invalid_argument, "params.arguments[0].{}: expected an array of strings", key);
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

refactor_workspace::refactor_workspace(jsonrpc::connection& rpc, const language_server& server, open_documents& docs,
                                       model_host& host, const server_settings& settings, workspace_context& workspace,
                                       std::chrono::milliseconds load_wait)
    : rpc_(rpc), server_(server), docs_(docs), host_(host), settings_(settings), workspace_(workspace), load_wait_(load_wait) {}

void refactor_workspace::run(const json& params, jsonrpc::reply r) {
  const json* arguments = jsonrpc::find_path(params, {"arguments"});
  const json arg = arguments != nullptr && arguments->is_array() && !arguments->empty() ? (*arguments)[0] : json();
  if (!arg.is_object() || !arg.contains("instruction") || !arg["instruction"].is_string() ||
      arg["instruction"].get_ref<const std::string&>().find_first_not_of(" \t\r\n") == std::string::npos) {
    return r.error(codes::invalid_params, "params.arguments[0].instruction: expected a non-empty string");
  }
  if (!workspace_.root()) return r.error(codes::request_failed, "no workspace folder: open a folder to refactor it");
  auto options = std::make_shared<service::refactor_options>();
  options->instruction = arg["instruction"].get<std::string>();
  result<std::vector<std::string>> include = string_list(arg, "include");
  result<std::vector<std::string>> exclude = string_list(arg, "exclude");
  if (!include) return r.error(codes::invalid_params, include.err().message);
  if (!exclude) return r.error(codes::invalid_params, exclude.err().message);
  options->walk.include = std::move(*include);
  options->walk.exclude = std::move(*exclude);
  if (const auto c = arg.find("checkRelevance"); c != arg.end()) {
    if (!c->is_boolean()) return r.error(codes::invalid_params, "params.arguments[0].checkRelevance: expected a boolean");
    options->check_relevance = c->get<bool>();
  }
  std::size_t jobs = 1;
  if (const auto j = arg.find("jobs"); j != arg.end()) {
    if (!j->is_number_integer() || j->get<std::int64_t>() < 1 || j->get<std::int64_t>() > 64) {
      return r.error(codes::invalid_params, "params.arguments[0].jobs: expected an integer in 1..64");
    }
    jobs = j->get<std::size_t>();
  }
  options->accept_incomplete = settings_.accept_incomplete_edits;

  // The editor's texts of the documents under the workspace (they win over the files on disk).
  const fs::path root = *workspace_.root();
  auto open = std::make_shared<std::map<std::string, open_snapshot>>();
  docs_.for_each([&](const std::string& uri, const open_document& doc) {
    const std::optional<std::string> path = uri_to_path(uri);
    if (!path || doc.out_of_sync) return;
    const fs::path rel = fs::path(*path).lexically_relative(root);
    if (rel.empty() || rel.native().starts_with("..")) return;
    options->overlay[rel.generic_string()] = doc.doc.text();
    (*open)[rel.generic_string()] = {uri, doc.version, doc.changes, doc.changes->load()};
  });
  const context::column_unit unit = column_unit_of(server_);
  const json* versioned = jsonrpc::find_path(server_.client(), {"capabilities", "workspace", "workspaceEdit", "documentChanges"});
  const bool document_changes = versioned != nullptr && versioned->is_boolean() && versioned->get<bool>();
  std::optional<json> client_token;
  if (const json* t = jsonrpc::find_path(params, {"workDoneToken"}); t != nullptr && (t->is_string() || t->is_number_integer())) {
    client_token = *t;
  }
  const bool may_create = server_.client_supports_progress();
  const std::uint64_t progress_id = next_progress_++;
  auto reply = std::make_shared<jsonrpc::reply>(std::move(r));

  host_.when_ready(load_wait_, [=, this](result<void> ready) {
    if (!ready) return reply->error(codes::request_failed, ready.err().message);
    service::inference_worker* worker = host_.worker();
    if (worker == nullptr) return reply->error(codes::request_failed, "the server is shutting down");
    worker->post(
        [=, this](service::loaded_engine& engine) {
          if (reply->stop().stop_requested()) return reply->error(codes::request_cancelled, "cancelled");
          result<model_host::job_tools> tools = host_.tools(engine, {});
          if (!tools) return reply->error(codes::request_failed, tools.err().message);
          work_progress progress(rpc_, client_token, may_create, fmt::format("qcoder/refactor/{}", progress_id));
          progress.begin("qcoder: refactor", false);
          std::unique_ptr<service::unit_rewriter> rewriter;
          if (tools->local != nullptr) {
            rewriter = std::make_unique<service::model_rewriter>(*tools->tokenizer, *tools->local, service::rewriter_options{.jobs = jobs});
          } else {
            rewriter = std::make_unique<service::backend_rewriter>(*tools->tokenizer, *tools->backend, service::rewriter_options{.jobs = jobs});
          }
          std::vector<service::file_change> changes;
          service::refactor_callbacks callbacks;
          callbacks.on_progress = [&](const service::refactor_stats& s, std::string_view path) {
            const int percent = s.files == 0 ? 100 : static_cast<int>(100 * s.files_done / s.files);
            progress.report(fmt::format("{}/{} files, {} units changed: {}", s.files_done, s.files, s.units_changed, path), percent);
          };
          callbacks.on_file = [&](const service::file_change& c) -> result<void> {
            changes.push_back(c);
            return ok();
          };
          host_.job_started();
          result<service::refactor_stats> stats = service::run_refactor(root, *options, *rewriter, callbacks, reply->stop());
          rewriter.reset();
          host_.job_finished(*tools->backend,
                             stats ? job_figures{stats->prompt_tokens, stats->restored_tokens, stats->generated_tokens, 0, stats->seconds}
                                   : job_figures{},
                             stats ? nullptr : &stats.err());
          progress.end(stats ? fmt::format("{} files changed", changes.size()) : "failed");
          if (!stats) return reply->error(codes::request_failed, stats.err().message);
          if (stats->cancelled && reply->stop().stop_requested()) return reply->error(codes::request_cancelled, "cancelled");

          // One workspace edit: minimal TextEdits per file, positions in the text the refactor read.
          json document_edits = json::array();
          json by_uri = json::object();
          json skipped = json::array();
          std::size_t units_changed = 0;
          for (const service::file_change& c : changes) {
            const auto was_open = open->find(c.path);
            if (was_open != open->end() && was_open->second.changes->load() != was_open->second.changes_at_start) {
              skipped.push_back(c.path);  // edited meanwhile: an edit made from the old text would be wrong
              continue;
            }
            const context::document before(c.path, std::nullopt, c.original);
            json edits = json::array();
            for (const service::text_replacement& e : service::diff_texts(c.original, c.updated)) {
              result<json> start = position_json(before, e.begin, unit);
              result<json> end = position_json(before, e.end, unit);
              if (!start || !end) return reply->error(codes::internal_error, "an edit does not fall on character boundaries");
              edits.push_back({{"range", {{"start", *start}, {"end", *end}}}, {"newText", e.text}});
            }
            const std::string uri = was_open != open->end() ? was_open->second.uri : path_to_uri((root / c.path).string());
            const json version = was_open != open->end() ? json(was_open->second.version) : json(nullptr);
            document_edits.push_back({{"textDocument", {{"uri", uri}, {"version", version}}}, {"edits", edits}});
            by_uri[uri] = edits;
            units_changed += c.units_changed;
          }
          json summary = {{"files", document_edits.size()},        {"skipped", skipped},
                          {"unitsChanged", units_changed},         {"unitsRewritten", stats->units_rewritten},
                          {"seconds", stats->seconds},             {"stopped", stats->cancelled}};
          if (document_edits.empty()) {
            summary["applied"] = false;
            return reply->result(std::move(summary));
          }
          const json edit = document_changes ? json{{"documentChanges", document_edits}} : json{{"changes", by_uri}};
          rpc_.request("workspace/applyEdit", {{"label", "qcoder: refactor"}, {"edit", edit}},
                       [reply, summary](const json* result, const jsonrpc::rpc_error* e) mutable {
                         if (e != nullptr) return reply->error(codes::request_failed, "the editor did not apply the edit: " + e->message);
                         summary["applied"] = result != nullptr && result->value("applied", false);
                         if (result != nullptr && result->contains("failureReason")) summary["failureReason"] = (*result)["failureReason"];
                         reply->result(std::move(summary));
                       });
        },
        [reply](const error& why) { reply->error(codes::request_failed, why.message); });
  });
}

}  // namespace qcoder::lsp
