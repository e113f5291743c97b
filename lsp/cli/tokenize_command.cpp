// `qcoder tokenize` and `qcoder detokenize`: the tokenizer as a line-oriented tool.
//
// tokenize reads lines of {"text": "..."} and prints one JSON array of ids per line; detokenize reads lines
// of id arrays (or {"ids": [...]}) and prints {"text": "..."} per line. Empty lines are skipped. A line that
// cannot be read stops the command with its line number (exit 1), so output lines always match input lines.
#include "lsp/cli/tokenize_command.h"

#include <cstdio>
#include <fstream>
#include <iostream>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/model_locator.h"
#include "lsp/cli/command.h"

namespace qcoder::cli {
namespace {

using json = nlohmann::json;

// Calls on_line(line_number, text) for each non-empty line of `path` (stdin when empty or "-").
template <typename F>
result<void> for_each_line(const std::string& path, F&& on_line) {
  std::ifstream file;
  if (!path.empty() && path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return fail(errc::not_found, "{}: cannot open", path);
  }
  std::istream& in = file.is_open() ? static_cast<std::istream&>(file) : std::cin;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    QCODER_CHECK(on_line(number, line));
  }
  if (in.bad()) return fail(errc::io_error, "{}: read failed", path.empty() ? "stdin" : path);
  return ok();
}

std::string where(const std::string& path, std::size_t line) {
  return fmt::format("{}:{}", path.empty() || path == "-" ? "stdin" : path, line);
}

}  // namespace

result<engine::tokenizer> load_cli_tokenizer(const std::string& tokenizer_file, const std::string& model_dir,
                                             std::string* source) {
  std::filesystem::path file;
  if (!tokenizer_file.empty()) {
    file = tokenizer_file;
  } else {
    QCODER_TRY(engine::located_model model, engine::locate_model(engine::model_search::from_environment(model_dir)));
    file = model.dir / "tokenizer.json";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      return fail(errc::not_found, "{}: the model folder has no tokenizer.json (or pass --tokenizer FILE)",
                  model.dir.string());
    }
  }
  if (source != nullptr) *source = file.string();
  return engine::tokenizer::load(file);
}

int run_tokenize(args_view args) {
  std::string tokenizer_file, model_dir, jsonl;
  bool special = false;
  arg_parser parser("tokenize (--tokenizer FILE | --model DIR) [--jsonl FILE] [--special]",
                    "Encode lines of {\"text\": \"...\"} (from --jsonl FILE, else stdin) and print one JSON array of\n"
                    "token ids per line. Text is encoded as document content: a literal <|fim_prefix|> stays\n"
                    "text. With --special, added tokens in the text are the control tokens (prompt templates).\n"
                    "Without --tokenizer and --model, the model in the Hugging Face cache is used.");
  parser.option("tokenizer", "FILE", "a Hugging Face tokenizer.json (tokenizer_config.json beside it is read too)",
                &tokenizer_file);
  parser.option("model", "DIR", "model folder holding tokenizer.json", &model_dir);
  parser.option("jsonl", "FILE", "input lines of {\"text\": ...} (default: stdin)", &jsonl);
  parser.flag("special", "match added tokens (<|im_start|>, <|fim_prefix|>, ...) in the text", &special);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  result<engine::tokenizer> tok = load_cli_tokenizer(tokenizer_file, model_dir);
  if (!tok) return report_failure(tok.err());
  engine::encoder enc(*tok);
  std::vector<engine::token_id> ids;
  std::string out;
  result<void> done = for_each_line(jsonl, [&](std::size_t number, const std::string& line) -> result<void> {
    json j;
    try {  // nlohmann's message says what is wrong: a lone surrogate, bad UTF-8, truncation
      j = json::parse(line);
    } catch (const json::exception& e) {
      return fail(errc::parse_error, "{}: {}", where(jsonl, number), e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      return fail(errc::parse_error, "{}: expected an object {{\"text\": \"...\"}}", where(jsonl, number));
    }
    ids.clear();
    enc.encode(j["text"].get_ref<const std::string&>(), special, ids);
    out.clear();
    fmt::format_to(std::back_inserter(out), "[{}]\n", fmt::join(ids, ","));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return ok();
  });
  std::fflush(stdout);
  if (!done) return report_failure(done.err());
  return exit_ok;
}

int run_detokenize(args_view args) {
  std::string tokenizer_file, model_dir, jsonl;
  bool skip_added = false;
  arg_parser parser("detokenize (--tokenizer FILE | --model DIR) [--jsonl FILE] [--skip-added]",
                    "Decode lines of token id arrays ([1, 2, 3] or {\"ids\": [...]}, from --jsonl FILE, else stdin)\n"
                    "and print {\"text\": \"...\"} per line. Bytes that do not form UTF-8 become U+FFFD.");
  parser.option("tokenizer", "FILE", "a Hugging Face tokenizer.json", &tokenizer_file);
  parser.option("model", "DIR", "model folder holding tokenizer.json", &model_dir);
  parser.option("jsonl", "FILE", "input lines of id arrays (default: stdin)", &jsonl);
  parser.flag("skip-added", "leave out added tokens (<|im_end|>, <|fim_middle|>, ...)", &skip_added);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  result<engine::tokenizer> tok = load_cli_tokenizer(tokenizer_file, model_dir);
  if (!tok) return report_failure(tok.err());
  std::vector<engine::token_id> ids;
  result<void> done = for_each_line(jsonl, [&](std::size_t number, const std::string& line) -> result<void> {
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    const json* list = &j;
    if (j.is_object() && j.contains("ids")) list = &j["ids"];
    if (!list->is_array()) return fail(errc::parse_error, "{}: expected an array of token ids", where(jsonl, number));
    ids.clear();
    for (const json& id : *list) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > INT32_MAX) {
        return fail(errc::parse_error, "{}: {} is not a token id", where(jsonl, number), id.dump());
      }
      ids.push_back(static_cast<engine::token_id>(id.get<std::int64_t>()));
    }
    result<std::string> text = tok->decode(ids, skip_added);
    if (!text) return fail(text.err().code, "{}: {}", where(jsonl, number), text.err().message);
    fmt::print("{}\n", json{{"text", *text}}.dump());
    return ok();
  });
  std::fflush(stdout);
  if (!done) return report_failure(done.err());
  return exit_ok;
}

}  // namespace qcoder::cli
