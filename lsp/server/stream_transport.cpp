// Asio reads and the single writer queue.
#include "lsp/server/stream_transport.h"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

namespace qcoder::lsp {

stream_transport::stream_transport(int in_fd, int out_fd, std::size_t max_message_bytes)
    : in_(io_, ::dup(in_fd)), out_(io_, ::dup(out_fd)), frames_(max_message_bytes) {}

stream_transport::~stream_transport() { closed_ = true; }

jsonrpc::send_fn stream_transport::sender() {
  return [this](std::string body) {
    if (closed_) return;
    boost::asio::post(io_, [this, framed = jsonrpc::frame(body)]() mutable {
      if (closed_) return;
      queue_.push_back(std::move(framed));
      if (!writing_) write_next();
    });
  };
}

void stream_transport::write_next() {
  if (queue_.empty()) {
    writing_ = false;
    if (stopping_) io_.stop();
    return;
  }
  writing_ = true;
  boost::asio::async_write(out_, boost::asio::buffer(queue_.front()), [this](boost::system::error_code ec, std::size_t) {
    if (ec) {
      spdlog::error("lsp: writing to the client failed: {}", ec.message());
      closed_ = true;
      io_.stop();
      return;
    }
    queue_.pop_front();
    write_next();
  });
}

void stream_transport::read_more() {
  in_.async_read_some(boost::asio::buffer(chunk_), [this](boost::system::error_code ec, std::size_t n) {
    if (ec) {
      if (ec != boost::asio::error::eof) spdlog::error("lsp: reading from the client failed: {}", ec.message());
      input_ended_ = true;
      stop();
      return;
    }
    frames_.feed(std::string_view(chunk_.data(), n));
    while (std::optional<result<std::string>> frame = frames_.next()) {
      if (*frame) {
        (*on_message_)(frame->value());
      } else {
        spdlog::warn("lsp: bad frame: {}", frame->err().message);
        (*on_bad_frame_)(frame->err().message);
      }
      if (stopping_) return;
    }
    if (!stopping_) read_more();
  });
}

void stream_transport::run(const std::function<void(std::string_view body)>& on_message,
                           const std::function<void(std::string_view why)>& on_bad_frame) {
  on_message_ = &on_message;
  on_bad_frame_ = &on_bad_frame;
  read_more();
  io_.run();
  closed_ = true;
}

void stream_transport::stop() {
  stopping_ = true;
  if (!writing_) {
    // Writes posted just before stop() still go out: they are queued handlers, so let them run first.
    boost::asio::post(io_, [this] {
      if (!writing_) io_.stop();
    });
  }
}

}  // namespace qcoder::lsp
