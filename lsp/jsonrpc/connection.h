// JSON-RPC 2.0 over whole message bodies (framing is the transport's job): one handler per method in one
// table, replies from any thread through a reply-once object, cancellation of in-flight requests, and the
// spec's error replies for what a client gets wrong.
//
// - A body that is not JSON: -32700 (id null). Not a request, notification or response: -32600.
// - Unknown request method: -32601. Unknown notification: ignored (the spec says so; `$/` ones too).
// - `$/cancelRequest {id}`: the request's stop_token fires; its handler replies -32800 (or its result, if
//   it had finished). A handler that drops its reply without answering sends -32603, so a client never
//   waits forever; a second answer is dropped and logged.
// - A gate (set by the server) can refuse requests by method, e.g. before `initialize` (-32002).
//
// Thread-safety: receive() is called by the I/O thread; reply objects, notify() and request() may be used
// from any thread (send must be thread-safe, as the transport's single writer queue is).
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qcoder::jsonrpc {

using json = nlohmann::json;

namespace codes {
constexpr int parse_error = -32700;
constexpr int invalid_request = -32600;
constexpr int method_not_found = -32601;
constexpr int invalid_params = -32602;
constexpr int internal_error = -32603;
constexpr int server_not_initialized = -32002;
constexpr int request_cancelled = -32800;
constexpr int content_modified = -32801;
constexpr int request_failed = -32803;
}  // namespace codes

struct rpc_error {
  int code = codes::internal_error;
  std::string message;
};

using send_fn = std::function<void(std::string body)>;

// The value at `path` (object keys from `root`), or nullptr when a step is missing or not an object: how
// handlers read optional fields of params without exceptions.
const json* find_path(const json& root, std::initializer_list<const char*> path);

// The right to answer one request, exactly once. Move-only.
class reply {
 public:
  struct state;  // shared with the connection; defined in connection.cpp

  reply(reply&&) noexcept = default;
  reply& operator=(reply&&) noexcept = default;
  ~reply();

  void result(json value);
  void error(int code, std::string message);
  void error(const rpc_error& e) { error(e.code, e.message); }
  // Fires when the client cancels the request (or the server shuts down).
  std::stop_token stop() const;
  const json& id() const;

 private:
  friend class connection;
  explicit reply(std::shared_ptr<state> s) : state_(std::move(s)) {}
  std::shared_ptr<state> state_;
};

class connection {
 public:
  using request_handler = std::function<void(const json& params, reply r)>;
  using notification_handler = std::function<void(const json& params)>;
  using gate_fn = std::function<std::optional<rpc_error>(std::string_view method)>;

  explicit connection(send_fn send);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void on_request(std::string method, request_handler handler);
  void on_notification(std::string method, notification_handler handler);
  void set_gate(gate_fn gate) { gate_ = std::move(gate); }

  // Handles one message body.
  void receive(std::string_view body);
  // A reply to a message whose body could not even be framed (a transport error): -32700 with id null.
  void reject_frame(std::string_view why);

  void notify(std::string_view method, json params);
  // A request to the client; `on_response` gets the result or the error (on the I/O thread).
  void request(std::string_view method, json params, std::function<void(const json* result, const rpc_error* error)> on_response);

  // Stops every request in flight (e.g. at shutdown or exit).
  void cancel_all();
  std::size_t in_flight() const;

 private:
  void send_error(const json& id, int code, std::string_view message);

  // What replies need, shared with them: they may outlive the connection (a handler still running on the
  // inference thread at exit). `send` must stay callable as long as replies exist (the transport drops
  // what arrives after it closed).
  struct core {
    send_fn send;
    std::mutex mutex;
    std::map<std::string, std::stop_source> running;  // requests in flight, by id.dump()
  };
  friend struct reply::state;

  std::shared_ptr<core> core_;
  std::map<std::string, request_handler, std::less<>> requests_;
  std::map<std::string, notification_handler, std::less<>> notifications_;
  gate_fn gate_;
  std::mutex awaiting_mutex_;
  std::map<std::string, std::function<void(const json*, const rpc_error*)>> awaiting_;  // our requests, by id
  std::int64_t next_id_ = 1;
};

}  // namespace qcoder::jsonrpc
