// The server-sent events parser (see sse.h).
#include "http/sse.h"

#include <fmt/format.h>

namespace qcoder::http {

bool sse_parser::push(std::string_view bytes, const std::function<bool(const event&)>& on_event) {
  while (!done_ && !bytes.empty()) {
    if (after_cr_ && bytes.front() == '\n') bytes.remove_prefix(1);  // the LF of a CRLF split across pushes
    after_cr_ = false;
    const std::size_t eol = bytes.find_first_of("\r\n");
    const std::string_view piece = bytes.substr(0, eol);
    if (line_.size() + piece.size() + data_.size() > max_event_bytes_) {
      error_ = fmt::format("an event of the stream is longer than {} bytes", max_event_bytes_);
      done_ = true;
      break;
    }
    line_.append(piece);
    if (eol == std::string_view::npos) break;
    after_cr_ = bytes[eol] == '\r';
    if (after_cr_ && eol + 1 < bytes.size() && bytes[eol + 1] == '\n') {
      after_cr_ = false;
      bytes.remove_prefix(eol + 2);
    } else {
      bytes.remove_prefix(eol + 1);
    }
    if (!end_line(on_event)) done_ = true;
  }
  return !done_;
}

bool sse_parser::end_line(const std::function<bool(const event&)>& on_event) {
  if (!line_.empty()) {
    take_field(line_);
    line_.clear();
    return true;
  }
  // A blank line: the event is complete.
  event out;
  out.name = std::move(name_);
  name_.clear();
  if (!has_data_) return true;  // no data: nothing to dispatch
  data_.pop_back();             // the "\n" after the last data line
  out.data = std::move(data_);
  data_.clear();
  has_data_ = false;
  return on_event(out);
}

void sse_parser::take_field(std::string_view line) {
  if (line.front() == ':') return;  // a comment (servers send them to keep the connection alive)
  const std::size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
    has_data_ = true;
  } else if (field == "event") {
    name_ = std::string(value);
  }
  // "id", "retry" and unknown fields: nothing we use.
}

}  // namespace qcoder::http
