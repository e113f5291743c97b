// One instruction over a whole repository ("rename getUser to fetchUser and update callers", "add type hints
// to public functions"), predictably and cheaply:
//
//   walk     the workspace's source files (.gitignore respected; binary, generated and huge files skipped)
//   split    each file into units with tree-sitter: the top-level definitions, with the lines between them
//            (comments, imports) going with the next one; a small file is one unit; an oversized node is
//            split at its children. Units partition the file, so reassembly is concatenation.
//   select   a unit the instruction concerns: when the instruction names code (`getUser`, snake_case,
//            camelCase, a::b, f()), only units that mention one of those names; then, unless turned off,
//            the model is asked yes/no (one token after the unit's prompt, whose prefix the rewrite reuses)
//   rewrite  the unit, the instruction and the unit in a chat prompt whose head (system text + instruction)
//            is the same for every unit, so the prefix cache computes it once; with `jobs` > 1, that many
//            rewrites are decoded together (continuous batching: one weight read serves all of them)
//   report   each changed file, in walk order, as soon as its units are done (the caller diffs or writes it)
//
// The model sits behind `unit_rewriter`, so the plumbing is tested without one.
// Thread-safety: run_refactor runs on the thread that owns the model (model_rewriter uses it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "context/document.h"
#include "context/workspace_walk.h"
#include "service/completion.h"
#include "service/text_backend.h"

namespace qcoder::service {

struct code_unit {
  std::size_t begin = 0;  // byte offsets; units are contiguous and cover the file
  std::size_t end = 0;
  std::size_t first_line = 0;  // 0-based, of the unit's first and last byte
  std::size_t last_line = 0;
};

struct split_options {
  std::size_t whole_file_bytes = 6000;  // files up to this size are one unit
  std::size_t max_unit_bytes = 12000;   // a larger top-level node is split at its children
  std::size_t min_unit_bytes = 400;     // smaller neighbours (imports, constants) are joined
};

// The units of `src` (one unit for plain text, or when the file is small). Empty for an empty file.
std::vector<code_unit> split_units(const context::source_view& src, const split_options& options = {});

// The code names an instruction mentions: `backticked` or quoted text, and words shaped like code
// (snake_case, camelCase, a::b, a.b, f()). Empty when it names none ("add type hints to public functions").
std::vector<std::string> instruction_anchors(std::string_view instruction);
// Whether `code` contains one of `anchors` as a whole name (not inside a longer identifier).
bool mentions_any(std::string_view code, const std::vector<std::string>& anchors);

// Files the rewrite should leave alone: generated ("@generated", "DO NOT EDIT", ...) or minified.
bool looks_generated(std::string_view text);

struct unit_task {
  std::string_view path;
  std::optional<context::language> lang;
  std::string_view instruction;
  std::string_view code;
  std::size_t first_line = 0;
  std::size_t last_line = 0;
  std::stop_token stop;
};

struct rewrite_answer {
  std::string code;       // the unit's new text (== the old one when nothing changed)
  bool complete = true;   // false: cut off by the token limit
  bool cancelled = false;
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;
  std::size_t generated_tokens = 0;
  std::int64_t drafted = 0;   // speculative decoding: draft tokens checked, and taken
  std::int64_t accepted = 0;
  std::int64_t forward_passes = 0;
};

// Rewrites run side by side: start() begins one, finish_some() works on all that are started until at
// least one is done. The run starts at most capacity() before it waits for one.
// The answer to "does the instruction concern this unit?".
struct relevance_answer {
  bool wanted = false;
  std::size_t prompt_tokens = 0;
  std::int64_t restored_tokens = 0;  // of them, from the prefix cache
};

class unit_rewriter {
 public:
  struct done {
    std::size_t id = 0;
    rewrite_answer answer;
  };
  virtual ~unit_rewriter() = default;
  // Whether the instruction asks for any change in this unit.
  virtual result<relevance_answer> concerns(const unit_task& task) = 0;
  virtual std::size_t capacity() const { return 1; }
  // Begins rewriting `task` under `id`; the texts it points to stay alive until the rewrite is returned.
  virtual result<void> start(std::size_t id, const unit_task& task) = 0;
  // The started rewrites that are done (at least one, when any is started); an error ends them all.
  virtual result<std::vector<done>> finish_some() = 0;
};

// The chat prompt of a unit, in pieces: `head` is the same for every unit of a run (the prefix cache keeps
// it), `unit` the code, and one of the two tails. Control tokens are spelled out in the template parts
// only; the instruction and the code are text (a literal "<|im_end|>" in them stays text).
struct unit_prompt {
  std::vector<std::int32_t> ids;
  std::size_t head_tokens = 0;  // ids[0, head_tokens) is the shared head
  std::size_t unit_tokens = 0;  // ids[0, unit_tokens) ends with the unit (the question and the rewrite branch here)
};
enum class prompt_tail { question, rewrite };
unit_prompt build_unit_prompt(const engine::tokenizer& tok, const unit_task& task, prompt_tail tail);

// Asks `backend` whether the instruction concerns the unit (a yes/no answer of at most two tokens).
// Error: cancelled when the task's stop fired, or the backend's.
result<relevance_answer> ask_relevance(const engine::tokenizer& tok, text_backend& backend, const unit_task& task);

struct rewriter_options {
  // Draft tokens from the unit itself (a rewrite mostly copies it), verified in one pass; the output is
  // the same either way.
  bool speculate = true;
  // Rewrites decoded together (each sequence's output is the same as alone).
  std::size_t jobs = 1;
};

// The local model behind unit_rewriter, on the thread that owns it. A rewrite may generate the unit's
// length in tokens and a quarter more (plus a little), greedy.
class model_rewriter final : public unit_rewriter {
 public:
  // `tok` and `backend` must outlive this.
  model_rewriter(const engine::tokenizer& tok, engine_backend& backend, rewriter_options options = {});
  ~model_rewriter() override;
  result<relevance_answer> concerns(const unit_task& task) override;
  std::size_t capacity() const override { return options_.jobs; }
  result<void> start(std::size_t id, const unit_task& task) override;
  result<std::vector<done>> finish_some() override;

