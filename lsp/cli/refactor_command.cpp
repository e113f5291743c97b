// `qcoder refactor`: one instruction over a repository (see service/refactor.h). A dry run (the default)
// prints the change as a unified diff; --apply writes each changed file atomically, refusing files that
// changed since they were read; --patch FILE writes the whole change as a patch before anything is applied.
// Ctrl-C stops between units: files already written are complete, the file in progress is left untouched.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"
#include "lsp/cli/remote_flags.h"
#include "service/atomic_file.h"
#include "service/refactor.h"
#include "service/text_diff.h"

namespace qcoder::cli {
namespace {
namespace fs = std::filesystem;

volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) {
  interrupted = 1;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, s / 60 % 60) : fmt::format("{}m{:02}s", s / 60, s % 60);
}

// Progress on stderr: one redrawn line on a terminal, a line per file otherwise, at most 10 a second.
class progress_line {
 public:
  explicit progress_line(bool terminal) : terminal_(terminal) {}
  void update(const service::refactor_stats& s, std::string_view path) {
    const auto now = std::chrono::steady_clock::now();
    const bool new_file = path != last_path_;
    if (!new_file && now - last_ < std::chrono::milliseconds(100)) return;
    if (!terminal_ && !new_file) return;
    last_ = now;
    last_path_ = path;
    const double rate = s.seconds > 0 ? static_cast<double>(s.generated_tokens) / s.seconds : 0.0;
    std::string eta = "?";
    if (s.files_done > 0 && s.files > s.files_done) {
      eta = duration_text(s.seconds / static_cast<double>(s.files_done) * static_cast<double>(s.files - s.files_done));
    }
    const std::string text = fmt::format("refactor {}/{} files, {} units ({} changed), {:.1f} tok/s, ETA {}  {}",
                                         s.files_done, s.files, s.units_rewritten, s.units_changed, rate, eta, path);
    if (terminal_) {
      fmt::print(stderr, "\r\033[K{}", text.substr(0, 160));
    } else {
      fmt::print(stderr, "{}\n", text);
    }
    std::fflush(stderr);
  }
  void finish() {
    if (terminal_) fmt::print(stderr, "\r\033[K");
  }

 private:
  bool terminal_;
  std::chrono::steady_clock::time_point last_{};
  std::string last_path_;
};

}  // namespace

