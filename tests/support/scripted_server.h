// Our own HTTP server (http/server.h) on 127.0.0.1 with an OS-picked port, playing a remote model server in
// client tests: each request runs a script on a thread of its own, so a script may reply slowly, in pieces,
// or wait to see the client leave. Scripts must bound their waits: the destructor stops the server (which
// fires every responder's disconnected()) and then joins them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "http/client.h"
#include "http/server.h"

namespace qcoder::testing_support {

class scripted_server {
 public:
  using script = std::function<void(const http::request&, http::responder)>;

  explicit scripted_server(script on_request) : script_(std::move(on_request)) {
    http::server_options options;
    options.port = 0;
    auto started = http::server::start(options, [this](http::request req, http::responder reply) {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
      changed_.notify_all();
      threads_.emplace_back([this, req = std::move(req), reply] { script_(req, reply); });
    });
    if (!started) {
      ADD_FAILURE() << started.err().message;
      return;
    }
    server_ = std::move(started).value();
  }

  ~scripted_server() {
    if (server_) server_->stop();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  bool running() const { return server_ != nullptr; }
  std::uint16_t port() const { return server_ ? server_->port() : 0; }
  http::endpoint at(std::string base_path = "") const { return {"127.0.0.1", std::to_string(port()), std::move(base_path)}; }
  std::string url(std::string_view base_path = "") const { return at(std::string(base_path)).text(); }

  // The requests received so far, in order.
  std::vector<http::request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  script script_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<http::request> requests_;
  std::vector<std::thread> threads_;
  std::unique_ptr<http::server> server_;  // last: stopped before the scripts' state goes
};

// Waits until the client has left the request `reply` answers; false when it is still there after `within`.
inline bool wait_disconnected(const http::responder& reply, std::chrono::milliseconds within = std::chrono::seconds(5)) {
  std::stop_token gone = reply.disconnected();
  std::mutex mutex;
  std::condition_variable_any never;
  std::unique_lock lock(mutex);
  return never.wait_for(lock, gone, within, [&] { return gone.stop_requested(); });
}

// A flag one thread raises and another waits for, with a deadline instead of a sleep.
class signal {
 public:
  void raise() {
    std::lock_guard lock(mutex_);
    raised_ = true;
    changed_.notify_all();
  }
  bool wait(std::chrono::milliseconds within = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, within, [&] { return raised_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool raised_ = false;
};

}  // namespace qcoder::testing_support
