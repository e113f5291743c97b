// Helpers shared by the two halves of make_model (make_model.cpp, make_model_tokenizer.cpp); not an API.
// Thread-safe: plain functions over the file system.
#pragma once

#include <filesystem>
#include <string_view>

#include "kernels/common/result.h"

namespace qcoder::engine {

// Writes `text` to `.<name>.partial` next to `path`, then renames it over `path`: readers see the old file
// or the complete new one, never half of one.
result<void> write_file_atomic(const std::filesystem::path& path, std::string_view text);

}  // namespace qcoder::engine
