// `qcoder info`: where the model is, as qcoder would find it, and what is in the folder.
#include <filesystem>

#include <fmt/core.h>

#include "engine/model_locator.h"
#include "lsp/cli/command.h"

namespace qcoder::cli {

int run_info(args_view args) {
  std::string model_dir;
  arg_parser parser("info [--model DIR]",
                    "Find the model the way every qcoder command does (--model, else the Hugging Face cache in\n"
                    "$HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub, FP8 preferred) and describe it.");
  parser.option("model", "DIR", "model folder (config.json + safetensors)", &model_dir);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  result<engine::located_model> model = engine::locate_model(engine::model_search::from_environment(model_dir));
  if (!model) return report_failure(model.err());
  fmt::print("model: {}\nfound via: {}\n", model->dir.string(), model->source);
  return exit_ok;
}

}  // namespace qcoder::cli