int run_refactor(args_view args) {
  model_flags flags;
  remote_flags remote(flags);
  prefix_cache_flags cache_flags;
  service::refactor_options options;
  std::string workspace = ".";
  std::string patch;
  bool apply = false, dry_run = false, no_check = false, no_speculation = false;
  int max_files = 100000;
  int jobs = 1;
  arg_parser parser("refactor --instruction TEXT [--workspace DIR] [--include GLOB]... [--exclude GLOB]... [--dry-run | --apply]",
                    "Apply one instruction to every file of a workspace it concerns, unit by unit (top-level definitions).\n"
                    "Prints a unified diff (--dry-run, the default) or writes the files (--apply), each one atomically.");
  flags.add_to(parser);
  cache_flags.add_to(parser);
  remote.add_to(parser);
  parser.option("instruction", "TEXT", "what to change, e.g. \"rename `getUser` to `fetchUser`\"", &options.instruction)
      .option("workspace", "DIR", "the repository (default: the current folder)", &workspace)
      .repeated("include", "GLOB", "only files matching GLOB (e.g. '*.py', 'src/**'); repeatable", &options.walk.include)
      .repeated("exclude", "GLOB", "skip files matching GLOB; repeatable", &options.walk.exclude)
      .flag("dry-run", "print the change as a unified diff and write nothing (the default)", &dry_run)
      .flag("apply", "write the changed files", &apply)
      .option("patch", "FILE", "write the whole change as a patch to FILE (with --apply: before any file is written)", &patch)
      .option("max-files", "N", "look at no more than N files", &max_files)
      .option("jobs", "N",
              "rewrite N units at once, decoded together so each weight read serves all of them (default 1; "
              "the output is the same)",
              &jobs)
      .flag("no-relevance-check", "rewrite every unit that passes the name filter, without asking the model first", &no_check)
      .flag("no-speculation", "decode one token at a time (no drafts from the unit; the output is the same)", &no_speculation)
      .flag("accept-incomplete", "keep a rewrite cut off by its token limit (by default the unit is left as it was)",
            &options.accept_incomplete);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (result<void> checked = remote.validate(); !checked) return report_failure(checked.err());
  if (apply && dry_run) return report_failure(fail(errc::invalid_argument, "--apply and --dry-run exclude each other"));
  if (options.instruction.empty()) return report_failure(fail(errc::invalid_argument, "--instruction is required"));
  if (max_files < 1) return report_failure(fail(errc::invalid_argument, "--max-files must be ≥ 1"));
  if (jobs < 1 || jobs > 64) return report_failure(fail(errc::invalid_argument, "--jobs must be in 1..64"));
  options.max_files = static_cast<std::size_t>(max_files);
  options.check_relevance = !no_check;
  std::error_code ec;
  const fs::path root = fs::canonical(workspace, ec);
  if (ec || !fs::is_directory(root)) return report_failure(fail(errc::not_found, "--workspace {}: not a folder", workspace));

  result<service::loaded_engine> loaded = remote.enabled() ? remote.load(flags) : load_engine(flags, cache_flags);
  if (!loaded) return report_failure(loaded.err());
  const service::rewriter_options rewriting{.speculate = !no_speculation, .jobs = static_cast<std::size_t>(jobs)};
  std::shared_ptr<const engine::tokenizer> tok = loaded->tokenizer;
  std::optional<service::engine_backend> local;
  std::unique_ptr<service::unit_rewriter> rewriter;
  if (loaded->remote) {
    rewriter = std::make_unique<service::backend_rewriter>(*tok, *loaded->remote, rewriting);
  } else {
    result<engine::tokenizer> loaded_tok = engine::tokenizer::load_model_dir(loaded->model->weights_file().dir());
    if (!loaded_tok) return report_failure(loaded_tok.err());
    tok = std::make_shared<const engine::tokenizer>(std::move(*loaded_tok));
    local.emplace(tok, *loaded->model, loaded->cache.get());
    rewriter = std::make_unique<service::model_rewriter>(*tok, *local, rewriting);
  }

  // Ctrl-C: stop between units (a watcher turns the signal into a stop request).
  std::stop_source stop;
  std::signal(SIGINT, on_interrupt);
  std::jthread watcher([&stop](std::stop_token done) {
    while (!done.stop_requested() && !interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (interrupted) stop.request_stop();
  });

  progress_line progress(isatty(STDERR_FILENO) == 1);
  std::vector<service::file_change> changes;
  std::vector<std::string> conflicts;
  std::size_t written = 0;
  const bool write_as_we_go = apply && patch.empty();
  service::refactor_callbacks callbacks;
  callbacks.on_progress = [&](const service::refactor_stats& s, std::string_view path) { progress.update(s, path); };
  callbacks.on_file = [&](const service::file_change& change) -> result<void> {
    if (write_as_we_go) {
      result<void> done = service::replace_file_atomically(root / change.path, change.updated, &change.original);
      if (!done && done.err().code == errc::conflict) {
        conflicts.push_back(change.path);
        spdlog::warn("refactor: {}", done.err().message);
        return ok();
      }
      if (!done) return done;
      ++written;
    }
    changes.push_back(change);
    return ok();
  };
  result<service::refactor_stats> stats = service::run_refactor(root, options, *rewriter, callbacks, stop.get_token());
  progress.finish();
  watcher.request_stop();
  if (!stats) return report_failure(stats.err());

  std::string diff;
  for (const service::file_change& c : changes) {
    diff += service::unified_diff("a/" + c.path, "b/" + c.path, c.original, c.updated);
  }
  if (!patch.empty()) {
    const fs::path patch_path = fs::absolute(patch);
    // A new file, written whole or not at all (write to a temporary name, then rename).
    const fs::path temp = patch_path.string() + ".qcoder-partial";
    {
      std::FILE* f = std::fopen(temp.c_str(), "wb");
      if (f == nullptr) return report_failure(fail(errc::io_error, "--patch {}: cannot write it", patch));
      const bool ok_write = std::fwrite(diff.data(), 1, diff.size(), f) == diff.size();
      const bool ok_close = std::fclose(f) == 0;
      if (!ok_write || !ok_close || std::rename(temp.c_str(), patch_path.c_str()) != 0) {
        std::remove(temp.c_str());
        return report_failure(fail(errc::io_error, "--patch {}: write failed", patch));
      }
    }
    spdlog::info("refactor: the change is in {}", patch_path.string());
  }
  if (apply && !write_as_we_go && !stop.stop_requested()) {
    for (const service::file_change& c : changes) {
      if (stop.stop_requested()) break;
      result<void> done = service::replace_file_atomically(root / c.path, c.updated, &c.original);
      if (!done && done.err().code == errc::conflict) {
        conflicts.push_back(c.path);
        spdlog::warn("refactor: {}", done.err().message);
        continue;
      }
      if (!done) return report_failure(done.err());
      ++written;
    }
  }
  if (!apply && patch.empty()) {
    fmt::print("{}", diff);
    std::fflush(stdout);
  }

  const service::refactor_stats& s = *stats;
  const double units_per_second = s.seconds > 0 ? static_cast<double>(s.units_rewritten + s.units_asked) / s.seconds : 0.0;
  fmt::print(stderr,
             "refactor: {} of {} files looked at, {} changed{}; units: {} in all, {} named by the instruction, {} asked, "
             "{} rewritten, {} changed, {} cut off; tokens: {} prompt ({} from the prefix cache), {} generated in {} "
             "forward passes ({} of {} drafts taken); {:.1f} s ({:.2f} units/s){}\n",
             s.files_done, s.files, s.files_changed,
             apply ? fmt::format(" ({} written)", written) : std::string(), s.units, s.units_mentioned, s.units_asked,
             s.units_rewritten, s.units_changed, s.units_incomplete, s.prompt_tokens, s.restored_tokens,
             s.generated_tokens, s.forward_passes, s.accepted, s.drafted, s.seconds, units_per_second, s.cancelled ? "; stopped before the end" : "");
  if (!conflicts.empty()) {
    fmt::print(stderr, "refactor: {} file(s) changed since they were read and were not written: {}\n", conflicts.size(),
               fmt::join(conflicts, ", "));
    return 1;
  }
  if (result<void> saved = loaded->save_cache ? loaded->save_cache(*loaded->cache) : ok(); !saved) {
    spdlog::warn("refactor: {}", saved.err().message);
  }
  return interrupted ? 130 : 0;
}

}  // namespace qcoder::cli
