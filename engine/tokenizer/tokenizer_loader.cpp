// Reading tokenizer.json / tokenizer_config.json into a tokenizer, checking every part we rely on.
//
// We implement exactly Qwen's pipeline; anything else in the file (another normalizer, another split
// pattern, byte fallback, dropout...) is refused with an `unsupported` error naming the JSON path, instead
// of silently encoding differently from the model's tokenizer. Malformed input gives `parse_error` /
// `corrupt_data` errors, never a crash: nlohmann's exceptions are caught here, at the load boundary.
// Thread-safety: pure functions.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace qcoder::engine {

using json = nlohmann::json;

class tokenizer_loader {
 public:
  tokenizer_loader(std::string_view origin) : origin_(origin) {}

  result<tokenizer> load(const json& root, const json* config) {
    if (!root.is_object()) return bad("/", "expected a JSON object");
    QCODER_CHECK(check_normalizer(root));
    QCODER_CHECK(check_pre_tokenizer(root));
    QCODER_CHECK(check_decoder(root));
    QCODER_CHECK(load_model(root));
    QCODER_CHECK(load_added(root));
    if (config != nullptr) QCODER_CHECK(load_config(*config));
    return std::move(tok_);
  }

 private:
  template <typename... Args>
  error bad(std::string_view path, fmt::format_string<Args...> format, Args&&... args) {
    return error{errc::corrupt_data,
                 fmt::format("{} {}: {}", origin_, path, fmt::format(format, std::forward<Args>(args)...))};
  }
  template <typename... Args>
  error unsupported(std::string_view path, fmt::format_string<Args...> format, Args&&... args) {
    return error{errc::unsupported,
                 fmt::format("{} {}: {}", origin_, path, fmt::format(format, std::forward<Args>(args)...))};
  }

  static std::string type_of(const json& j) { return j.is_object() && j.contains("type") ? j["type"].dump() : "?"; }
  static bool is_type(const json& j, std::string_view type) {
    return j.is_object() && j.contains("type") && j["type"].is_string() && j["type"].get<std::string>() == type;
  }
  static bool flag(const json& j, const char* key, bool fallback) {
    return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
  }

  result<void> check_normalizer(const json& root) {
    if (!root.contains("normalizer") || root["normalizer"].is_null()) {
      tok_.normalize_nfc_ = false;
      return ok();
    }
    const json& n = root["normalizer"];
    if (is_type(n, "NFC")) return ok();
    if (is_type(n, "Sequence") && n.contains("normalizers") && n["normalizers"].is_array() &&
        n["normalizers"].size() == 1 && is_type(n["normalizers"][0], "NFC")) {
      return ok();
    }
    return unsupported("/normalizer", "normalizer {} is not supported (qcoder implements Qwen's NFC)", type_of(n));
  }

  result<void> check_pre_tokenizer(const json& root) {
    if (!root.contains("pre_tokenizer")) return unsupported("/pre_tokenizer", "missing");
    const json& p = root["pre_tokenizer"];
    if (!is_type(p, "Sequence") || !p.contains("pretokenizers") || !p["pretokenizers"].is_array() ||
        p["pretokenizers"].size() != 2) {
      return unsupported("/pre_tokenizer", "expected Qwen's Sequence [Split, ByteLevel], found {}", type_of(p));
    }
    const json& split = p["pretokenizers"][0];
    if (!is_type(split, "Split")) {
      return unsupported("/pre_tokenizer/pretokenizers/0", "expected a Split, found {}", type_of(split));
    }
    const json* pattern = split.contains("pattern") && split["pattern"].is_object() && split["pattern"].contains("Regex")
                              ? &split["pattern"]["Regex"]
                              : nullptr;
    if (pattern == nullptr || !pattern->is_string() || pattern->get<std::string>() != qwen_split_pattern) {
      return unsupported("/pre_tokenizer/pretokenizers/0/pattern/Regex",
                         "only Qwen's split pattern is implemented, found {}", pattern ? pattern->dump() : "none");
    }
    if (!split.contains("behavior") || split["behavior"] != "Isolated" || flag(split, "invert", false)) {
      return unsupported("/pre_tokenizer/pretokenizers/0", "expected behavior Isolated without invert");
    }
    const json& bytes = p["pretokenizers"][1];
    if (!is_type(bytes, "ByteLevel") || flag(bytes, "add_prefix_space", false) || flag(bytes, "use_regex", true)) {
      return unsupported("/pre_tokenizer/pretokenizers/1",
                         "expected ByteLevel without add_prefix_space and without use_regex");
    }
    return ok();
  }

