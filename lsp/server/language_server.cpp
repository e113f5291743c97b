// Lifecycle and capabilities.
#include "lsp/server/language_server.h"

#include <spdlog/spdlog.h>

#include "lsp/version.h"

namespace qcoder::lsp {

using jsonrpc::json;
namespace codes = jsonrpc::codes;

language_server::language_server(jsonrpc::connection& rpc) : rpc_(rpc) {
  rpc_.set_gate([this](std::string_view method) -> std::optional<jsonrpc::rpc_error> {
    if (method == "initialize") {
      if (initialized_) return jsonrpc::rpc_error{codes::invalid_request, "initialize was already received"};
      return std::nullopt;
    }
    if (!initialized_) return jsonrpc::rpc_error{codes::server_not_initialized, "the server is not initialized yet"};
    if (shut_down_) return jsonrpc::rpc_error{codes::invalid_request, "the server is shutting down"};
    return std::nullopt;
  });
  rpc_.on_request("initialize", [this](const json& params, jsonrpc::reply r) { on_initialize(params, std::move(r)); });
  rpc_.on_notification("initialized", [this](const json&) {
    spdlog::debug("lsp: client initialized");
    if (initialized_ && on_initialized_) on_initialized_();
  });
  rpc_.on_request("shutdown", [this](const json&, jsonrpc::reply r) {
    shut_down_ = true;
    rpc_.cancel_all();
    if (on_shutdown_) {
      on_shutdown_(std::move(r));
    } else {
      r.result(nullptr);
    }
  });
  rpc_.on_notification("exit", [this](const json&) {
    rpc_.cancel_all();
    exit_code_ = shut_down_ ? 0 : 1;
  });
}

void language_server::on_initialize(const json& params, jsonrpc::reply r) {
  if (!params.is_object()) {
    r.error(codes::invalid_params, "params: expected an object");
    return;
  }
  client_ = params;
  // UTF-8 positions when the client offers them (no conversion at all), UTF-16 otherwise (the default).
  encoding_ = position_encoding::utf16;
  const json* offered = jsonrpc::find_path(params, {"capabilities", "general", "positionEncodings"});
  if (offered != nullptr && offered->is_array()) {
    for (const json& e : *offered) {
      if (e == "utf-8") encoding_ = position_encoding::utf8;
    }
  }
  initialized_ = true;
  if (on_initialize_) on_initialize_(params);
  r.result(json{{"capabilities", capabilities()},
                {"serverInfo", {{"name", "qcoder"}, {"version", std::string(version_string)}}}});
}

bool language_server::client_supports_progress() const {
  const json* c = jsonrpc::find_path(client_, {"capabilities", "window", "workDoneProgress"});
  return c != nullptr && c->is_boolean() && c->get<bool>();
}

json language_server::capabilities() const {
  json c = {{"positionEncoding", encoding_ == position_encoding::utf8 ? "utf-8" : "utf-16"},
            {"textDocumentSync", {{"openClose", true}, {"change", 2}, {"save", {{"includeText", false}}}}}};
  c.merge_patch(extra_capabilities_);
  return c;
}

}  // namespace qcoder::lsp
