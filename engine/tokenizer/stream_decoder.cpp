// Streaming decode: append the token's bytes to what was held back, emit every whole character.
#include "engine/tokenizer/stream_decoder.h"

namespace qcoder::engine {

result<void> stream_decoder::push(token_id id, std::string& out) {
  const std::string_view bytes = tok_->token_bytes(id);
  if (bytes.empty()) {
    return fail(errc::invalid_argument, "token id {} is not in the vocabulary (known ids are below {})", id,
                tok_->id_limit());
  }
  if (skip_added_ && tok_->is_added(id)) return ok();
  if (pending_.empty()) {
    const std::size_t used = unicode::append_replacing_invalid(bytes, out, /*hold_incomplete=*/true);
    pending_.assign(bytes.substr(used));
    return ok();
  }
  pending_.append(bytes);
  const std::size_t used = unicode::append_replacing_invalid(pending_, out, /*hold_incomplete=*/true);
  pending_.erase(0, used);
  return ok();
}

void stream_decoder::finish(std::string& out) {
  unicode::append_replacing_invalid(pending_, out, /*hold_incomplete=*/false);
  pending_.clear();
}

}  // namespace qcoder::engine
