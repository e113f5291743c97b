// The refactor plumbing without a model: a scripted rewriter stands in for it, so selection, splitting,
// reassembly, the diff, atomic writes and conflict refusal are checked exactly.
#include "service/refactor.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "service/atomic_file.h"
#include "service/text_diff.h"

namespace qcoder::service {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Renames by plain text replacement; says whether a unit concerns it by whether it contains the old name.
// With `jobs` > 1 the rewrites run side by side and come back out of order (newest first, one at a time).
class scripted_rewriter final : public unit_rewriter {
 public:
  scripted_rewriter(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  result<relevance_answer> concerns(const unit_task& task) override {
    asked.emplace_back(task.path, task.first_line);
    relevance_answer a;
    a.wanted = concern_all || std::string_view(task.code).find(from_) != std::string_view::npos;
    a.prompt_tokens = 100;  // counted in the stats
    return a;
  }
  std::size_t capacity() const override { return jobs; }
  result<void> start(std::size_t id, const unit_task& task) override {
    started_.emplace_back(id, task);
    most_in_flight = std::max(most_in_flight, started_.size());
    return ok();
  }
  result<std::vector<done>> finish_some() override {
    std::vector<done> out;
    if (started_.empty()) return out;
    const auto [id, task] = started_.back();
    started_.pop_back();
    out.push_back({id, answer(task)});
    return out;
  }
  std::string instruction;
  std::size_t jobs = 1;
  std::size_t most_in_flight = 0;
  bool concern_all = false;
  bool cut_off = false;
  std::function<void(const unit_task&)> on_rewrite;
  std::vector<std::pair<std::string, std::size_t>> asked, rewritten;

 private:
  rewrite_answer answer(const unit_task& task) {
    rewritten.emplace_back(task.path, task.first_line);
    EXPECT_EQ(task.instruction, instruction);
    rewrite_answer a;
    if (task.stop.stop_requested()) {  // as the model: a stopped rewrite comes back cancelled
      a.cancelled = true;
      return a;
    }
    a.code = std::string(task.code);
    for (std::size_t at = a.code.find(from_); at != std::string::npos; at = a.code.find(from_, at + to_.size())) {
      a.code.replace(at, from_.size(), to_);
    }
    a.complete = !cut_off;
    a.generated_tokens = 1;
    if (on_rewrite) on_rewrite(task);
    return a;
  }
  std::string from_, to_;
  std::vector<std::pair<std::size_t, unit_task>> started_;
};

std::string python_functions(int count, const std::string& body_call) {
  std::string out = "import os\n\n";
  for (int i = 0; i < count; ++i) {
    out += "\n\ndef f" + std::to_string(i) + "(x):\n";
    out += "    \"\"\"Helper number " + std::to_string(i) + " with a docstring long enough to matter.\"\"\"\n";
    out += i % 3 == 0 ? "    return " + body_call + "(x)\n" : "    return x + " + std::to_string(i) + "\n";
  }
  return out;
}

TEST(SplitUnits, ASmallFileIsOneUnitAndUnitsAlwaysCoverTheFile) {
  const std::string small = "def a():\n    return 1\n";
  context::document doc("a.py", context::language::python, small);
  EXPECT_THAT(split_units(doc.view()), ElementsAre(::testing::Field(&code_unit::end, small.size())));
  context::document empty("e.py", context::language::python, "");
  EXPECT_THAT(split_units(empty.view()), IsEmpty());

  const std::string big = python_functions(80, "get_user");
  context::document big_doc("b.py", context::language::python, big);
  const std::vector<code_unit> units = split_units(big_doc.view(), {.whole_file_bytes = 1000, .max_unit_bytes = 4000, .min_unit_bytes = 300});
  ASSERT_GT(units.size(), 5u);
  std::size_t at = 0;
  for (const code_unit& u : units) {
    EXPECT_EQ(u.begin, at);
    EXPECT_TRUE(u.begin == 0 || big[u.begin - 1] == '\n') << "a unit starts mid-line at " << u.begin;
    EXPECT_GE(u.end - u.begin, 300u) << "a unit under the minimum (only the last may be, and it joins)";
    EXPECT_EQ(u.first_line, static_cast<std::size_t>(std::count(big.begin(), big.begin() + static_cast<long>(u.begin), '\n')));
    at = u.end;
  }
  EXPECT_EQ(at, big.size());
  // Cuts fall before definitions: every unit after the first starts with a blank line or a "def".
  for (std::size_t i = 1; i < units.size(); ++i) {
    const std::string_view head = std::string_view(big).substr(units[i].begin, 4);
    EXPECT_TRUE(head == "def " || head.starts_with("\n")) << head;
  }
}

TEST(SplitUnits, AnOversizedClassIsCutAtItsMethods) {
  std::string cls = "class Big:\n";
  for (int i = 0; i < 60; ++i) cls += "    def m" + std::to_string(i) + "(self):\n        return " + std::to_string(i) + " * self.value\n\n";
  context::document doc("c.py", context::language::python, cls);
  const std::vector<code_unit> units = split_units(doc.view(), {.whole_file_bytes = 500, .max_unit_bytes = 1000, .min_unit_bytes = 200});
  ASSERT_GT(units.size(), 3u);
  for (const code_unit& u : units) EXPECT_LE(u.end - u.begin, 1000u);
}

TEST(InstructionAnchors, CodeShapedNamesOnly) {
  EXPECT_THAT(instruction_anchors("rename `getUser` to `fetchUser` and update callers"), ElementsAre("getUser", "fetchUser"));
  EXPECT_THAT(instruction_anchors("add type hints to public functions"), IsEmpty());
  EXPECT_THAT(instruction_anchors("replace printf() logging with spdlog::info"), ElementsAre("printf", "spdlog::info"));
  EXPECT_THAT(instruction_anchors("don't call os.path.join; use pathlib"), ElementsAre("os.path.join"));
  EXPECT_THAT(instruction_anchors("rename get_user to fetch_user."), ElementsAre("get_user", "fetch_user"));
  EXPECT_THAT(instruction_anchors("make \"load config\" faster"), IsEmpty());  // quoted prose is not a name
}

TEST(InstructionAnchors, MentionsAreWholeNames) {
  EXPECT_TRUE(mentions_any("x = getUser(1)", {"getUser"}));
  EXPECT_FALSE(mentions_any("x = getUserName(1)", {"getUser"}));
  EXPECT_FALSE(mentions_any("x = my_getUser(1)", {"getUser"}));
  EXPECT_TRUE(mentions_any("getUser", {"getUser"}));
  EXPECT_TRUE(mentions_any("p = os.path.join(a, b)", {"os.path.join"}));
}

TEST(LooksGenerated, MarkersAndMinifiedCode) {
  EXPECT_TRUE(looks_generated("// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n"));
  EXPECT_TRUE(looks_generated("# @generated by a tool\nx = 1\n"));
  EXPECT_TRUE(looks_generated(std::string(10000, 'a')));
  EXPECT_FALSE(looks_generated("def f():\n    return 1\n"));
}

TEST(UnifiedDiff, GitAppliesItAndGetsTheNewText) {
  const fs::path dir = fresh_dir("diff");
  std::string before, after;
  for (int i = 0; i < 40; ++i) before += "line " + std::to_string(i) + "\n";
  after = before;
  after.replace(after.find("line 3\n"), 7, "line three\nline 3b\n");
  after.replace(after.find("line 30\n"), 8, "");
  after += "tail without newline";
  const std::string diff = unified_diff("a/f.txt", "b/f.txt", before, after);
  EXPECT_TRUE(diff.starts_with("--- a/f.txt\n+++ b/f.txt\n@@ -1,7 +1,8 @@\n")) << diff;
  EXPECT_NE(diff.find("\\ No newline at end of file"), std::string::npos);
  write(dir / "f.txt", before);
  write(dir / "change.patch", diff);
  ASSERT_EQ(std::system(("cd " + dir.string() + " && git apply change.patch").c_str()), 0) << diff;
  EXPECT_EQ(read(dir / "f.txt"), after);
  EXPECT_EQ(unified_diff("a", "b", before, before), "");
}

TEST(AtomicFile, ReplacesKeepsTheModeAndRefusesAFileThatChanged) {
  const fs::path dir = fresh_dir("atomic");
  const fs::path file = dir / "x.py";
  write(file, "old\n");
  ASSERT_EQ(::chmod(file.c_str(), 0750), 0);
  const std::string old_text = "old\n";
  ASSERT_TRUE(replace_file_atomically(file, "new\n", &old_text));
  EXPECT_EQ(read(file), "new\n");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // It now holds "new\n", not what the caller read: refused, untouched.
  result<void> refused = replace_file_atomically(file, "newer\n", &old_text);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.err().code, errc::conflict);
  EXPECT_EQ(read(file), "new\n");
  EXPECT_EQ(replace_file_atomically(dir / "missing.py", "x").err().code, errc::not_found);
  // Nothing but the file is left in the folder.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_THAT(names, ElementsAre("x.py"));
}

struct workspace_fixture {
  fs::path root;
  std::map<std::string, std::string> files;
  explicit workspace_fixture(const std::string& name) : root(fresh_dir(name)) {
    files["app/users.py"] = python_functions(60, "get_user");
    files["app/main.py"] = "from app.users import get_user\n\nprint(get_user(1))\n";
    files["app/clean.py"] = "def unrelated():\n    return 2\n";
    files["vendor/lib.py"] = "get_user = None\n";                       // ignored by .gitignore
    files["gen/pb.py"] = "# @generated\nget_user = 1\n";                  // generated
    files["README.md"] = "get_user is documented here\n";                // not a source language
    for (const auto& [path, text] : files) write(root / path, text);
    write(root / ".gitignore", "vendor/\n");
  }
};

TEST(RunRefactor, RewritesOnlyNamedUnitsAndReassemblesTheFiles) {
  workspace_fixture ws("refactor_run");
  scripted_rewriter rewriter("get_user", "fetch_user");
  rewriter.instruction = "rename `get_user` to `fetch_user`";
  refactor_options options;
  options.instruction = rewriter.instruction;
  options.split = {.whole_file_bytes = 1000, .max_unit_bytes = 4000, .min_unit_bytes = 300};
  std::vector<file_change> changes;
  refactor_callbacks callbacks;
  callbacks.on_file = [&](const file_change& c) -> result<void> {
    changes.push_back(c);
    return ok();
  };
  result<refactor_stats> stats = run_refactor(ws.root, options, rewriter, callbacks);
  ASSERT_TRUE(stats) << stats.err().message;
  // Looked at: the three app files and the generated one (skipped); not vendor/ (ignored) nor README.md.
  EXPECT_EQ(stats->files, 4u);
  EXPECT_EQ(stats->files_skipped, 1u);
  EXPECT_EQ(stats->files_done, 4u);
  EXPECT_FALSE(stats->cancelled);
  ASSERT_EQ(changes.size(), 2u);
  std::map<std::string, file_change> by_path;
  for (const file_change& c : changes) by_path[c.path] = c;
  for (const std::string path : {"app/users.py", "app/main.py"}) {
    ASSERT_TRUE(by_path.count(path)) << path;
    const file_change& c = by_path[path];
    EXPECT_EQ(c.original, ws.files[path]);
    std::string expected = ws.files[path];
    for (std::size_t at = expected.find("get_user"); at != std::string::npos; at = expected.find("get_user", at + 10)) {
      expected.replace(at, 8, "fetch_user");
    }
    EXPECT_EQ(c.updated, expected) << path;
  }
  // The name filter kept the model away from units that do not mention get_user: users.py has units of
  // plain helpers, and clean.py was never asked about.
  EXPECT_LT(stats->units_mentioned, stats->units);
  EXPECT_EQ(stats->units_asked, stats->units_mentioned);
  EXPECT_EQ(stats->prompt_tokens, 100 * stats->units_asked);  // the scripted rewrites report none
  for (const auto& [path, line] : rewriter.asked) EXPECT_NE(path, "app/clean.py");
  EXPECT_EQ(stats->units_changed, stats->units_rewritten);
  EXPECT_EQ(read(ws.root / "app/users.py"), ws.files["app/users.py"]) << "the service itself writes nothing";
}

TEST(RunRefactor, WithoutNamesEveryUnitIsAskedAndAnAnswerCutOffLeavesTheUnit) {
  workspace_fixture ws("refactor_cut");
  scripted_rewriter rewriter("return", "return  ");
  rewriter.instruction = "add type hints to public functions";
  rewriter.concern_all = true;
  rewriter.cut_off = true;
  refactor_options options;
  options.instruction = rewriter.instruction;
  int files = 0;
  refactor_callbacks callbacks;
  callbacks.on_file = [&](const file_change&) -> result<void> {
    ++files;
    return ok();
  };
  result<refactor_stats> stats = run_refactor(ws.root, options, rewriter, callbacks);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->units_mentioned, stats->units);
  EXPECT_EQ(stats->units_incomplete, stats->units_rewritten);
  EXPECT_EQ(files, 0);
  // The same with incomplete answers accepted: every file with a "return" changes.
  options.accept_incomplete = true;
  stats = run_refactor(ws.root, options, rewriter, callbacks);
  ASSERT_TRUE(stats);
  EXPECT_EQ(files, 2);  // users.py and clean.py; main.py has no return
}

