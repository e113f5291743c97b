// The services over the remote backend against `qcoder serve` in this process, on the tiny model: a
// completion, an edit and a refactor give what the same services give over the local model; a server that
// goes down is reported as unavailable (naming it) and is used again once it is back; a cancelled request
// closes its stream, which frees the server's engine.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "http/server.h"
#include "service/completion.h"
#include "service/edit.h"
#include "service/refactor.h"
#include "tests/support/tiny_server.h"

namespace qcoder::service {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::tiny_server;

class RemoteBackend : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = tiny_server::start();
    ASSERT_TRUE(started) << started.err().message;
    server_ = std::move(started).value();
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    auto local = testing_support::load_tiny_engine(16u << 20);
    ASSERT_TRUE(local) << local.err().message;
    local_ = std::move(local).value();
    auto remote = testing_support::load_remote_engine(server_->url());
    ASSERT_TRUE(remote) << remote.err().message;
    remote_ = std::move(remote).value();
    auto made = assistant::create(remote_.tokenizer);
    ASSERT_TRUE(made) << made.err().message;
    assistant_ = std::move(made).value();
    local_backend_ = std::make_unique<engine_backend>(remote_.tokenizer, *local_.model, local_.cache.get());
  }

  static completion_request completion_at(std::string text, std::string_view marker) {
    completion_request r;
    r.path = "src/calc.py";
    r.lang = context::language::python;
    r.cursor = text.find(marker);
    r.text = std::move(text);
    r.max_tokens = 24;
    return r;
  }

  // An empty function body: a multi-line completion the tiny model answers in several tokens.
  static completion_request body_completion() {
    completion_request r = completion_at("def add(a, b):\n    \n\nprint(add(1, 2))\n", "    \n");
    r.cursor += 4;
    return r;
  }

  static std::unique_ptr<tiny_server> server_;
  service::loaded_engine local_;
  service::loaded_engine remote_;
  std::unique_ptr<assistant> assistant_;
  std::unique_ptr<engine_backend> local_backend_;
};
std::unique_ptr<tiny_server> RemoteBackend::server_;

TEST_F(RemoteBackend, CompletionsEqualTheLocalModels) {
  const std::string text = "import os\n\ndef total(items):\n    s = 0\n    for x in items:\n        \n    return s\n\nprint(total([1, 2]))\n";
  std::vector<completion_request> requests{body_completion()};
  for (const std::string_view marker : {"        \n", "    return s", "print("}) {
    requests.push_back(completion_at(text, marker));
    if (marker == "        \n") requests.back().cursor += 8;
  }
  requests.push_back(completion_at("class Point:\n    def __init__(self, x, y):\n        ", "        "));
  requests.back().cursor = requests.back().text.size();
  std::size_t answered = 0;
  std::size_t streamed = 0;  // answers that reached the editor in pieces before the end
  for (completion_request& request : requests) {
    const std::string marker = request.text.substr(0, request.cursor);
    request.alternatives = 2;  // greedy, then one sampled with a seed: the server samples the same way
    std::vector<std::string> partials;
    request.on_partial = [&](const std::string& t) {
      partials.push_back(t);
      return true;
    };
    auto local = assistant_->completions->complete(*local_backend_, request);
    ASSERT_TRUE(local) << local.err().message;
    partials.clear();
    auto remote = assistant_->completions->complete(*remote_.remote, request);
    ASSERT_TRUE(remote) << remote.err().message;
    EXPECT_EQ(remote->mode, local->mode) << marker;
    EXPECT_EQ(remote->items, local->items) << marker;  // greedy: the same tokens either way
    EXPECT_FALSE(remote->cancelled);
    streamed += partials.empty() ? 0 : 1;
    if (!remote->items.empty() && !partials.empty()) {
      EXPECT_EQ(partials.back(), remote->items.front().substr(0, partials.back().size()));
    }
    answered += local->items.empty() ? 0 : 1;
    if (local->mode != context::completion_mode::none) {
      EXPECT_GT(remote->generated_tokens, 0u) << marker;
      EXPECT_GT(remote->prompt_tokens, 0u) << marker;
    }
  }
  EXPECT_GE(answered, 2u);  // the comparison was not between empty answers
  EXPECT_GE(streamed, 1u);
}

