// Edits: which range each action rewrites, what the model is asked, how its answer is read, and a run on
// the tiny model that replaces exactly the target range.
#include "service/edit.h"

#include <filesystem>

#include <gtest/gtest.h>

namespace qcoder::service {
namespace {
namespace fs = std::filesystem;

const fs::path model_dir = fs::path(QCODER_TEST_DATA_DIR) / "tiny-qwen3next" / "bf16";

const std::string python_file =
    "import os\n"
    "\n"
    "def area(w, h):\n"
    "    pass\n"
    "\n"
    "class Shape:\n"
    "    def scale(self, k):\n"
    "        return k * self.size\n"
    "\n"
    "print(area(2, 3))\n";

edit_request request_for(edit_kind kind, std::string_view at, std::string instruction = "") {
  edit_request r;
  r.path = "geo.py";
  r.lang = context::language::python;
  r.text = python_file;
  r.kind = kind;
  r.begin = r.end = python_file.find(at);
  r.instruction = std::move(instruction);
  return r;
}

result<edit_target> target_of(const edit_request& r) {
  context::document doc(r.path, r.lang, r.text);
  return find_edit_target(doc.view(), r);
}

std::string_view span(const edit_target& t) { return std::string_view(python_file).substr(t.begin, t.end - t.begin); }

TEST(EditTarget, CompleteTakesTheEnclosingFunction) {
  auto t = target_of(request_for(edit_kind::complete_body, "pass"));
  ASSERT_TRUE(t) << t.err().message;
  EXPECT_EQ(span(*t), "def area(w, h):\n    pass\n");
  EXPECT_EQ(t->subject, "function area");
  // Inside a method: the method, not its class.
  t = target_of(request_for(edit_kind::complete_body, "return k"));
  ASSERT_TRUE(t);
  EXPECT_EQ(span(*t), "    def scale(self, k):\n        return k * self.size\n");
  EXPECT_EQ(t->subject, "method scale");
}

TEST(EditTarget, CompleteOutsideAFunctionIsNotFound) {
  auto t = target_of(request_for(edit_kind::complete_body, "print"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.err().code, errc::not_found);
  // Plain text has no functions at all.
  edit_request r = request_for(edit_kind::document, "pass");
  r.lang = std::nullopt;
  EXPECT_FALSE(target_of(r));
}

TEST(EditTarget, DocumentCanTakeAClassAndAsksForADocstringInPython) {
  auto t = target_of(request_for(edit_kind::document, "class Shape"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->subject, "class Shape");
  EXPECT_NE(t->instruction.find("docstring"), std::string::npos);
  edit_request c = request_for(edit_kind::document, "x");
  c.path = "m.c";
  c.lang = context::language::c;
  c.text = "int add(int a, int b) {\n  return a + b;\n}\n";
  c.begin = c.end = c.text.find("return");
  context::document doc(c.path, c.lang, c.text);
  auto tc = find_edit_target(doc.view(), c);
  ASSERT_TRUE(tc);
  EXPECT_EQ(tc->begin, 0u);
  EXPECT_EQ(tc->end, c.text.size());
  EXPECT_NE(tc->instruction.find("comment right above"), std::string::npos);
}

TEST(EditTarget, RewriteTakesWholeLinesOfTheSelection) {
  edit_request r = request_for(edit_kind::rewrite, "area(w", "use keyword arguments");
  r.end = python_file.find("pass") + 2;  // mid-line
  auto t = target_of(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(span(*t), "def area(w, h):\n    pass\n");
  EXPECT_EQ(t->instruction, "use keyword arguments");
  // A selection that ends at a line start leaves that line alone.
  r.end = python_file.find("\nclass") + 1;
  t = target_of(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(span(*t), "def area(w, h):\n    pass\n\n");
  // No instruction, or a range past the text: errors.
  r.instruction.clear();
  EXPECT_FALSE(target_of(r));
  r.instruction = "x";
  r.end = python_file.size() + 1;
  EXPECT_EQ(target_of(r).err().code, errc::invalid_argument);
}

TEST(EditTarget, FixTakesASmallEnclosingFunctionWithTheMessage) {
  edit_request r = request_for(edit_kind::fix, "self.size", "'Shape' has no attribute 'size'");
  auto t = target_of(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->subject, "method scale");
  EXPECT_NE(t->instruction.find("line 8: 'Shape' has no attribute 'size'"), std::string::npos);
  // Outside a function: the diagnostic's own lines.
  r = request_for(edit_kind::fix, "print", "undefined name");
  t = target_of(r);
  ASSERT_TRUE(t);
  EXPECT_EQ(span(*t), "print(area(2, 3))\n");
}

TEST(EditPrompt, ShowsTheContextTheTargetAndOpensTheAnswer) {
  edit_request r = request_for(edit_kind::complete_body, "pass");
  context::document doc(r.path, r.lang, r.text);
  auto t = find_edit_target(doc.view(), r);
  ASSERT_TRUE(t);
  const std::string p = edit_prompt(doc.view(), r, *t);
  EXPECT_TRUE(p.starts_with("<|im_start|>system\n"));
  EXPECT_TRUE(p.ends_with("<|im_start|>assistant\n```python\n"));
  EXPECT_NE(p.find("# >>> the part to change (lines 3-4) is here <<<\n\nclass Shape:"), std::string::npos);
  EXPECT_NE(p.find("The part to change:\n```python\ndef area(w, h):\n    pass\n```"), std::string::npos);
  EXPECT_NE(p.find(t->instruction), std::string::npos);
}

TEST(ExtractCode, CutsAtTheClosingFenceAndKeepsTheOriginalsNewline) {
  bool closed = false;
  EXPECT_EQ(extract_code("def f():\n    return 1\n```\nThis adds.", "def f():\n    pass\n", &closed),
            "def f():\n    return 1\n");
  EXPECT_TRUE(closed);
  EXPECT_EQ(extract_code("x = 1", "x = 0\n", &closed), "x = 1\n");
  EXPECT_FALSE(closed);
  EXPECT_EQ(extract_code("x = 1\n\n```", "x = 0", &closed), "x = 1");
  EXPECT_TRUE(closed);
}

class EditRun : public ::testing::Test {
 protected:
  void SetUp() override {
    engine::model_options options;
    options.threads = 1;
    auto loaded = engine::qwen3_next::load(model_dir, options);
    ASSERT_TRUE(loaded) << loaded.err().message;
    model_ = std::move(loaded).value();
    auto created = completion_service::create(model_dir);
    ASSERT_TRUE(created) << created.err().message;
    runner_ = std::move(created).value();
    backend_ = std::make_unique<engine_backend>(runner_->shared_tokenizer(), *model_, nullptr);
  }
  std::unique_ptr<engine::qwen3_next> model_;
  std::unique_ptr<completion_service> runner_;
  std::unique_ptr<engine_backend> backend_;
};

TEST_F(EditRun, ReplacesOnlyTheTargetRange) {
  edit_service edits(*runner_);
  edit_request r = request_for(edit_kind::complete_body, "pass");
  r.max_tokens = 12;
  r.accept_incomplete = true;  // a random model never closes its fence
  std::size_t progress = 0;
  r.on_progress = [&](std::size_t n) { progress = n; };
  auto done = edits.edit(*backend_, r);
  ASSERT_TRUE(done) << done.err().message;
  EXPECT_FALSE(done->cancelled);
  EXPECT_GT(done->generated_tokens, 0u);
  EXPECT_EQ(progress, done->generated_tokens);
  const std::string after = apply_replacements(python_file, done->edits);
  const std::string expected = python_file.substr(0, done->target.begin) + done->replacement + python_file.substr(done->target.end);
  EXPECT_EQ(after, expected);
  for (const text_replacement& e : done->edits) {
    EXPECT_GE(e.begin, done->target.begin);
    EXPECT_LE(e.end, done->target.end);
  }
}

TEST_F(EditRun, AnIncompleteAnswerIsRefusedByDefaultAndCancellationIsReported) {
  edit_service edits(*runner_);
  edit_request r = request_for(edit_kind::complete_body, "pass");
  r.max_tokens = 4;
  auto refused = edits.edit(*backend_, r);
  if (refused) {
    // The random model happened to close the fence or end its turn within 4 tokens: then it is complete.
    EXPECT_TRUE(refused->complete);
  } else {
    EXPECT_NE(refused.err().message.find("cut off at 4 tokens"), std::string::npos) << refused.err().message;
  }
  std::stop_source stop;
  stop.request_stop();
  r.stop = stop.get_token();
  auto cancelled = edits.edit(*backend_, r);
  ASSERT_TRUE(cancelled) << cancelled.err().message;
  EXPECT_TRUE(cancelled->cancelled);
  EXPECT_TRUE(cancelled->edits.empty());
}

}  // namespace
}  // namespace qcoder::service