  result<void> check_decoder(const json& root) {
    if (!root.contains("decoder") || !is_type(root["decoder"], "ByteLevel")) {
      return unsupported("/decoder", "expected the ByteLevel decoder, found {}",
                         root.contains("decoder") ? type_of(root["decoder"]) : "none");
    }
    return ok();
  }

  result<void> load_model(const json& root) {
    if (!root.contains("model") || !root["model"].is_object()) return bad("/model", "missing or not an object");
    const json& model = root["model"];
    if (!is_type(model, "BPE")) return unsupported("/model/type", "expected BPE, found {}", type_of(model));
    if (flag(model, "byte_fallback", false)) return unsupported("/model/byte_fallback", "byte fallback is not supported");
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
      return unsupported("/model/dropout", "BPE dropout is not supported");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && !model[key].is_null() &&
          !(model[key].is_string() && model[key].get<std::string>().empty())) {
        return unsupported(fmt::format("/model/{}", key), "must be empty for byte-level BPE");
      }
    }

    if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("/model/vocab", "missing or not an object");
    const json& vocab = model["vocab"];
    if (vocab.empty()) return bad("/model/vocab", "empty");
    const std::size_t id_cap = 2 * vocab.size() + 4096;  // ids must be dense-ish: no billion-entry tables
    std::vector<std::string> token_bytes;
    for (const auto& [text, id_json] : vocab.items()) {
      if (!id_json.is_number_integer() || id_json.get<std::int64_t>() < 0 ||
          static_cast<std::size_t>(id_json.get<std::int64_t>()) >= id_cap) {
        return bad("/model/vocab", "token {} has id {}, expected an integer in [0, {})", json(text).dump(),
                   id_json.dump(), id_cap);
      }
      const auto id = static_cast<std::size_t>(id_json.get<std::int64_t>());
      std::optional<std::string> bytes = byte_level::to_bytes(text);
      if (!bytes || bytes->empty()) {
        return bad("/model/vocab", "token {} (id {}) is not written in the byte-level alphabet", json(text).dump(), id);
      }
      if (id >= token_bytes.size()) token_bytes.resize(id + 1);
      if (!token_bytes[id].empty()) return bad("/model/vocab", "id {} is used twice", id);
      token_bytes[id] = std::move(*bytes);
    }
    tok_.bpe_ = bpe_model(std::move(token_bytes), flag(model, "ignore_merges", false));
    if (!tok_.bpe_.has_all_bytes()) {
      spdlog::warn("{}: the vocabulary lacks some of the 256 byte tokens; such bytes are dropped", origin_);
    }

    if (!model.contains("merges") || !model["merges"].is_array()) return bad("/model/merges", "missing or not an array");
    const json& merges = model["merges"];
    tok_.bpe_.reserve_merges(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      std::string left, right;
      if (m.is_string()) {  // the older "a b" form
        const std::string& both = m.get_ref<const std::string&>();
        const std::size_t space = both.find(' ');
        if (space == std::string::npos || both.find(' ', space + 1) != std::string::npos) {
          return bad(fmt::format("/model/merges/{}", i), "expected \"left right\", found {}", m.dump());
        }
        left = both.substr(0, space);
        right = both.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        return bad(fmt::format("/model/merges/{}", i), "expected a pair of strings, found {}", m.dump());
      }
      const std::optional<std::string> lb = byte_level::to_bytes(left);
      const std::optional<std::string> rb = byte_level::to_bytes(right);
      const std::optional<token_id> l = lb ? tok_.bpe_.find(*lb) : std::nullopt;
      const std::optional<token_id> r = rb ? tok_.bpe_.find(*rb) : std::nullopt;
      const std::optional<token_id> merged = lb && rb ? tok_.bpe_.find(*lb + *rb) : std::nullopt;
      if (!l || !r || !merged) {
        return bad(fmt::format("/model/merges/{}", i), "merge {} uses a token that is not in the vocabulary",
                   m.dump());
      }
      tok_.bpe_.add_merge(*l, *r, *merged);  // a repeated pair keeps its first (lowest) rank
    }
    tok_.id_limit_ = tok_.bpe_.id_limit();
    return ok();
  }

  result<void> load_added(const json& root) {
    if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return ok();
    const json& list = root["added_tokens"];
    if (!list.is_array()) return bad("/added_tokens", "expected an array");
    const std::size_t id_cap = tok_.bpe_.id_limit() + 2 * list.size() + 4096;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const json& t = list[i];
      const std::string path = fmt::format("/added_tokens/{}", i);
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string()) {
        return bad(path, "expected an object with an integer id and a string content");
      }
      const std::int64_t id = t["id"].get<std::int64_t>();
      if (id < 0 || static_cast<std::size_t>(id) >= id_cap) return bad(path, "id {} is out of range", id);
      added_token a{t["content"].get<std::string>(), static_cast<token_id>(id), flag(t, "special", false),
                    flag(t, "lstrip", false), flag(t, "rstrip", false), flag(t, "single_word", false)};
      if (a.content.empty()) return bad(path, "empty content");
      if (!unicode::is_valid_utf8(a.content)) return bad(path, "content is not valid UTF-8");
      for (const added_token& other : tok_.added_) {
        if (other.id == a.id || other.content == a.content) return bad(path, "{} repeats an earlier added token", a.content);
      }
      tok_.added_.push_back(std::move(a));
    }
    std::stable_sort(tok_.added_.begin(), tok_.added_.end(),
                     [](const added_token& a, const added_token& b) { return a.content.size() > b.content.size(); });
    if (tok_.added_.empty()) return ok();
    token_id lo = tok_.added_[0].id, hi = lo;
    for (const added_token& a : tok_.added_) {
      lo = std::min(lo, a.id);
      hi = std::max(hi, a.id);
      tok_.added_first_byte_[static_cast<unsigned char>(a.content[0])] = true;
    }
    tok_.added_base_ = lo;
    tok_.added_index_.assign(static_cast<std::size_t>(hi - lo) + 1, -1);
    for (std::size_t i = 0; i < tok_.added_.size(); ++i) {
      tok_.added_index_[static_cast<std::size_t>(tok_.added_[i].id - lo)] = static_cast<std::int32_t>(i);
    }
    tok_.id_limit_ = std::max(tok_.id_limit_, static_cast<std::size_t>(hi) + 1);
    return ok();
  }

  // tokenizer_config.json: the names of eos / pad / bos and the context length. A name we do not know is
  // logged and ignored (the token table itself comes from tokenizer.json).
  result<void> load_config(const json& config) {
    if (!config.is_object()) return bad("(tokenizer_config.json) /", "expected a JSON object");
    const auto token = [&](const char* key) -> std::optional<token_id> {
      if (!config.contains(key)) return std::nullopt;
      const json& v = config[key];
      std::string text;
      if (v.is_string()) {
        text = v.get<std::string>();
      } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
        text = v["content"].get<std::string>();
      } else {
        return std::nullopt;
      }
      std::optional<token_id> id = tok_.find_token(text);
      if (!id) spdlog::warn("tokenizer_config.json: {} '{}' is not a token of {}", key, text, origin_);
      return id;
    };
    tok_.eos_ = token("eos_token");
    tok_.pad_ = token("pad_token");
    tok_.bos_ = token("bos_token");
    if (config.contains("model_max_length") && config["model_max_length"].is_number_unsigned()) {
      tok_.model_max_length_ = config["model_max_length"].get<std::uint64_t>();
    }
    return ok();
  }

  std::string origin_;
  tokenizer tok_;
};

