#include "engine/tokenizer/stream_decoder.h"

#include <gtest/gtest.h>

namespace qcoder::engine {
namespace {

const tokenizer& tiny() {
  static const result<tokenizer> tok =
      tokenizer::load(std::filesystem::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16/tokenizer.json");
  if (!tok) std::abort();
  return *tok;
}

token_id byte_token(unsigned char b) { return *tiny().find_token(std::string(1, static_cast<char>(b))); }

TEST(TokenizerStreamDecoder, HoldsBackAnIncompleteCharacterUntilItCompletes) {
  const tokenizer& tok = tiny();
  stream_decoder stream(tok);
  std::string out;
  ASSERT_TRUE(stream.push(*tok.find_token("a"), out));
  EXPECT_EQ(out, "a");
  // 🚀 = F0 9F 9A 80, one byte token at a time.
  for (unsigned char b : {0xF0, 0x9F, 0x9A}) {
    ASSERT_TRUE(stream.push(byte_token(b), out));
    EXPECT_EQ(out, "a");
  }
  EXPECT_EQ(stream.pending_bytes(), 3u);
  ASSERT_TRUE(stream.push(byte_token(0x80), out));
  EXPECT_EQ(out, "a\xF0\x9F\x9A\x80");
  EXPECT_EQ(stream.pending_bytes(), 0u);
}

TEST(TokenizerStreamDecoder, MatchesDecodeOnEveryPrefix) {
  const tokenizer& tok = tiny();
  const std::string text = "const \xCF\x80 = 3.14; // \xC3\xBCn\xC3\xAF\xE6\xBC\xA2\xE5\xAD\x97 \xF0\x9F\x9A\x80\r\n";
  const std::vector<token_id> ids = tok.encode_prompt(text + "<|im_end|>");
  stream_decoder stream(tok);
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(stream.push(ids[i], out));
    // What was emitted is always whole characters and a prefix of the full decode.
    EXPECT_TRUE(unicode::is_valid_utf8(out));
    const std::string full = *tok.decode(std::span(ids).first(i + 1));
    EXPECT_EQ(full.compare(0, out.size(), out), 0);
  }
  stream.finish(out);
  EXPECT_EQ(out, text + "<|im_end|>");
}

TEST(TokenizerStreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  const tokenizer& tok = tiny();
  stream_decoder stream(tok);
  std::string out;
  ASSERT_TRUE(stream.push(byte_token(0xFF), out));  // can never start a character: replaced at once
  EXPECT_EQ(out, "\xEF\xBF\xBD");
  ASSERT_TRUE(stream.push(byte_token(0xE2), out));  // starts a 3-byte character...
  ASSERT_TRUE(stream.push(byte_token('x'), out));   // ...that 'x' breaks
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBDx");
  ASSERT_TRUE(stream.push(byte_token(0xC3), out));  // cut off by the end of the stream
  stream.finish(out);
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBDx\xEF\xBF\xBD");
  EXPECT_EQ(stream.pending_bytes(), 0u);
}

TEST(TokenizerStreamDecoder, SkipsAddedTokensWhenAsked) {
  const tokenizer& tok = tiny();
  stream_decoder stream(tok, /*skip_added=*/true);
  std::string out;
  for (token_id id : tok.encode_prompt("<|im_start|>ok<|im_end|>")) {
    ASSERT_TRUE(stream.push(id, out));
  }
  stream.finish(out);
  EXPECT_EQ(out, "ok");
}

}  // namespace
}  // namespace qcoder::engine
