// Decoding token by token, for streaming a completion to the editor as it is generated.
//
// A BPE token can end in the middle of a UTF-8 character (an emoji is often split over two or three
// tokens), so each push() emits only whole characters and holds back an incomplete sequence until a later
// token completes it. Bytes that can never form a character are replaced by U+FFFD, as decode() does, so
// the concatenation of everything emitted equals tokenizer::decode(all ids).
// Thread-safety: one stream per generation, used by one thread at a time; the tokenizer must outlive it.
#pragma once

#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace qcoder::engine {

class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& tok, bool skip_added = false) : tok_(&tok), skip_added_(skip_added) {}

  // Appends to `out` the text that `id` completes (possibly nothing). Error: an unknown id (the stream is
  // unchanged).
  result<void> push(token_id id, std::string& out);
  // Ends the stream: a held-back incomplete character becomes U+FFFD. The stream can then be reused.
  void finish(std::string& out);
  void reset() { pending_.clear(); }

  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  const tokenizer* tok_;
  bool skip_added_;
  std::string pending_;  // at most 3 bytes between calls: a valid but incomplete UTF-8 prefix
};

}  // namespace qcoder::engine
