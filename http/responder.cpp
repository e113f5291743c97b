// The reply side of a request: responder calls from any thread, turned into bytes posted to the
// connection's strand under the exchange's mutex (see connection.h for why the mutex spans the post).
#include <spdlog/spdlog.h>

#include "http/connection.h"
#include "http/wire.h"

namespace qcoder::http {
namespace detail {
namespace {

// Call with the exchange's mutex held and the connection attached.
void post_locked(exchange& state, std::string bytes, then next) {
  state.conn->queued_bytes() += bytes.size();
  state.conn->post_output(state.id, std::move(bytes), next);
}

int final_status(int status) {
  if (status >= 200 && status <= 599) return status;
  spdlog::error("http: {} is not a final reply status: 500 sent instead", status);
  return 500;
}

std::string whole_reply(const exchange& state, int status, std::string_view content_type, std::string body,
                        const header_list& extra) {
  const bool has_body = status_has_body(status);
  std::string bytes = response_head(status, has_body ? content_type : std::string_view(), extra,
                                    has_body ? framing::content_length : framing::none, body.size(), state.keep_alive,
                                    state.version);
  if (has_body && !state.head) bytes += body;
  return bytes;
}

}  // namespace

exchange::exchange(std::shared_ptr<connection> conn, std::uint64_t id, bool head, bool keep_alive, int version,
                   std::size_t max_queued_bytes)
    : id(id), head(head), keep_alive(keep_alive), version(version), max_queued_bytes(max_queued_bytes), conn(std::move(conn)) {}

exchange::~exchange() {
  // No lock: the last owner is going, and the connection's weak reference can no longer be locked.
  if (!conn || gone) return;
  if (stage_now == stage::fresh) {
    spdlog::error("http: a request was dropped without a reply: 500 sent");
    post_locked(*this,
                whole_reply(*this, 500, "application/json",
                            error_json("the server dropped this request without answering it", "server_error",
                                       "internal_error"),
                            {}),
                then::response_done);
  } else if (stage_now == stage::streaming) {
    // Without the last chunk the client can tell that the body is incomplete.
    spdlog::error("http: a stream was dropped before end(): the connection is cut");
    post_locked(*this, std::string(), then::abort);
  }
}

}  // namespace detail

using detail::exchange;
using detail::then;

responder::responder(std::shared_ptr<exchange> state) : state_(std::move(state)) {}

void responder::send(int status, std::string content_type, std::string body, header_list extra_headers) {
  if (!state_) return;
  // Built before the mutex: a large body is copied once, without holding up the connection's side.
  std::string bytes = detail::whole_reply(*state_, detail::final_status(status), content_type, std::move(body),
                                          extra_headers);
  std::lock_guard lock(state_->mutex);
  if (state_->stage_now != exchange::stage::fresh) {
    if (!state_->gone) spdlog::warn("http: a second reply to one request was dropped");
    return;
  }
  if (!state_->conn || state_->gone) return;  // nobody to answer
  state_->stage_now = exchange::stage::done;
  detail::post_locked(*state_, std::move(bytes), then::response_done);
}

bool responder::begin_stream(int status, std::string content_type, header_list extra_headers) {
  if (!state_) return false;
  status = detail::final_status(status);
  const bool has_body = detail::status_has_body(status);
  const bool chunked = state_->version >= 11;
  const detail::framing how = !has_body ? detail::framing::none
                              : chunked ? detail::framing::chunked
                                        : detail::framing::until_close;
  std::string head = detail::response_head(status, has_body ? content_type : std::string(), extra_headers, how, 0,
                                           state_->keep_alive && chunked, state_->version);
  std::lock_guard lock(state_->mutex);
  if (state_->stage_now != exchange::stage::fresh) {
    if (!state_->gone) spdlog::warn("http: begin_stream() on a request already answered was dropped");
    return false;
  }
  if (!state_->conn || state_->gone) return false;
  state_->stage_now = exchange::stage::streaming;
  state_->drop_body = state_->head || !has_body;
  detail::post_locked(*state_, std::move(head), then::more);
  return true;
}

bool responder::write(std::string data) {
  if (!state_) return false;
  std::string framed = state_->version >= 11 && !data.empty() ? detail::chunk(data) : std::move(data);
  std::size_t queued = 0;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stage_now != exchange::stage::streaming || state_->gone || !state_->conn) return false;
    if (framed.empty() || state_->drop_body) return true;
    // A slow reader: bytes pile up in the queue. Let one piece through however large, so a big chunk
    // alone does not count as slowness, but not a queue past the limit.
    queued = state_->conn->queued_bytes().load();
    if (queued == 0 || queued + framed.size() <= state_->max_queued_bytes) {
      detail::post_locked(*state_, std::move(framed), then::more);
      return true;
    }
    state_->gone = true;
    state_->conn->post_close();
  }
  spdlog::warn("http: a client read too slowly ({} bytes queued, limit {}): treated as gone",
               queued, state_->max_queued_bytes);
  state_->disconnect.request_stop();
  return false;
}

void responder::end() {
  if (!state_) return;
  std::lock_guard lock(state_->mutex);
  if (state_->stage_now != exchange::stage::streaming) {
    if (state_->stage_now == exchange::stage::fresh) spdlog::warn("http: end() without begin_stream() was ignored");
    return;
  }
  state_->stage_now = exchange::stage::done;
  if (!state_->conn || state_->gone) return;
  if (state_->version >= 11) {
    detail::post_locked(*state_, state_->drop_body ? std::string() : std::string(detail::last_chunk),
                        then::response_done);
  } else {
    detail::post_locked(*state_, std::string(), then::close_gracefully);  // the body ends with the connection
  }
}

std::stop_token responder::disconnected() const { return state_ ? state_->disconnect.get_token() : std::stop_token(); }

}  // namespace qcoder::http
