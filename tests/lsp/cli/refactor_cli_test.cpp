// `qcoder refactor` as a person runs it, on the tiny model: a dry run prints a diff git can apply and writes
// nothing; --apply writes what the dry run showed (and --patch saves it first); and a SIGKILL at any moment
// of --apply leaves every file either as it was or as the refactor wrote it, never in between.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "tests/lsp/cli/run_qcoder.h"
#include "tests/support/tiny_server.h"

extern char** environ;

namespace {
namespace fs = std::filesystem;
using qcoder::testing_support::run_qcoder;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// A small repository: modules that call get_user, one that does not, one ignored by .gitignore.
std::map<std::string, std::string> fixture(int modules) {
  std::map<std::string, std::string> files;
  for (int i = 0; i < modules; ++i) {
    files["pkg/m" + std::to_string(i) + ".py"] =
        "from pkg.users import get_user\n\n\ndef show" + std::to_string(i) + "(uid):\n    return get_user(uid).name\n";
  }
  files["pkg/users.py"] = "def get_user(uid):\n    return DB[uid]\n";
  files["pkg/plain.py"] = "def nothing():\n    return 0\n";
  files["build/out.py"] = "get_user = 1\n";
  files[".gitignore"] = "build/\n";
  return files;
}

fs::path make_workspace(const std::string& name, const std::map<std::string, std::string>& files) {
  const fs::path root = fs::path(::testing::TempDir()) / name;
  fs::remove_all(root);
  for (const auto& [path, text] : files) write(root / path, text);
  return root;
}

std::string refactor_args(const fs::path& root, const std::string& more) {
  return "refactor --model " + std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16 --workspace " + root.string() +
         " --instruction 'rename `get_user` to `fetch_user`' --no-relevance-check --accept-incomplete --threads 1 " + more;
}

TEST(RefactorCli, DryRunPrintsADiffAndApplyWritesExactlyIt) {
  const auto files = fixture(3);
  const fs::path root = make_workspace("refactor_cli", files);
  const auto dry = run_qcoder(refactor_args(root, "--log-level warn"), /*merge_stderr=*/false);
  ASSERT_EQ(dry.exit_code, 0) << dry.out;
  // The random model rewrites every unit that names get_user: the four modules that do, nothing else.
  EXPECT_NE(dry.out.find("--- a/pkg/m0.py\n+++ b/pkg/m0.py\n"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("--- a/pkg/users.py"), std::string::npos);
  EXPECT_EQ(dry.out.find("plain.py"), std::string::npos) << "a unit without the name was rewritten";
  EXPECT_EQ(dry.out.find("build/out.py"), std::string::npos) << "an ignored file was rewritten";
  for (const auto& [path, text] : files) EXPECT_EQ(read(root / path), text) << "the dry run wrote " << path;

  // The diff applies with git and gives what --apply writes; --patch saved the same diff first.
  const fs::path copy = make_workspace("refactor_cli_git", files);
  write(copy / "change.patch", dry.out);
  ASSERT_EQ(std::system(("cd " + copy.string() + " && git apply change.patch").c_str()), 0);
  const fs::path patch = fs::path(::testing::TempDir()) / "refactor_cli.patch";
  const auto applied = run_qcoder(refactor_args(root, "--apply --patch " + patch.string()), /*merge_stderr=*/true);
  ASSERT_EQ(applied.exit_code, 0) << applied.out;
  EXPECT_NE(applied.out.find("4 changed (4 written)"), std::string::npos) << applied.out;
  EXPECT_EQ(read(patch), dry.out);
  for (const auto& [path, text] : files) EXPECT_EQ(read(root / path), read(copy / path)) << path;
}

TEST(RefactorCli, SpeculativeAndPlainDecodingWriteTheSameChange) {
  const fs::path root = make_workspace("refactor_cli_spec", fixture(4));
  const auto spec = run_qcoder(refactor_args(root, "--log-level warn"), /*merge_stderr=*/false);
  const auto plain = run_qcoder(refactor_args(root, "--log-level warn --no-speculation"), /*merge_stderr=*/false);
  ASSERT_EQ(spec.exit_code, 0);
  ASSERT_EQ(plain.exit_code, 0);
  EXPECT_FALSE(spec.out.empty());
  EXPECT_EQ(spec.out, plain.out);
  const auto summary = run_qcoder(refactor_args(root, ""), /*merge_stderr=*/true);
  EXPECT_NE(summary.out.find("drafts taken"), std::string::npos) << summary.out;
}

TEST(RefactorCli, RewritesDecodedTogetherWriteTheSameChange) {
  // --jobs 3: the units' rewrites share each forward pass (some speculating, at different lengths), with
  // the relevance questions in between; the diff is the same as one at a time, files in the same order.
  const fs::path root = make_workspace("refactor_cli_jobs", fixture(5));
  const auto one = run_qcoder(refactor_args(root, "--log-level warn"), /*merge_stderr=*/false);
  const auto three = run_qcoder(refactor_args(root, "--log-level warn --jobs 3"), /*merge_stderr=*/false);
  ASSERT_EQ(one.exit_code, 0);
  ASSERT_EQ(three.exit_code, 0);
  EXPECT_NE(one.out.find("--- a/pkg/m0.py"), std::string::npos) << one.out;
  EXPECT_EQ(three.out, one.out);
  const auto bad = run_qcoder(refactor_args(root, "--jobs 0"), /*merge_stderr=*/true);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("--jobs"), std::string::npos) << bad.out;
}

TEST(RefactorCli, ARemoteBackendWritesTheSameChangeWithOnlyTheTokenizerHere) {
  // The model runs in a `qcoder serve` (in this test process); the command gets a folder holding only the
  // tokenizer files, and four rewrites at once go to the server.
  auto server = qcoder::testing_support::tiny_server::start();
  ASSERT_TRUE(server) << server.err().message;
  const fs::path root = make_workspace("refactor_cli_remote", fixture(4));
  const fs::path tokenizer_only = fs::path(::testing::TempDir()) / "refactor_cli_tokenizer";
  fs::remove_all(tokenizer_only);
  fs::create_directories(tokenizer_only);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next/bf16" / name, tokenizer_only / name);
  }
  const auto local = run_qcoder(refactor_args(root, "--log-level warn"), /*merge_stderr=*/false);
  const std::string remote_args = "refactor --model " + tokenizer_only.string() + " --workspace " + root.string() +
                                  " --instruction 'rename `get_user` to `fetch_user`' --no-relevance-check --accept-incomplete"
                                  " --log-level warn --jobs 4 --backend " + (*server)->url();
  const auto remote = run_qcoder(remote_args, /*merge_stderr=*/false);
  ASSERT_EQ(local.exit_code, 0);
  ASSERT_EQ(remote.exit_code, 0) << remote.out;
  EXPECT_NE(local.out.find("--- a/pkg/m0.py"), std::string::npos) << local.out;
  EXPECT_EQ(remote.out, local.out);
  // Without the server: a clear error naming it, and nothing written.
  (*server)->stop();
  const auto down = run_qcoder(remote_args + " --apply", /*merge_stderr=*/true);
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.out.find("not reachable"), std::string::npos) << down.out;
  EXPECT_EQ(read(root / "pkg/m0.py"), fixture(4)["pkg/m0.py"]);
}