namespace {

result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::not_found, "{}: cannot open", path.string());
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return fail(errc::io_error, "{}: read failed", path.string());
  return std::move(contents).str();
}

}  // namespace

result<tokenizer> tokenizer::parse(std::string_view tokenizer_json, std::string_view config_json,
                                   std::string_view origin) {
  try {
    const json root = json::parse(tokenizer_json);
    json config;
    if (!config_json.empty()) {
      try {
        config = json::parse(config_json);
      } catch (const json::exception& e) {
        return fail(errc::parse_error, "tokenizer_config.json beside {}: {}", origin, e.what());
      }
    }
    return tokenizer_loader(origin).load(root, config_json.empty() ? nullptr : &config);
  } catch (const json::parse_error& e) {
    return fail(errc::parse_error, "{}: {}", origin, e.what());
  } catch (const json::exception& e) {
    return fail(errc::corrupt_data, "{}: {}", origin, e.what());
  } catch (const std::bad_alloc&) {
    return fail(errc::corrupt_data, "{}: out of memory while loading", origin);
  }
}

result<tokenizer> tokenizer::load(const std::filesystem::path& tokenizer_json) {
  QCODER_TRY(std::string text, read_file(tokenizer_json));
  std::string config;
  const std::filesystem::path config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(config_path, ec)) {
    QCODER_TRY(config, read_file(config_path));
  }
  result<tokenizer> tok = parse(text, config, tokenizer_json.string());
  if (tok) {
    spdlog::debug("tokenizer {}: {} vocabulary entries, {} merges, {} added tokens", tokenizer_json.string(),
                  tok->vocab_size(), tok->merge_count(), tok->added_tokens().size());
  }
  return tok;
}

result<tokenizer> tokenizer::load_model_dir(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return fail(errc::not_found, "{}: no tokenizer.json in this folder", dir.string());
  }
  return load(file);
}

}  // namespace qcoder::engine
