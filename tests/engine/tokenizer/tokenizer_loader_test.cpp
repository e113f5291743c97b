// Loading tokenizer.json: what is accepted, and clear errors (never a crash) for everything else.
#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"

namespace qcoder::engine {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::HasSubstr;

const fs::path tiny_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const json& tiny_json() {
  static const json j = json::parse(read_text(tiny_dir / "tokenizer.json"));
  return j;
}

result<tokenizer> parse_mutated(const std::function<void(json&)>& mutate) {
  json j = tiny_json();
  mutate(j);
  return tokenizer::parse(j.dump(), "", "test.json");
}

TEST(TokenizerLoader, LoadsAModelFolder) {
  result<tokenizer> tok = tokenizer::load_model_dir(tiny_dir);
  ASSERT_TRUE(tok) << tok.err().message;
  EXPECT_EQ(tok->vocab_size(), 2022u);
  EXPECT_EQ(tok->id_limit(), 2048u);
  EXPECT_EQ(tok->eos_token(), tok->find_token("<|im_end|>"));  // from tokenizer_config.json

  result<tokenizer> none = tokenizer::load_model_dir(QCODER_TEST_DATA_DIR);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.err().code, errc::not_found);
  result<tokenizer> missing = tokenizer::load("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.err().code, errc::not_found);
  EXPECT_THAT(missing.err().message, HasSubstr("/nonexistent/tokenizer.json"));
}

TEST(TokenizerLoader, MalformedJsonIsAParseError) {
  const std::string good = read_text(tiny_dir / "tokenizer.json");
  for (const std::string& text : {std::string(), std::string("{"), std::string("not json"),
                                  good.substr(0, good.size() / 2), std::string("{\"a\": \"\\ud800\"}"),
                                  std::string("{\"a\": \"\xFF\"}")}) {
    result<tokenizer> tok = tokenizer::parse(text, "", "bad.json");
    ASSERT_FALSE(tok) << text.substr(0, 40);
    EXPECT_EQ(tok.err().code, errc::parse_error);
    EXPECT_THAT(tok.err().message, HasSubstr("bad.json"));
  }
  result<tokenizer> config = tokenizer::parse(good, "{oops", "good.json");
  ASSERT_FALSE(config);
  EXPECT_THAT(config.err().message, HasSubstr("tokenizer_config.json"));
}

struct bad_file {
  const char* what;
  std::function<void(json&)> mutate;
  errc code;
  const char* message;  // a substring of the error
};

TEST(TokenizerLoader, StructuralErrorsNameTheJsonPath) {
  const std::vector<bad_file> cases = {
      {"array root", [](json& j) { j = json::array(); }, errc::corrupt_data, "expected a JSON object"},
      {"no model", [](json& j) { j.erase("model"); }, errc::corrupt_data, "/model"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, errc::corrupt_data, "/model/vocab"},
      {"empty vocab", [](json& j) { j["model"]["vocab"] = json::object(); }, errc::corrupt_data, "/model/vocab"},
      {"string id", [](json& j) { j["model"]["vocab"]["a"] = "7"; }, errc::corrupt_data, "/model/vocab"},
      {"negative id", [](json& j) { j["model"]["vocab"]["a"] = -3; }, errc::corrupt_data, "/model/vocab"},
      {"huge id", [](json& j) { j["model"]["vocab"]["a"] = 1ll << 40; }, errc::corrupt_data, "/model/vocab"},
      {"repeated id", [](json& j) { j["model"]["vocab"]["zzzz"] = 5; }, errc::corrupt_data, "used twice"},
      {"outside alphabet", [](json& j) { j["model"]["vocab"]["\xE4\xB8\xAD"] = 5000; }, errc::corrupt_data,
       "byte-level alphabet"},
      {"merges not array", [](json& j) { j["model"]["merges"] = 3; }, errc::corrupt_data, "/model/merges"},
      {"merge unknown token", [](json& j) { j["model"]["merges"][3] = json::array({"zqzqzq", "x"}); },
       errc::corrupt_data, "/model/merges/3"},
      {"merge bad shape", [](json& j) { j["model"]["merges"][0] = json::array({"a"}); }, errc::corrupt_data,
       "/model/merges/0"},
      {"merge string without space", [](json& j) { j["model"]["merges"][1] = "ab"; }, errc::corrupt_data,
       "/model/merges/1"},
      {"added not array", [](json& j) { j["added_tokens"] = json::object(); }, errc::corrupt_data, "/added_tokens"},
      {"added no content", [](json& j) { j["added_tokens"][2].erase("content"); }, errc::corrupt_data,
       "/added_tokens/2"},
      {"added empty content", [](json& j) { j["added_tokens"][2]["content"] = ""; }, errc::corrupt_data,
       "/added_tokens/2"},
      {"added repeated", [](json& j) { j["added_tokens"][3]["content"] = j["added_tokens"][2]["content"]; },
       errc::corrupt_data, "/added_tokens/3"},
      {"added huge id", [](json& j) { j["added_tokens"][0]["id"] = 1ll << 35; }, errc::corrupt_data,
       "/added_tokens/0"},
      {"another model", [](json& j) { j["model"]["type"] = "WordPiece"; }, errc::unsupported, "/model/type"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, errc::unsupported, "byte_fallback"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, errc::unsupported, "dropout"},
      {"suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, errc::unsupported, "end_of_word_suffix"},
      {"NFKC", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, errc::unsupported, "/normalizer"},
      {"other pattern", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+"; },
       errc::unsupported, "/pre_tokenizer/pretokenizers/0/pattern/Regex"},
      {"inverted split", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["invert"] = true; }, errc::unsupported,
       "/pre_tokenizer/pretokenizers/0"},
      {"prefix space", [](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; },
       errc::unsupported, "/pre_tokenizer/pretokenizers/1"},
      {"no pre-tokenizer", [](json& j) { j["pre_tokenizer"] = nullptr; }, errc::unsupported, "/pre_tokenizer"},
      {"other decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, errc::unsupported, "/decoder"},
  };
  for (const bad_file& c : cases) {
    result<tokenizer> tok = parse_mutated(c.mutate);
    ASSERT_FALSE(tok) << c.what;
    EXPECT_EQ(tok.err().code, c.code) << c.what << ": " << tok.err().message;
    EXPECT_THAT(tok.err().message, HasSubstr(c.message)) << c.what;
    EXPECT_THAT(tok.err().message, HasSubstr("test.json")) << c.what;
  }
}

TEST(TokenizerLoader, AcceptsTheOlderMergeFormatAndANullNormalizer) {
  result<tokenizer> reference = tokenizer::parse(tiny_json().dump(), "");
  ASSERT_TRUE(reference) << reference.err().message;
  result<tokenizer> old_merges = parse_mutated([](json& j) {
    for (json& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  });
  ASSERT_TRUE(old_merges) << old_merges.err().message;
  const std::string text = "def add(a, b):\n    return a + b\n";
  EXPECT_EQ(old_merges->encode_text(text), reference->encode_text(text));

  result<tokenizer> raw = parse_mutated([](json& j) { j["normalizer"] = nullptr; });
  ASSERT_TRUE(raw) << raw.err().message;
  const std::string decomposed = "cafe\xCC\x81";
  EXPECT_NE(raw->encode_text(decomposed), reference->encode_text(decomposed));  // no NFC: e + U+0301 stay apart
}

TEST(TokenizerLoader, AddedTokenStripAndSingleWordFlags) {
  result<tokenizer> tok = parse_mutated([](json& j) {
    for (json& a : j["added_tokens"]) {
      if (a["content"] == "<|im_end|>") a["lstrip"] = a["rstrip"] = true;
      if (a["content"] == "<think>") a["single_word"] = true;
    }
  });
  ASSERT_TRUE(tok) << tok.err().message;
  const token_id end = *tok->find_token("<|im_end|>");
  std::vector<token_id> expected = tok->encode_text("a");
  expected.push_back(end);
  const std::vector<token_id> b = tok->encode_text("b");
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(tok->encode_prompt("a  <|im_end|> \n b"), expected);  // the spaces around it are swallowed

  const token_id think = *tok->find_token("<think>");
  const std::vector<token_id> inside = tok->encode_prompt("x<think>y");
  EXPECT_EQ(std::count(inside.begin(), inside.end(), think), 0);
  const std::vector<token_id> alone = tok->encode_prompt("x <think> y");
  EXPECT_EQ(std::count(alone.begin(), alone.end(), think), 1);
}

TEST(TokenizerLoader, LongestAddedTokenWinsAtTheSamePosition) {
  result<tokenizer> tok = parse_mutated([](json& j) {
    j["added_tokens"].push_back({{"id", 3000}, {"content", "<|im"}, {"special", true}});
  });
  ASSERT_TRUE(tok) << tok.err().message;
  EXPECT_EQ(tok->encode_prompt("<|im_end|>"), std::vector<token_id>{*tok->find_token("<|im_end|>")});
  const std::vector<token_id> partial = tok->encode_prompt("<|imx");
  ASSERT_FALSE(partial.empty());
  EXPECT_EQ(partial[0], 3000);
  EXPECT_EQ(tok->id_limit(), 3001u);
  EXPECT_FALSE(tok->is_known(2500));  // a hole between the vocabulary and the added ids
  EXPECT_FALSE(tok->decode(std::vector<token_id>{2500}));
}

}  // namespace
}  // namespace qcoder::engine