TEST(RefactorCli, BadFlagsAreClearErrors) {
  const auto none = run_qcoder("refactor --workspace /nonexistent --instruction x", /*merge_stderr=*/true);
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.out.find("/nonexistent"), std::string::npos) << none.out;
  const auto both = run_qcoder("refactor --instruction x --apply --dry-run", /*merge_stderr=*/true);
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.out.find("exclude each other"), std::string::npos) << both.out;
  const auto missing = run_qcoder("refactor --workspace .", /*merge_stderr=*/true);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find("--instruction"), std::string::npos) << missing.out;
  const auto tls = run_qcoder("refactor --workspace . --instruction x --backend https://gpu:8000/v1", /*merge_stderr=*/true);
  EXPECT_NE(tls.exit_code, 0);
  EXPECT_NE(tls.out.find("https"), std::string::npos) << tls.out;
  const auto stray = run_qcoder("refactor --workspace . --instruction x --remote-model m", /*merge_stderr=*/true);
  EXPECT_NE(stray.exit_code, 0);
  EXPECT_NE(stray.out.find("--backend"), std::string::npos) << stray.out;
  const auto no_key = run_qcoder("refactor --workspace . --instruction x --backend http://127.0.0.1:9/v1 --api-key-env QCODER_NO_SUCH_VAR",
                                 /*merge_stderr=*/true);
  EXPECT_NE(no_key.exit_code, 0);
  EXPECT_NE(no_key.out.find("QCODER_NO_SUCH_VAR"), std::string::npos) << no_key.out;
}

