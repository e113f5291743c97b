// `qcoder context`: the prompt the assistant would send for a cursor, and where its token budget went.
//
// Prints the assembled prompt (control tokens spelled out), then one line per block with its tokens, the
// total against the budget and the completion mode the cursor gets. With --json, one object with the same.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "context/completion_filter.h"
#include "context/document.h"
#include "context/prompt_builder.h"
#include "context/recent_snippets.h"
#include "context/workspace_index.h"
#include "lsp/cli/command.h"
#include "lsp/cli/tokenize_command.h"

namespace qcoder::cli {
namespace fs = std::filesystem;

int run_context(args_view args) {
  std::string file, workspace, model_dir, tokenizer_file;
  int line = 0, col = 0, budget = 2048;
  bool chat = false, as_json = false;
  arg_parser parser("context --file F --line L --col C [--workspace DIR] [--model DIR] [--budget N] [--json]",
                    "Assemble the fill-in-the-middle prompt for a cursor and show how the token budget was used.\n"
                    "LINE and COL are 1-based; COL counts bytes (as compilers and vim report it). With --workspace,\n"
                    "the folder is indexed first, so definitions from other files can be found.");
  parser.option("file", "F", "the file being edited", &file);
  parser.option("line", "L", "cursor line (1-based)", &line);
  parser.option("col", "C", "cursor column (1-based, in bytes)", &col);
  parser.option("workspace", "DIR", "workspace folder to index (default: none)", &workspace);
  parser.option("model", "DIR", "model folder whose tokenizer counts the budget (default: the Hugging Face cache)",
                &model_dir);
  parser.option("tokenizer", "FILE", "a tokenizer.json instead of --model", &tokenizer_file);
  parser.option("budget", "N", "prompt token budget", &budget);
  parser.flag("chat", "wrap the prompt in a chat turn", &chat);
  parser.flag("json", "print one JSON object", &as_json);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (file.empty() || line < 1 || col < 1 || budget < 1) {
    fmt::print(stderr, "qcoder: --file, --line (>= 1), --col (>= 1) are required; --budget must be positive\n");
    return exit_usage;
  }

  std::ifstream in(file, std::ios::binary);
  if (!in) return report_failure(fail(errc::not_found, "{}: cannot open", file));
  std::ostringstream bytes;
  bytes << in.rdbuf();

  result<engine::tokenizer> tok = load_cli_tokenizer(tokenizer_file, model_dir);
  if (!tok) return report_failure(tok.err());

  context::workspace_index index;
  std::string label = fs::path(file).generic_string();
  if (!workspace.empty()) {
    std::error_code ec;
    const fs::path root = fs::canonical(workspace, ec);
    if (ec) return report_failure(fail(errc::not_found, "--workspace {}: {}", workspace, ec.message()));
    index.start(root);
    index.wait();
    label = index.relative(fs::absolute(file).lexically_normal().string());
  }

  context::document doc = context::document::from_path(label, bytes.str());
  result<std::size_t> cursor = doc.offset_at({static_cast<std::size_t>(line - 1), static_cast<std::size_t>(col - 1)},
                                             context::column_unit::utf8);
  if (!cursor) return report_failure(cursor.err());

  context::prompt_options options;
  options.budget_tokens = static_cast<std::size_t>(budget);
  options.chat = chat;
  if (!workspace.empty()) options.repo_name = fs::canonical(workspace).filename().string();
  result<context::prompt_builder> builder = context::prompt_builder::create(*tok, options);
  if (!builder) return report_failure(builder.err());
  const context::source_view view = doc.view();
  result<context::prompt> prompt = builder->build({view, *cursor, workspace.empty() ? nullptr : &index, nullptr});
  if (!prompt) return report_failure(prompt.err());
  const context::completion_plan plan = context::plan_completion(view, *cursor);

  if (as_json) {
    nlohmann::json blocks = nlohmann::json::array();
    for (const context::prompt_block& b : prompt->blocks) {
      blocks.push_back({{"kind", context::to_string(b.kind)}, {"name", b.name}, {"tokens", b.tokens}});
    }
    const nlohmann::json out = {{"file", label},
                                {"mode", context::to_string(plan.mode)},
                                {"mode_reason", plan.reason},
                                {"budget", prompt->budget},
                                {"tokens", prompt->tokens()},
                                {"blocks", blocks},
                                {"prompt", prompt->text}};
    fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return exit_ok;
  }
  std::fwrite(prompt->text.data(), 1, prompt->text.size(), stdout);
  fmt::print("\n\n{:-<72}\n{:<10} {:>6}  {}\n", "", "block", "tokens", "name");
  for (const context::prompt_block& b : prompt->blocks) fmt::print("{:<10} {:>6}  {}\n", context::to_string(b.kind), b.tokens, b.name);
  fmt::print("{:<10} {:>6}  of a budget of {}\n", "total", prompt->tokens(), prompt->budget);
  fmt::print("mode: {} ({})\n", context::to_string(plan.mode), plan.reason);
  return exit_ok;
}

}  // namespace qcoder::cli
