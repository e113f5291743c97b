// The tokenizer half of make_model: the real Qwen3 tokenizer, copied for a full vocabulary or cut down to a
// small one exactly as the tiny test checkpoints are (256 byte symbols, the first merges, added tokens
// renumbered into the top ids). Plain functions; thread-safe.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/make_model.h"
#include "engine/make_model_internal.h"

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

result<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::not_found, "{}: cannot read (pass the real Qwen3 tokenizer folder with --tokenizer)", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "a b" (old format) or ["a", "b"] (new format).
bool merge_parts(const json& m, std::string& a, std::string& b) {
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    a = m[0].get<std::string>();
    b = m[1].get<std::string>();
    return true;
  }
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const std::size_t space = s.find(' ');
    if (space == std::string::npos) return false;
    a = s.substr(0, space);
    b = s.substr(space + 1);
    return true;
  }
  return false;
}

}  // namespace

result<void> write_file_atomic(const fs::path& path, std::string_view text) {
  const fs::path temp = path.parent_path() / fmt::format(".{}.partial", path.filename().string());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      return fail(errc::io_error, "{}: cannot write", temp.string());
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    return fail(errc::io_error, "{}: cannot rename to {}: {}", temp.string(), path.string(), ec.message());
  }
  return ok();
}

namespace {

result<void> write_tokenizer_unguarded(const fs::path& source_dir, std::int64_t vocab_size, const fs::path& out_dir) {
  const fs::path tokenizer_path = source_dir / "tokenizer.json";
  const fs::path config_path = source_dir / "tokenizer_config.json";
  const std::string tok_src = tokenizer_path.string();
  QCODER_TRY(const std::string tokenizer_text, read_text(tokenizer_path));
  QCODER_TRY(const std::string config_text, read_text(config_path));

  // The vocabulary as a map (ordered_json would be quadratic on 150k keys).
  const json full = json::parse(tokenizer_text, nullptr, /*allow_exceptions=*/false);
  if (full.is_discarded() || !full.is_object()) return fail(errc::parse_error, "{}: not a JSON object", tok_src);
  const auto model_it = full.find("model");
  const auto added_it = full.find("added_tokens");
  if (model_it == full.end() || !model_it->is_object() || !model_it->contains("vocab") || !(*model_it)["vocab"].is_object() ||
      !model_it->contains("merges") || !(*model_it)["merges"].is_array()) {
    return fail(errc::parse_error, "{}: expected a BPE model with \"vocab\" and \"merges\"", tok_src);
  }
  if (added_it == full.end() || !added_it->is_array()) return fail(errc::parse_error, "{}: missing \"added_tokens\"", tok_src);
  const json& vocab = (*model_it)["vocab"];
  const json& merges = (*model_it)["merges"];
  const auto added = static_cast<std::int64_t>(added_it->size());
  const auto full_size = static_cast<std::int64_t>(vocab.size()) + added;

  if (vocab_size >= full_size) {  // the whole tokenizer fits: copy it
    QCODER_CHECK(write_file_atomic(out_dir / "tokenizer.json", tokenizer_text));
    return write_file_atomic(out_dir / "tokenizer_config.json", config_text);
  }
  const std::int64_t keep = vocab_size - added;
  if (keep < 256) {
    return fail(errc::invalid_argument, "vocab {} is too small for a byte-level tokenizer: it needs 256 byte symbols + {} added tokens",
                vocab_size, added);
  }

  std::vector<std::string> by_id(static_cast<std::size_t>(keep));
  std::vector<bool> present(static_cast<std::size_t>(keep), false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) return fail(errc::parse_error, "{}: vocab entry {} has a non-integer id", tok_src, json(it.key()).dump());
    const auto id = it.value().get<std::int64_t>();
    if (id >= 0 && id < keep) {
      by_id[static_cast<std::size_t>(id)] = it.key();
      present[static_cast<std::size_t>(id)] = true;
    }
  }
  if (const auto hole = std::find(present.begin(), present.end(), false); hole != present.end()) {
    return fail(errc::parse_error, "{}: vocab has no id {}", tok_src, hole - present.begin());
  }
  const std::set<std::string> kept(by_id.begin(), by_id.end());
  const std::int64_t merge_count = std::min<std::int64_t>(keep - 256, static_cast<std::int64_t>(merges.size()));
  ordered_json kept_merges = ordered_json::array();
  for (std::int64_t i = 0; i < merge_count; ++i) {
    std::string a;
    std::string b;
    if (!merge_parts(merges[static_cast<std::size_t>(i)], a, b)) return fail(errc::parse_error, "{}: merges[{}] is malformed", tok_src, i);
    if (!kept.contains(a) || !kept.contains(b) || !kept.contains(a + b)) {
      return fail(errc::unsupported, "{}: merges[{}] ({} + {}) leaves the first {} ids: cannot cut this tokenizer down", tok_src, i,
                  json(a).dump(), json(b).dump(), keep);
    }
    kept_merges.push_back(ordered_json::array({a, b}));
  }

