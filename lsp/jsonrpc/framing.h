// LSP base protocol framing: `Content-Length: N\r\n` (other headers allowed and ignored), a blank line,
// then N bytes of JSON. The reader is fed bytes as they arrive and hands out whole message bodies; it
// never trusts the peer: a body over the size cap or a malformed header is reported as an error and the
// reader resynchronises on the next header instead of giving up on the stream.
// Thread-safety: none; one reader per input stream, used by the I/O thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "kernels/common/result.h"

namespace qcoder::jsonrpc {

class frame_reader {
 public:
  explicit frame_reader(std::size_t max_body_bytes = std::size_t{64} << 20) : max_body_(max_body_bytes) {}

  // Appends input bytes.
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete body, an error for a bad frame (its bytes are dropped), or nullopt when more input
  // is needed.
  std::optional<result<std::string>> next();

  std::size_t buffered() const { return buffer_.size() - start_; }

 private:
  void compact();
  std::string buffer_;
  std::size_t start_ = 0;       // bytes before this were consumed
  std::size_t skip_body_ = 0;   // bytes of an oversized body still to drop
  bool resyncing_ = false;      // after an endless header: looking for the next one
  std::size_t max_body_;
};

// The frame around `body`.
std::string frame(std::string_view body);

}  // namespace qcoder::jsonrpc
