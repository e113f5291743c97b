// A test of what a model that reads routed experts from its files on demand (the expert store, on the CPU or
// under a device's VRAM tier) does when a shard shrinks under it: the forward pass fails with an I/O error
// that names the file and leaves the state where it was, and once the file is back the same request gives
// the same logits bit for bit. Shared by the expert store's tests and the device tier's.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/make_model.h"
#include "engine/model/qwen3_next.h"

namespace qcoder::engine {

// Makes a 4-layer FP8 checkpoint in a fresh temporary folder `name`, loads it with `load`, and runs the
// check above; `loaded` may look at the model first. The folder is removed at the end.
inline void check_shard_truncation(const std::string& name, int seed,
                                   const std::function<std::unique_ptr<qwen3_next>(const std::filesystem::path&)>& load,
                                   const std::function<void(qwen3_next&)>& loaded = {}) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  make_model_options make;
  make.out_dir = dir;
  make.fp8 = true;
  make.layers = 4;
  make.seed = static_cast<std::uint64_t>(seed);
  ASSERT_TRUE(make_model(make));
  const fs::path shard = dir / "model.safetensors";
  const fs::path backup = dir / "backup.bin";
  fs::copy_file(shard, backup);

  std::unique_ptr<qwen3_next> model = load(dir);
  ASSERT_TRUE(model);
  if (loaded) loaded(*model);
  // The state lives inside this block: on a device it is allocated from the model's memory resource, so it
  // must be freed before the model.
  {
    const std::vector<std::int32_t> ids = {11, 250, 1999, 7, 42, 1024};
    const std::int64_t vocab = model->config().vocab_size;
    std::vector<float> before(ids.size() * static_cast<std::size_t>(vocab));
    sequence_state state = model->new_state(64);
    ASSERT_TRUE(model->forward(ids, state, before.data(), logits_mode::all));

    // The file shrinks to its header while the process runs: the next request fails, naming the file.
    fs::resize_file(shard, 4096);
    state.reset();
    std::vector<float> during(before.size());
    result<void> r = model->forward(ids, state, during.data(), logits_mode::all);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::io_error);
    EXPECT_NE(r.err().message.find("model.safetensors"), std::string::npos) << r.err().message;
    EXPECT_EQ(state.length(), 0);

    // The file comes back: the same request succeeds, bit for bit as before.
    fs::copy_file(backup, shard, fs::copy_options::overwrite_existing);
    std::vector<float> after(before.size());
    ASSERT_TRUE(model->forward(ids, state, after.data(), logits_mode::all));
    EXPECT_TRUE(after == before);
  }
  model.reset();
  fs::remove_all(dir);
}

}  // namespace qcoder::engine
