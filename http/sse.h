// A parser of server-sent events (the WHATWG "text/event-stream" format), for reading the streams of
// OpenAI-compatible servers. Bytes go in as they arrive, split anywhere; whole events come out.
//
// Thread-safety: none; one parser belongs to one stream.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace qcoder::http {

// Lines end in "\n", "\r\n" or "\r" (a CRLF split between two pushes counts once). "data:" lines are joined
// with "\n"; one space after the colon is dropped; lines starting with ':' are comments; "event:" names the
// event; "id:" and "retry:" are read and ignored. An event goes out at a blank line, if it has data; an
// event the stream ends before is never dispatched.
class sse_parser {
 public:
  struct event {
    std::string name;  // from "event:"; empty when the server sent none (the format's default, "message")
    std::string data;
    bool operator==(const event&) const = default;
  };

  // `max_event_bytes` bounds a pending line plus the event's data so far: a server that never ends a line
  // or an event cannot make the parser grow without end.
  explicit sse_parser(std::size_t max_event_bytes = 16u << 20) : max_event_bytes_(max_event_bytes) {}

  // Feeds bytes, calling on_event for each event they complete. False when on_event returned false, or the
  // size limit was passed (error() says so); the parser then ignores any further bytes and returns false.
  bool push(std::string_view bytes, const std::function<bool(const event&)>& on_event);

  // Why push() failed on its own; empty otherwise.
  const std::string& error() const { return error_; }

 private:
  bool end_line(const std::function<bool(const event&)>& on_event);
  void take_field(std::string_view line);

  std::size_t max_event_bytes_;
  std::string line_;          // the line so far, without its end
  std::string data_;          // the event's data lines, each followed by "\n"
  std::string name_;
  bool after_cr_ = false;     // the last byte was a CR: a LF right after it ends no new line
  bool has_data_ = false;
  bool done_ = false;         // push returned false: no more events
  std::string error_;
};

}  // namespace qcoder::http