TEST_F(RemoteBackend, TheServersPrefixCacheIsReportedAsRestoredTokens) {
  const completion_request request = body_completion();
  auto first = assistant_->completions->complete(*remote_.remote, request);
  ASSERT_TRUE(first) << first.err().message;
  ASSERT_GT(first->generated_tokens, 0u);
  auto again = assistant_->completions->complete(*remote_.remote, request);
  ASSERT_TRUE(again) << again.err().message;
  EXPECT_GT(again->restored_tokens, 0);  // usage.prompt_tokens_details.cached_tokens
  EXPECT_LE(again->restored_tokens, static_cast<std::int64_t>(again->prompt_tokens));
}

const std::string python_file =
    "import math\n\n\ndef area(r):\n    pass\n\n\ndef main():\n    print(area(2))\n";

TEST_F(RemoteBackend, EditsEqualTheLocalModels) {
  edit_request r;
  r.path = "geometry.py";
  r.lang = context::language::python;
  r.text = python_file;
  r.begin = r.end = python_file.find("pass");
  r.kind = edit_kind::complete_body;
  r.max_tokens = 16;
  r.accept_incomplete = true;
  auto local = assistant_->edits->edit(*local_backend_, r);
  ASSERT_TRUE(local) << local.err().message;
  auto remote = assistant_->edits->edit(*remote_.remote, r);
  ASSERT_TRUE(remote) << remote.err().message;
  EXPECT_EQ(remote->replacement, local->replacement);
  EXPECT_EQ(remote->complete, local->complete);
  EXPECT_EQ(remote->target.begin, local->target.begin);
  EXPECT_EQ(remote->edits.size(), local->edits.size());
}

struct temp_workspace {
  fs::path root;
  temp_workspace() {
    root = fs::temp_directory_path() / ("qcoder-remote-refactor-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "app");
  }
  ~temp_workspace() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(root / rel, std::ios::binary) << text; }
};

TEST_F(RemoteBackend, ARefactorWithThreeJobsEqualsTheLocalModels) {
  temp_workspace ws;
  ws.write("app/users.py", "def get_user(id):\n    return db.find(id)\n\n\ndef delete(id):\n    db.drop(id)\n");
  ws.write("app/views.py", "from app.users import get_user\n\n\ndef show(id):\n    return render(get_user(id))\n");
  ws.write("app/other.py", "def unrelated():\n    return 1\n");
  refactor_options options;
  options.instruction = "rename `get_user` to `fetch_user`";
  options.accept_incomplete = true;
  options.check_relevance = true;
  const auto run = [&](unit_rewriter& rewriter) {
    std::vector<file_change> changes;
    refactor_callbacks callbacks;
    callbacks.on_file = [&](const file_change& c) -> result<void> {
      changes.push_back(c);
      return ok();
    };
    auto stats = run_refactor(ws.root, options, rewriter, callbacks);
    EXPECT_TRUE(stats) << stats.err().message;
    return std::pair{changes, stats ? *stats : refactor_stats{}};
  };
  model_rewriter local(*remote_.tokenizer, *local_backend_, {.speculate = false, .jobs = 1});
  const auto [local_changes, local_stats] = run(local);
  backend_rewriter remote(*remote_.tokenizer, *remote_.remote, {.jobs = 3});
  const auto [remote_changes, remote_stats] = run(remote);
  EXPECT_EQ(remote_stats.units_asked, local_stats.units_asked);
  EXPECT_EQ(remote_stats.units_rewritten, local_stats.units_rewritten);
  EXPECT_EQ(remote_stats.units_changed, local_stats.units_changed);
  ASSERT_EQ(remote_changes.size(), local_changes.size());
  for (std::size_t i = 0; i < local_changes.size(); ++i) {
    EXPECT_EQ(remote_changes[i].path, local_changes[i].path);
    EXPECT_EQ(remote_changes[i].updated, local_changes[i].updated);
  }
}

TEST_F(RemoteBackend, AServerThatIsDownIsUnavailableUntilItIsBack) {
  const completion_request request = body_completion();
  server_->stop();
  auto down = assistant_->completions->complete(*remote_.remote, request);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.err().code, errc::unavailable);
  EXPECT_NE(down.err().message.find(fmt::format("127.0.0.1:{}", server_->port())), std::string::npos) << down.err().message;
  ASSERT_TRUE(server_->restart());
  auto back = assistant_->completions->complete(*remote_.remote, request);
  ASSERT_TRUE(back) << back.err().message;
  auto local = assistant_->completions->complete(*local_backend_, request);
  ASSERT_TRUE(local) << local.err().message;
  EXPECT_FALSE(local->items.empty());
  EXPECT_EQ(back->items, local->items);
}