TEST(RunRefactor, AStopDropsTheFileInProgressAndAConflictIsRefused) {
  workspace_fixture ws("refactor_stop");
  scripted_rewriter rewriter("get_user", "fetch_user");
  rewriter.instruction = "rename `get_user` to `fetch_user`";
  refactor_options options;
  options.instruction = rewriter.instruction;
  options.check_relevance = false;
  options.split = {.whole_file_bytes = 1000, .max_unit_bytes = 4000, .min_unit_bytes = 300};
  std::stop_source stop;
  std::vector<std::string> written, refused;
  refactor_callbacks callbacks;
  callbacks.on_file = [&](const file_change& c) -> result<void> {
    // main.py was edited by someone else after it was read: the write is refused and the edit kept.
    if (c.path == "app/main.py") write(ws.root / c.path, "# edited meanwhile\n");
    result<void> done = replace_file_atomically(ws.root / c.path, c.updated, &c.original);
    (done ? written : refused).push_back(c.path);
    return done || done.err().code == errc::conflict ? ok() : done;
  };
  // Stop in the middle of users.py (after its second rewritten unit).
  rewriter.on_rewrite = [&](const unit_task& t) {
    if (t.path == "app/users.py" && rewriter.rewritten.size() == 3) stop.request_stop();
  };
  result<refactor_stats> stats = run_refactor(ws.root, options, rewriter, callbacks, stop.get_token());
  ASSERT_TRUE(stats);
  EXPECT_TRUE(stats->cancelled);
  EXPECT_THAT(refused, ElementsAre("app/main.py"));
  EXPECT_THAT(written, IsEmpty());
  EXPECT_EQ(read(ws.root / "app/main.py"), "# edited meanwhile\n");
  EXPECT_EQ(read(ws.root / "app/users.py"), ws.files["app/users.py"]) << "a file cut short by a stop is not written";
}

