// `qcoder info`: where the model is, as qcoder would find it, and what is in the folder.
#include <filesystem>

#include <fmt/core.h>

#include "engine/checkpoint.h"
#include "engine/model_config.h"
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
  fmt::print("model:      {}\nfound via:  {}\n", model->dir.string(), model->source);
  result<engine::model_config> config = engine::model_config::load(model->dir);
  if (!config) return report_failure(config.err());
  result<engine::checkpoint> ckpt = engine::checkpoint::open(model->dir);
  if (!ckpt) return report_failure(ckpt.err());
  const engine::model_config& c = *config;
  std::int64_t full = 0;
  for (engine::layer_kind k : c.layer_types) full += k == engine::layer_kind::full_attention ? 1 : 0;
  std::uint64_t expert_bytes = 0;
  for (std::string_view name : ckpt->names()) {
    if (name.find(".mlp.experts.") != std::string_view::npos) expert_bytes += ckpt->find(name)->bytes.size();
  }
  fmt::print("type:       {} ({}), {} tensors, {:.2f} GB ({:.2f} GB routed experts)\n", c.model_type,
             c.quant.fp8 ? "FP8 e4m3, 128x128 block scales" : "unquantised", ckpt->tensor_count(),
             static_cast<double>(ckpt->total_bytes()) / 1e9, static_cast<double>(expert_bytes) / 1e9);
  fmt::print("layers:     {} ({} Gated DeltaNet, {} gated attention), hidden {}\n", c.num_hidden_layers,
             c.num_hidden_layers - full, full, c.hidden_size);
  fmt::print("experts:    {} per layer, top-{}, width {}, shared expert width {}\n", c.num_experts,
             c.num_experts_per_tok, c.moe_intermediate_size, c.shared_expert_intermediate_size);
  fmt::print("vocabulary: {}\n", c.vocab_size);
  return exit_ok;
}

}  // namespace qcoder::cli