TEST_F(RemoteBackend, ACancelledCompletionClosesItsStream) {
  // A long greedy generation, stopped at the first text: the server sees the disconnect and frees its
  // engine, so the next request is served at once rather than after the rest of the first.
  text_generation gen;
  gen.prompt = remote_.tokenizer->encode_text("def f():");  // the tiny model goes on for thousands of tokens
  gen.max_tokens = 4000;
  std::size_t pieces = 0;
  gen.on_text = [&](std::string_view) { return ++pieces < 2; };
  const double cancelled_before = server_->metric("qcoder_generations_cancelled_total");
  ASSERT_GE(cancelled_before, 0);
  auto stopped = remote_.remote->generate(gen);
  ASSERT_TRUE(stopped) << stopped.err().message;
  EXPECT_EQ(stopped->reason, engine::finish_reason::callback);
  EXPECT_EQ(pieces, 2u);
  // The server saw the stream close and ended that generation at its next token.
  for (int i = 0; i < 400 && server_->metric("qcoder_running_generations") != 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_->metric("qcoder_running_generations"), 0);
  EXPECT_GT(server_->metric("qcoder_generations_cancelled_total"), cancelled_before);
  // A stop token from another thread ends a generation in flight the same way.
  std::stop_source stop;
  gen.stop = stop.get_token();
  gen.on_text = [&](std::string_view) {
    stop.request_stop();
    return true;
  };
  auto cancelled = remote_.remote->generate(gen);
  ASSERT_TRUE(cancelled) << cancelled.err().message;
  EXPECT_EQ(cancelled->reason, engine::finish_reason::cancelled);
}

TEST_F(RemoteBackend, APromptSentAsTextIsTheTextOfItsTokens) {
  // As text, the server tokenizes the prompt again: the answer is the one to the re-encoded text, which the
  // id form then reproduces exactly.
  auto as_text = testing_support::load_remote_engine(server_->url(), {}, remote_prompt::text);
  ASSERT_TRUE(as_text) << as_text.err().message;
  const engine::tokenizer& tok = *remote_.tokenizer;
  std::vector<std::int32_t> pieces = tok.encode_prompt("<|im_start|>user\nInstruction: ");
  for (const std::int32_t id : tok.encode_text("rename `get_user` everywhere\n")) pieces.push_back(id);
  auto text = tok.decode(pieces);
  ASSERT_TRUE(text) << text.err().message;
  ASSERT_NE(tok.encode_prompt(*text), pieces);  // encoded apart, the pieces meet differently: the forms differ
  const auto answer = [](text_backend& backend, std::vector<std::int32_t> prompt) {
    text_generation gen;
    gen.prompt = std::move(prompt);
    gen.max_tokens = 12;
    std::string out;
    gen.on_text = [&](std::string_view piece) {
      out += piece;
      return true;
    };
    auto done = backend.generate(gen);
    EXPECT_TRUE(done) << done.err().message;
    return out;
  };
  const std::string sent_as_text = answer(*as_text->remote, pieces);
  EXPECT_FALSE(sent_as_text.empty());
  EXPECT_EQ(sent_as_text, answer(*remote_.remote, tok.encode_prompt(*text)));
}

TEST_F(RemoteBackend, AddedTokensSpelledOutByTheServerAreLeftOutLikeLocally) {
  // A server that spells out control tokens, split across its events, around ordinary text.
  ASSERT_TRUE(remote_.tokenizer->find_token("<|quad_end|>"));
  ASSERT_TRUE(remote_.tokenizer->find_token("<|vision_pad|>"));
  auto scripted = http::server::start({.port = 0}, [](http::request, http::responder reply) {
    reply.begin_stream(200);
    for (const char* piece : {"a<|quad", "_end|>b<", "x", "<|vision_pad|>", "<|vis"}) {
      reply.write(fmt::format("data: {}\n\n", nlohmann::json{{"choices", {{{"index", 0}, {"text", piece}, {"finish_reason", nullptr}}}}}.dump()));
    }
    reply.write("data: [DONE]\n\n");
    reply.end();
  });
  ASSERT_TRUE(scripted) << scripted.err().message;
  auto engine = testing_support::load_remote_engine(fmt::format("http://127.0.0.1:{}/v1", (*scripted)->port()), {.model = "tiny"});
  ASSERT_TRUE(engine) << engine.err().message;
  text_generation gen;
  gen.prompt = engine->tokenizer->encode_text("x");
  std::string text;
  gen.on_text = [&](std::string_view piece) {
    text += piece;
    return true;
  };
  auto done = engine->remote->generate(gen);
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_EQ(text, "ab<x<|vis");  // a tail that never became a control token is text after all
}

}  // namespace
}  // namespace qcoder::service
