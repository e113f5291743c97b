// The server's transport: LSP frames over a pair of file descriptors (stdin/stdout, or a socket), driven by
// one Boost.Asio I/O thread. Reads are framed and handed to a callback on that thread; writes from any
// thread go through one queue and one writer, so frames never interleave.
// Thread-safety: send() (through sender()) from any thread; everything else on the thread that calls run().
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "lsp/jsonrpc/connection.h"
#include "lsp/jsonrpc/framing.h"

namespace qcoder::lsp {

class stream_transport {
 public:
  // Takes duplicates of the descriptors (the originals stay open).
  stream_transport(int in_fd, int out_fd, std::size_t max_message_bytes);
  ~stream_transport();

  // A thread-safe sender for the connection. Bodies sent after stop() are dropped.
  jsonrpc::send_fn sender();

  // Runs until stop() (and the queued writes are out) or the input ends. `on_message` gets each body;
  // `on_bad_frame` each framing error (the stream continues).
  void run(const std::function<void(std::string_view body)>& on_message,
           const std::function<void(std::string_view why)>& on_bad_frame);
  // Finish the queued writes, then return from run(). Call on the I/O thread.
  void stop();
  bool input_ended() const { return input_ended_; }

 private:
  void read_more();
  void write_next();

  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor in_;
  boost::asio::posix::stream_descriptor out_;
  jsonrpc::frame_reader frames_;
  std::array<char, 65536> chunk_{};
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool stopping_ = false;
  bool input_ended_ = false;
  std::atomic<bool> closed_{false};
  const std::function<void(std::string_view)>* on_message_ = nullptr;
  const std::function<void(std::string_view)>* on_bad_frame_ = nullptr;
};

}  // namespace qcoder::lsp