  // New ids for the added tokens: <|endoftext|> and <|im_end|> on top (they are bos/eos), the rest in order.
  std::map<std::int64_t, std::int64_t> renumber;  // old id -> new id
  std::int64_t next = keep;
  for (const json& t : *added_it) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") || !t["content"].is_string()) {
      return fail(errc::parse_error, "{}: malformed added_tokens entry {}", tok_src, t.dump());
    }
    const std::string& content = t["content"].get_ref<const std::string&>();
    const std::int64_t id = content == "<|endoftext|>" ? vocab_size - 2 : content == "<|im_end|>" ? vocab_size - 1 : next++;
    renumber[t["id"].get<std::int64_t>()] = id;
  }
  std::set<std::int64_t> new_ids;
  for (const auto& [from, to] : renumber) new_ids.insert(to);
  if (new_ids.size() != renumber.size() || (!new_ids.empty() && *new_ids.begin() < keep) || (!new_ids.empty() && *new_ids.rbegin() >= vocab_size)) {
    return fail(errc::unsupported, "{}: cannot renumber the added tokens into ids {}..{}", tok_src, keep, vocab_size - 1);
  }

  // The rest of the document in its own key order, without the big parts (re-added below).
  ordered_json::parser_callback_t skip_big = [](int depth, ordered_json::parse_event_t event, ordered_json& parsed) {
    return !(depth == 2 && event == ordered_json::parse_event_t::key && (parsed == "vocab" || parsed == "merges"));
  };
  ordered_json doc = ordered_json::parse(tokenizer_text, skip_big, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return fail(errc::parse_error, "{}: not valid JSON", tok_src);
  ordered_json added_tokens = ordered_json::array();
  for (ordered_json t : doc["added_tokens"]) {
    t["id"] = renumber.at(t["id"].get<std::int64_t>());
    added_tokens.push_back(std::move(t));
  }
  std::stable_sort(added_tokens.begin(), added_tokens.end(),
                   [](const ordered_json& x, const ordered_json& y) { return x["id"].get<std::int64_t>() < y["id"].get<std::int64_t>(); });
  doc["added_tokens"] = std::move(added_tokens);
  constexpr std::string_view placeholder = "@@qcoder-vocab@@";
  doc["model"]["vocab"] = placeholder;
  doc["model"]["merges"] = std::move(kept_merges);
  std::string vocab_text = "{";
  for (std::int64_t id = 0; id < keep; ++id) {
    if (id > 0) vocab_text += ',';
    vocab_text += json(by_id[static_cast<std::size_t>(id)]).dump();
    vocab_text += ':';
    vocab_text += std::to_string(id);
  }
  vocab_text += '}';
  std::string out = doc.dump();
  const std::string quoted = fmt::format("\"{}\"", placeholder);
  out.replace(out.find(quoted), quoted.size(), vocab_text);
  QCODER_CHECK(write_file_atomic(out_dir / "tokenizer.json", out));

  ordered_json config = ordered_json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return fail(errc::parse_error, "{}: not a JSON object", config_path.string());
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    ordered_json decoder = ordered_json::object();
    for (const auto& [id_text, token] : config["added_tokens_decoder"].items()) {
      std::int64_t old_id = -1;
      try {
        old_id = std::stoll(id_text);
      } catch (const std::exception&) {
        return fail(errc::parse_error, "{}: added_tokens_decoder key \"{}\" is not an id", config_path.string(), id_text);
      }
      const auto it = renumber.find(old_id);
      if (it == renumber.end()) return fail(errc::parse_error, "{}: added token {} is not in tokenizer.json", config_path.string(), old_id);
      decoder[std::to_string(it->second)] = token;
    }
    config["added_tokens_decoder"] = std::move(decoder);
  }
  spdlog::debug("make-model: tokenizer cut down to {} ids ({} merges, {} added tokens)", vocab_size, merge_count, added);
  return write_file_atomic(out_dir / "tokenizer_config.json", config.dump(2));
}

}  // namespace

result<void> write_tokenizer(const fs::path& source_dir, std::int64_t vocab_size, const fs::path& out_dir) {
  try {
    return write_tokenizer_unguarded(source_dir, vocab_size, out_dir);
  } catch (const std::exception& e) {
    return fail(errc::parse_error, "{}: {}", (source_dir / "tokenizer.json").string(), e.what());
  }
}

}  // namespace qcoder::engine
