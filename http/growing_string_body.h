// A Beast body type that reads into a std::string which grows with the bytes received. Beast's
// string_body reserves the whole declared Content-Length up front, so a client could make the server
// allocate max_body_bytes per connection by announcing a size it never sends. Internal to http/.
// Thread-safety: none needed; a reader belongs to one parser on one strand.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

namespace qcoder::http::detail {

struct growing_string_body {
  using value_type = std::string;

  class reader {
   public:
    template <bool is_request, class Fields>
    reader(boost::beast::http::header<is_request, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& content_length, boost::system::error_code& ec) {
      constexpr std::uint64_t first_reserve = 64 * 1024;
      if (content_length) body_.reserve(static_cast<std::size_t>(std::min(*content_length, first_reserve)));
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
      const std::size_t n = boost::asio::buffer_size(buffers);
      const std::size_t old_size = body_.size();
      body_.resize(old_size + n);  // geometric growth in libstdc++: amortised O(1) per byte
      boost::asio::buffer_copy(boost::asio::buffer(body_.data() + old_size, n), buffers);
      ec = {};
      return n;
    }

    void finish(boost::system::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace qcoder::http::detail
