// Finding the model on disk the way users keep it: an explicit `--model DIR`, else the Hugging Face cache.
//
// The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; inside it we look at
// `models--Qwen--Qwen3-Coder-Next*/snapshots/<revision>/`, preferring an FP8 repository and, within a
// repository, the revision `refs/main` points at. Nothing here touches the network.
// Thread-safe: pure functions over the file system and the given environment.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kernels/common/result.h"

namespace qcoder::engine {

struct model_search {
  std::string model_dir;     // --model; when set, it is the only place looked at
  std::string hf_hub_cache;  // $HF_HUB_CACHE
  std::string hf_home;       // $HF_HOME
  std::string home;          // $HOME

  // Fills the environment fields from the process environment.
  static model_search from_environment(std::string model_dir = {});
};

struct located_model {
  std::filesystem::path dir;  // holds config.json and the safetensors (or their index)
  std::string source;         // "--model" or "Hugging Face cache (<repo folder>)"
};

// What a folder must hold to be picked: the weights (config.json and the safetensors), or only the
// tokenizer (tokenizer.json), which is all a remote backend needs.
enum class model_files { weights, tokenizer };

// The model folder, or a not_found error that lists every place looked at and how to get the model.
result<located_model> locate_model(const model_search& search, model_files needs = model_files::weights);

// The hub folders to search, in order (for messages and tests).
std::vector<std::filesystem::path> hub_dirs(const model_search& search);

}  // namespace qcoder::engine