// Starts `qcoder ARGS` with stdout to /dev/null and stderr to `log`; returns its pid.
pid_t spawn_qcoder(const std::string& args, const std::string& log = "/dev/null") {
  const std::string command = "exec " + std::string(QCODER_BINARY) + " " + args + " >/dev/null 2>" + log;
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so the kill reaches qcoder and not just the shell
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ), 0);
  posix_spawnattr_destroy(&attr);
  return pid;
}

TEST(RefactorCli, SigkillDuringApplyLeavesEveryFileOldOrNew) {
  const auto files = fixture(24);
  // The reference: the same refactor run to the end (greedy decoding: every run writes the same).
  const fs::path reference = make_workspace("refactor_kill_ref", files);
  const auto started = std::chrono::steady_clock::now();
  const auto full = run_qcoder(refactor_args(reference, "--apply"), /*merge_stderr=*/true);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(full.exit_code, 0) << full.out;
  std::size_t changed = 0;
  for (const auto& [path, text] : files) changed += read(reference / path) != text;
  ASSERT_GE(changed, 20u);

  bool saw_old = false, saw_new = false;
  for (int trial = 0; trial < 8; ++trial) {
    const fs::path root = make_workspace("refactor_kill_" + std::to_string(trial), files);
    const pid_t pid = spawn_qcoder(refactor_args(root, "--apply"));
    ASSERT_GT(pid, 0);
    // Kill points spread over the run (the model load is at its start).
    std::this_thread::sleep_for(took * (trial + 1) / 9);
    ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file()) continue;
      const std::string rel = fs::relative(entry.path(), root).generic_string();
      const std::string now = read(entry.path());
      if (files.count(rel)) {
        const bool old_version = now == files.at(rel);
        const bool new_version = now == read(reference / rel);
        EXPECT_TRUE(old_version || new_version) << rel << " is neither version after a kill at trial " << trial;
        saw_old |= old_version && !new_version;
        saw_new |= new_version && !old_version;
        continue;
      }
      // The only other file a kill can leave: a finished temporary, caught between its link and rename.
      const std::string name = entry.path().filename().string();
      const std::size_t tag = name.find(".qcoder-");
      ASSERT_TRUE(name.starts_with(".") && tag != std::string::npos) << "unexpected file " << rel;
      const std::string target = (fs::path(rel).parent_path() / name.substr(1, tag - 1)).generic_string();
      EXPECT_EQ(now, read(reference / target)) << "a half-written temporary " << rel;
    }
  }
  // Across the kills, some came before a file was written and some after.
  EXPECT_TRUE(saw_old);
  EXPECT_TRUE(saw_new);
}

TEST(RefactorCli, CtrlCStopsCleanlyBetweenUnits) {
  const auto files = fixture(24);
  const fs::path reference = make_workspace("refactor_int_ref", files);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(run_qcoder(refactor_args(reference, "--apply"), /*merge_stderr=*/true).exit_code, 0);
  const auto took = std::chrono::steady_clock::now() - started;

  const fs::path root = make_workspace("refactor_int", files);
  const fs::path log = fs::path(::testing::TempDir()) / "refactor_int.log";
  const pid_t pid = spawn_qcoder(refactor_args(root, "--apply"), log.string());
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(took / 2);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "Ctrl-C killed the process instead of stopping it";
  const std::string said = read(log);
  if (WEXITSTATUS(status) == 130) {
    EXPECT_NE(said.find("stopped before the end"), std::string::npos) << said;
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 0) << said;  // it had finished before the signal came
  }
  // Every file old or new, and nothing else left behind: a clean stop leaves no temporary file.
  std::size_t entries = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    ++entries;
    const std::string rel = fs::relative(entry.path(), root).generic_string();
    ASSERT_TRUE(files.count(rel)) << "left behind: " << rel;
    const std::string now = read(entry.path());
    EXPECT_TRUE(now == files.at(rel) || now == read(reference / rel)) << rel;
  }
  EXPECT_EQ(entries, files.size());
}

}  // namespace