TEST(RunRefactor, RewritesSideBySideGiveTheSameFilesInWalkOrder) {
  workspace_fixture ws("refactor_jobs");
  refactor_options options;
  options.instruction = "add type hints to public functions";
  options.split = {.whole_file_bytes = 1000, .max_unit_bytes = 4000, .min_unit_bytes = 300};
  struct run {
    std::vector<std::pair<std::string, std::string>> files;  // path, new text, in the order reported
    std::vector<std::pair<std::string, std::size_t>> rewritten;
    refactor_stats stats;
    std::size_t most_in_flight = 0;
  };
  const auto refactor = [&](std::size_t jobs) {
    scripted_rewriter rewriter("return", "return  ");
    rewriter.instruction = options.instruction;
    rewriter.concern_all = true;
    rewriter.jobs = jobs;
    run out;
    refactor_callbacks callbacks;
    callbacks.on_file = [&](const file_change& c) -> result<void> {
      out.files.emplace_back(c.path, c.updated);
      return ok();
    };
    result<refactor_stats> stats = run_refactor(ws.root, options, rewriter, callbacks);
    EXPECT_TRUE(stats);
    if (stats) out.stats = *stats;
    out.rewritten = rewriter.rewritten;
    out.most_in_flight = rewriter.most_in_flight;
    return out;
  };
  const run one = refactor(1);
  const run three = refactor(3);
  ASSERT_EQ(one.files.size(), 2u);
  EXPECT_EQ(three.files, one.files);
  EXPECT_EQ(three.stats.units_changed, one.stats.units_changed);
  EXPECT_EQ(three.stats.files_done, one.stats.files_done);
  EXPECT_EQ(one.most_in_flight, 1u);
  EXPECT_EQ(three.most_in_flight, 3u);
  EXPECT_NE(three.rewritten, one.rewritten) << "the rewrites should have come back out of order";
}

TEST(RunRefactor, BadInputIsAClearError) {
  scripted_rewriter rewriter("a", "b");
  refactor_options options;
  options.instruction = "  ";
  EXPECT_EQ(run_refactor(fresh_dir("refactor_bad"), options, rewriter, {}).err().code, errc::invalid_argument);
  options.instruction = "x";
  EXPECT_EQ(run_refactor("/nonexistent/folder", options, rewriter, {}).err().code, errc::not_found);
}

}  // namespace
}  // namespace qcoder::service
