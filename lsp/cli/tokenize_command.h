// What the tokenizer commands (`tokenize`, `detokenize`, `bench tokenize`) share: finding the tokenizer
// from --tokenizer FILE or --model DIR, else the model the Hugging Face cache holds.
// Not thread-safe; used on the main thread at start-up.
#pragma once

#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "kernels/common/result.h"

namespace qcoder::cli {

// `tokenizer_file` wins; else `model_dir`/tokenizer.json; else the located model's tokenizer.json.
// `source` receives the path that was loaded.
result<engine::tokenizer> load_cli_tokenizer(const std::string& tokenizer_file, const std::string& model_dir,
                                             std::string* source = nullptr);

}  // namespace qcoder::cli
