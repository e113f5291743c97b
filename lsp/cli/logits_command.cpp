// `qcoder logits`: raw next-token logits for a prompt, as little-endian float32 [T, vocab]; row t holds the
// logits after token t. Machine-readable, for tests and comparisons with other implementations.
#include <cstdio>
#include <fstream>

#include <fmt/core.h>

#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"

namespace qcoder::cli {

int run_logits(args_view args) {
  model_flags flags;
  std::string ids_text, out_path;
  bool step = false;
  arg_parser parser("logits --model DIR --ids IDS --out FILE [--step]",
                    "Write the logits after every prompt token as little-endian float32 [T, vocab] to FILE.\n"
                    "The prompt runs as one batch (the prefill path), or one token at a time with --step.");
  flags.add_to(parser);
  parser.option("ids", "IDS", "prompt token ids, comma-separated", &ids_text)
      .option("out", "FILE", "output file", &out_path)
      .flag("step", "feed one token per forward pass (the decode path)", &step)
      .required("ids")
      .required("out");
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;

  result<std::vector<std::int32_t>> ids = parse_ids(ids_text);
  if (!ids) return report_failure(ids.err());
  result<std::unique_ptr<engine::qwen3_next>> model = flags.load();
  if (!model) return report_failure(model.err());
  engine::qwen3_next& m = **model;
  const std::int64_t vocab = m.config().vocab_size;
  const std::int64_t n = static_cast<std::int64_t>(ids->size());
  std::vector<float> logits(static_cast<std::size_t>(n * vocab));
  engine::sequence_state state = m.new_state(n);
  if (step) {
    for (std::int64_t t = 0; t < n; ++t) {
      result<void> r = m.forward(std::span(ids->data() + t, 1), state, logits.data() + t * vocab, engine::logits_mode::last);
      if (!r) return report_failure(r.err());
    }
  } else if (result<void> r = m.forward(*ids, state, logits.data(), engine::logits_mode::all); !r) {
    return report_failure(r.err());
  }

  // Write to a temporary name and rename, so a reader never sees half a file.
  const std::string tmp = out_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    if (!out) return report_failure(fail(errc::io_error, "cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    return report_failure(fail(errc::io_error, "cannot rename {} to {}", tmp, out_path));
  }
  return exit_ok;
}

}  // namespace qcoder::cli