 private:
  struct flight;
  const engine::tokenizer& tok_;
  engine_backend& backend_;
  rewriter_options options_;
  engine::generation_batch batch_;
  std::map<std::size_t, std::unique_ptr<flight>> flights_;  // by the batch's ticket
};

// Any text_backend behind unit_rewriter (a remote server): the same prompts and limits as model_rewriter,
// each rewrite one generation; with jobs > 1, that many run at once on threads of their own (the server
// batches them), so `backend.generate` must be thread-safe then. No speculation (the server has its own).
class backend_rewriter final : public unit_rewriter {
 public:
  backend_rewriter(const engine::tokenizer& tok, text_backend& backend, rewriter_options options = {});
  ~backend_rewriter() override;  // waits for the rewrites in flight (they stop with their task's stop)
  result<relevance_answer> concerns(const unit_task& task) override;
  std::size_t capacity() const override { return options_.jobs; }
  result<void> start(std::size_t id, const unit_task& task) override;
  result<std::vector<done>> finish_some() override;

 private:
  struct shared;
  struct runner {
    std::thread thread;
    std::shared_ptr<std::stop_source> stop;
  };
  void stop_all();  // stops and joins every rewrite thread
  const engine::tokenizer& tok_;
  text_backend& backend_;
  rewriter_options options_;
  std::shared_ptr<shared> shared_;
  std::map<std::size_t, runner> running_;  // by rewrite id
};

struct refactor_options {
  std::string instruction;
  context::walk_options walk;
  split_options split;
  std::size_t max_files = 100000;
  bool check_relevance = true;     // ask the model before rewriting a unit
  bool accept_incomplete = false;  // keep a rewrite cut off by its token limit (otherwise the unit stays)
  // Texts to use instead of the files on disk, by relative path: an editor's open (maybe unsaved) buffers.
  std::map<std::string, std::string, std::less<>> overlay;
};

struct file_change {
  std::string path;      // relative to the root
  std::string original;  // as read (the writer checks the file still holds it)
  std::string updated;
  std::size_t units = 0;
  std::size_t units_changed = 0;
};

struct refactor_stats {
  std::size_t files = 0;           // files to look at (after the walk's filters)
  std::size_t files_done = 0;
  std::size_t files_skipped = 0;   // binary, generated or unreadable
  std::size_t files_changed = 0;
  std::size_t units = 0;
  std::size_t units_mentioned = 0; // passed the name filter (all units when the instruction names none)
  std::size_t units_asked = 0;     // relevance questions put to the model
  std::size_t units_rewritten = 0;
  std::size_t units_changed = 0;
  std::size_t units_incomplete = 0;  // cut off and left as they were
  std::size_t prompt_tokens = 0;     // of the relevance questions and the rewrites
  std::int64_t restored_tokens = 0;  // of them, from the prefix cache
  std::size_t generated_tokens = 0;
  std::int64_t drafted = 0;
  std::int64_t accepted = 0;
  std::int64_t forward_passes = 0;
  double seconds = 0;
  bool cancelled = false;
};

struct refactor_callbacks {
  // After each unit and file; `path` is the file being worked on.
  std::function<void(const refactor_stats& stats, std::string_view path)> on_progress;
  // Each changed file, as soon as it is complete. An error stops the run and is returned.
  std::function<result<void>(const file_change& change)> on_file;
};

result<refactor_stats> run_refactor(const std::filesystem::path& root, const refactor_options& options,
                                    unit_rewriter& rewriter, const refactor_callbacks& callbacks,
                                    std::stop_token stop = {});

}  // namespace qcoder::service
