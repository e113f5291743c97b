// A scripted LSP client for in-process transcript tests: a server_session on the tiny model, the messages
// it sends collected (and waited for), and the client's answers to server requests (configuration,
// applyEdit, progress creation) scripted per method.
#pragma once

#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lsp/server/server_session.h"
#include "tests/support/tiny_engine.h"
#include "tests/support/tiny_server.h"

namespace qcoder::lsp::testing {

using jsonrpc::json;
using namespace std::chrono_literals;

inline const std::filesystem::path tiny_model_dir =
    std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next" / "bf16";

// With QCODER_TEST_BACKEND=remote, every session sends its prompts through the remote backend to one
// `qcoder serve` on the tiny model, started in this process on a loopback port: the same suites then check
// the language server over a remote server (ctest's lsp_remote_backend).
inline bool remote_backend_mode() {
  const char* mode = std::getenv("QCODER_TEST_BACKEND");
  return mode != nullptr && std::string_view(mode) == "remote";
}

inline result<service::loaded_engine> load_tiny() {
  if (remote_backend_mode()) {
    static const result<std::unique_ptr<testing_support::tiny_server>> server = testing_support::tiny_server::start();
    if (!server) return server.err();
    return testing_support::load_remote_engine((*server)->url());
  }
  return testing_support::load_tiny_engine(32u << 20);
}

class test_client {
 public:
  // Answers to server->client requests by method; the default answers null.
  std::map<std::string, std::function<json(const json& params)>> answers;

  // `gate`: the model load waits for it (to line requests up before the model is ready).
  explicit test_client(session_options options = {}, std::shared_future<void> gate = {})
      : test_client(std::move(options), std::move(gate), [] { return load_tiny(); }) {}
  // With a loader of the test's own (a remote engine pointed at a scripted server).
  test_client(session_options options, std::shared_future<void> gate, std::function<result<service::loaded_engine>()> load)
      : gate_(std::move(gate)),
        session_([this](std::string body) { on_sent(std::move(body)); },
                 [this, load = std::move(load)](const server_settings& s) {
                   loaded_settings = s;
                   if (gate_.valid()) gate_.wait();
                   return load();
                 },
                 std::move(options)) {}

  ~test_client() {
    session_.stop();
    std::lock_guard lock(answer_mutex_);
    for (auto& f : answering_) f.wait();
  }

  server_session& session() { return session_; }
  server_settings loaded_settings;  // what the loader was given

  // One message to the server, as its I/O thread would deliver it (one at a time).
  void send(const json& message) {
    std::lock_guard lock(receive_mutex_);
    session_.receive(message.dump());
  }
  void request(int id, const std::string& method, json params) {
    send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
  }
  void notify(const std::string& method, json params = json::object()) {
    send({{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}});
  }
  // initialize (with `params`) + initialized; returns the initialize reply.
  json start(json params = {{"capabilities", json::object()}}) {
    request(0, "initialize", std::move(params));
    json r = reply(0);
    notify("initialized");
    return r;
  }
  void open(const std::string& uri, const std::string& text, const std::string& language = "python", int version = 1) {
    notify("textDocument/didOpen", {{"textDocument", {{"uri", uri}, {"languageId", language}, {"version", version}, {"text", text}}}});
  }

  // The reply to request `id` (null json after 60 s).
  json reply(int id) {
    return wait_for([&](const json& m) { return m.contains("id") && m["id"] == id && !m.contains("method"); });
  }
  // The first message sent by the server that `match` accepts, waiting for it.
  json wait_for(const std::function<bool(const json&)>& match, std::chrono::seconds timeout = 60s) {
    std::unique_lock lock(mutex_);
    json found;
    arrived_.wait_for(lock, timeout, [&] {
      for (const json& m : sent_) {
        if (match(m)) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::vector<json> sent(const std::string& method) {
    std::lock_guard lock(mutex_);
    std::vector<json> out;
    for (const json& m : sent_) {
      if (m.value("method", "") == method) out.push_back(m);
    }
    return out;
  }

 private:
  void on_sent(std::string body) {
    json m = json::parse(body);
    {
      std::lock_guard lock(mutex_);
      sent_.push_back(m);
    }
    arrived_.notify_all();
    // A request from the server: answer it, as a client would, on another thread (the server may be
    // sending from its I/O thread, which must not re-enter itself).
    if (m.contains("method") && m.contains("id")) {
      json result = nullptr;
      if (auto it = answers.find(m["method"].get<std::string>()); it != answers.end()) result = it->second(m.value("params", json()));
      std::lock_guard lock(answer_mutex_);
      answering_.push_back(std::async(std::launch::async, [this, id = m["id"], result] {
        send({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
      }));
    }
  }

  std::shared_future<void> gate_;
  std::mutex receive_mutex_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<json> sent_;
  std::mutex answer_mutex_;
  std::vector<std::future<void>> answering_;
  server_session session_;
};

}  // namespace qcoder::lsp::testing
