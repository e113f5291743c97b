// JSON-RPC dispatch, replies and cancellation.
#include "lsp/jsonrpc/connection.h"

#include <atomic>

#include <spdlog/spdlog.h>

namespace qcoder::jsonrpc {
namespace {

json error_body(const json& id, int code, std::string_view message) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

bool valid_id(const json& id) { return id.is_number_integer() || id.is_string(); }

}  // namespace

const json* find_path(const json& root, std::initializer_list<const char*> path) {
  const json* at = &root;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

struct reply::state {
  std::shared_ptr<connection::core> core;
  json id;
  std::string key;  // id.dump()
  std::string method;
  std::stop_token stop;
  std::atomic<bool> answered{false};

  void send(json body) {
    if (answered.exchange(true)) {
      spdlog::warn("jsonrpc: second answer to {} request {} dropped", method, key);
      return;
    }
    {
      std::lock_guard lock(core->mutex);
      core->running.erase(key);
    }
    core->send(body.dump(-1, ' ', false, json::error_handler_t::replace));
  }
};

reply::~reply() {
  if (state_ && !state_->answered.load()) {
    state_->send(error_body(state_->id, codes::internal_error, "the server dropped this request without an answer"));
  }
}

void reply::result(json value) {
  state_->send(json{{"jsonrpc", "2.0"}, {"id", state_->id}, {"result", std::move(value)}});
}

void reply::error(int code, std::string message) { state_->send(error_body(state_->id, code, message)); }

std::stop_token reply::stop() const { return state_->stop; }

const json& reply::id() const { return state_->id; }

connection::connection(send_fn send) : core_(std::make_shared<core>()) { core_->send = std::move(send); }

connection::~connection() { cancel_all(); }

void connection::on_request(std::string method, request_handler handler) { requests_[std::move(method)] = std::move(handler); }

void connection::on_notification(std::string method, notification_handler handler) {
  notifications_[std::move(method)] = std::move(handler);
}

void connection::send_error(const json& id, int code, std::string_view message) {
  core_->send(error_body(id, code, message).dump(-1, ' ', false, json::error_handler_t::replace));
}

void connection::reject_frame(std::string_view why) { send_error(nullptr, codes::parse_error, why); }

void connection::receive(std::string_view body) {
  json message = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    send_error(nullptr, codes::parse_error, "the message is not valid JSON");
    return;
  }
  if (!message.is_object() || message.value("jsonrpc", json()) != "2.0") {
    send_error(message.is_object() && message.contains("id") && valid_id(message["id"]) ? message["id"] : json(nullptr),
               codes::invalid_request, "not a JSON-RPC 2.0 message");
    return;
  }
  const bool has_id = message.contains("id");
  const json id = has_id ? message["id"] : json(nullptr);
  if (has_id && !valid_id(id) && !id.is_null()) {
    send_error(nullptr, codes::invalid_request, "the id must be an integer or a string");
    return;
  }
  const auto method_it = message.find("method");
  if (method_it == message.end()) {
    // A response to one of our requests.
    if (!has_id || (!message.contains("result") && !message.contains("error"))) {
      send_error(nullptr, codes::invalid_request, "neither a request, a notification nor a response");
      return;
    }
    std::function<void(const json*, const rpc_error*)> callback;
    {
      std::lock_guard lock(awaiting_mutex_);
      auto it = awaiting_.find(id.dump());
      if (it == awaiting_.end()) {
        spdlog::debug("jsonrpc: response to unknown request {}", id.dump());
        return;
      }
      callback = std::move(it->second);
      awaiting_.erase(it);
    }
    if (message.contains("error")) {
      const json& e = message["error"];
      const rpc_error err{e.is_object() ? e.value("code", codes::internal_error) : codes::internal_error,
                          e.is_object() ? e.value("message", std::string()) : std::string()};
      callback(nullptr, &err);
    } else {
      callback(&message["result"], nullptr);
    }
    return;
  }
  if (!method_it->is_string()) {
    send_error(has_id ? id : json(nullptr), codes::invalid_request, "the method must be a string");
    return;
  }
  const std::string method = method_it->get<std::string>();
  static const json no_params = json::object();
  const json& params = message.contains("params") ? message["params"] : no_params;
  if (!params.is_object() && !params.is_array()) {
    if (has_id) send_error(id, codes::invalid_params, "params must be an object or an array");
    return;
  }

  if (!has_id) {  // notification
    if (method == "$/cancelRequest") {
      const json target = params.is_object() ? params.value("id", json()) : json();
      std::lock_guard lock(core_->mutex);
      if (auto it = core_->running.find(target.dump()); it != core_->running.end()) it->second.request_stop();
      return;
    }
    if (auto it = notifications_.find(method); it != notifications_.end()) it->second(params);
    return;
  }
  if (gate_) {
    if (std::optional<rpc_error> refused = gate_(method)) {
      send_error(id, refused->code, refused->message);
      return;
    }
  }
  auto it = requests_.find(method);
  if (it == requests_.end()) {
    send_error(id, codes::method_not_found, "unknown method " + method);
    return;
  }
  auto s = std::make_shared<reply::state>();
  s->core = core_;
  s->id = id;
  s->key = id.dump();
  s->method = method;
  {
    std::lock_guard lock(core_->mutex);
    if (core_->running.count(s->key) != 0) {
      send_error(id, codes::invalid_request, "a request with this id is already running");
      return;
    }
    s->stop = core_->running[s->key].get_token();
  }
  it->second(params, reply(std::move(s)));
}

void connection::notify(std::string_view method, json params) {
  core_->send(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}}.dump(
      -1, ' ', false, json::error_handler_t::replace));
}

void connection::request(std::string_view method, json params,
                         std::function<void(const json* result, const rpc_error* error)> on_response) {
  json id;
  {
    std::lock_guard lock(awaiting_mutex_);
    id = "qcoder-" + std::to_string(next_id_++);
    awaiting_[id.dump()] = std::move(on_response);
  }
  core_->send(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}.dump(
      -1, ' ', false, json::error_handler_t::replace));
}

void connection::cancel_all() {
  std::lock_guard lock(core_->mutex);
  for (auto& [key, source] : core_->running) source.request_stop();
}

std::size_t connection::in_flight() const {
  std::lock_guard lock(core_->mutex);
  return core_->running.size();
}

}  // namespace qcoder::jsonrpc
