// Golden tests of the code context, one folder per language under tests/data/context/<lang>/.
//
// A .golden file holds cases; each starts with "=== NAME" and is made of sections, each a header line
// "--- WHAT ARGS" followed by its body (the lines up to the next header, without the last newline):
//
//   --- file PATH            a workspace file (indexed); the one holding <CURSOR> is the file being edited
//   --- budget N             the prompt's token budget (default 2048)
//   --- recent viewed|edited PATH LINE   a recently viewed or edited snippet (the body)
//   --- kinds                the prompt's block kinds in order (body: space-separated)
//   --- expect KIND HOW [NAME]  the block(s) of KIND (named NAME when given), all their texts together:
//                            HOW is exact (ignoring trailing newlines), contains, starts, ends or absent
//                            (absent: the body appears in no block at all)
//   --- mode MODE            plan_completion's mode at the cursor (none, single_line, multi_line)
//   --- completion           the model's raw output, fed to the filter a few bytes at a time
//   --- cleaned              what the filter makes of it
//   --- stop REASON          why the filter stopped
// Lines before a case's first header are comments. A failing case prints the whole prompt.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "context/completion_filter.h"
#include "context/prompt_builder.h"
#include "context/text_lines.h"

namespace qcoder::context {
namespace {
namespace fs = std::filesystem;

constexpr std::string_view cursor_marker = "<CURSOR>";

struct section {
  std::string what;
  std::vector<std::string> args;
  std::string body;
};

struct golden_case {
  std::string name;  // lang_file_case, a valid test name
  std::string source;  // file:line, for messages
  std::vector<section> sections;
};

// gtest prints a parameter of a failing test; the name and place say enough.
void PrintTo(const golden_case& c, std::ostream* out) { *out << c.name << " (" << c.source << ")"; }

std::string test_name(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> out;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<golden_case> load_cases() {
  std::vector<golden_case> cases;
  const fs::path root = fs::path(QCODER_TEST_DATA_DIR) / "context";
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".golden") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string prefix = file.parent_path().filename().string() + "_" + file.stem().string() + "_";
    std::string line;
    std::size_t number = 0;
    bool in_body = false;
    const auto close_body = [&] {
      if (in_body && !cases.back().sections.back().body.empty()) cases.back().sections.back().body.pop_back();
      in_body = false;
    };
    while (std::getline(in, line)) {
      ++number;
      if (line.starts_with("=== ")) {
        close_body();
        cases.push_back({test_name(prefix + line.substr(4)), file.filename().string() + ":" + std::to_string(number), {}});
      } else if (line.starts_with("--- ") && !cases.empty()) {
        close_body();
        std::vector<std::string> words = split_words(line.substr(4));
        section s{words.empty() ? "" : words.front(), {}, {}};
        if (!words.empty()) s.args.assign(words.begin() + 1, words.end());
        cases.back().sections.push_back(std::move(s));
        in_body = true;
      } else if (in_body) {
        cases.back().sections.back().body.append(line).push_back('\n');
      }
    }
    close_body();
  }
  return cases;
}

const engine::tokenizer& tiny_tokenizer() {
  static const engine::tokenizer tok =
      engine::tokenizer::load_model_dir(std::string(QCODER_TEST_DATA_DIR) + "/tiny-qwen3next/bf16").value();
  return tok;
}

std::optional<block_kind> kind_named(std::string_view name) {
  for (block_kind k : {block_kind::repo, block_kind::imports, block_kind::used, block_kind::snippet, block_kind::file,
                       block_kind::scope, block_kind::prefix, block_kind::suffix, block_kind::middle}) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

class GoldenTest : public ::testing::TestWithParam<golden_case> {};

TEST_P(GoldenTest, Holds) {
  const golden_case& c = GetParam();
  SCOPED_TRACE(c.source);
  workspace_index index;
  recent_snippets recent;
  std::string path, text;
  std::size_t cursor = std::string::npos, budget = 2048;
  bool wants_prompt = false;
  for (const section& s : c.sections) {
    if (s.what == "file") {
      ASSERT_EQ(s.args.size(), 1u) << "--- file PATH";
      std::string body = s.body + "\n";
      if (const std::size_t at = body.find(cursor_marker); at != std::string::npos) {
        body.erase(at, cursor_marker.size());
        path = s.args[0], text = body, cursor = at;
      }
      index.update_file(s.args[0], body);
    } else if (s.what == "budget") {
      budget = std::stoul(s.args.at(0));
    } else if (s.what == "recent") {
      ASSERT_EQ(s.args.size(), 3u) << "--- recent viewed|edited PATH LINE";
      recent.add({s.args[1], static_cast<std::uint32_t>(std::stoul(s.args[2])), s.body + "\n",
                  s.args[0] == "viewed" ? snippet_source::viewed : snippet_source::edited});
    } else if (s.what == "kinds" || s.what == "expect") {
      wants_prompt = true;
    }
  }
  ASSERT_NE(cursor, std::string::npos) << "no file holds " << cursor_marker;
  document doc = document::from_path(path, text);
  const source_view view = doc.view();

  std::optional<prompt> built;
  if (wants_prompt) {
    prompt_options options;
    options.budget_tokens = budget;
    result<prompt_builder> builder = prompt_builder::create(tiny_tokenizer(), options);
    ASSERT_TRUE(builder);
    result<prompt> p = builder->build({view, cursor, &index, &recent});
    ASSERT_TRUE(p) << p.err().message;
    built = std::move(*p);
    std::size_t sum = 0;
    for (const prompt_block& b : built->blocks) sum += b.tokens;
    EXPECT_EQ(sum, built->ids.size());
    EXPECT_LE(built->ids.size(), budget);
  }
  const completion_plan plan = plan_completion(view, cursor);
  std::optional<std::string> raw, cleaned;
  std::optional<stop_reason> reason;
  for (const section& s : c.sections) {
    if (s.what == "kinds") {
      std::string actual;
      for (const prompt_block& b : built->blocks) actual += (actual.empty() ? "" : " ") + std::string(to_string(b.kind));
      EXPECT_EQ(actual, trim(s.body));
    } else if (s.what == "expect") {
      ASSERT_GE(s.args.size(), 2u) << "--- expect KIND HOW [NAME]";
      const std::optional<block_kind> kind = kind_named(s.args[0]);
      ASSERT_TRUE(kind) << "unknown block kind " << s.args[0];
      const std::string& how = s.args[1];
      std::string joined;
      for (const prompt_block& b : built->blocks) {
        if (b.kind == *kind && (s.args.size() < 3 || b.name == std::string(to_string(*kind)) + " " + s.args[2])) joined += b.text;
      }
      if (how == "absent") {
        EXPECT_EQ(built->text.find(s.body), std::string::npos) << "found: " << s.body;
      } else if (how == "exact") {
        EXPECT_EQ(std::string(trim_right(joined)), std::string(trim_right(s.body))) << s.args[0];
      } else if (how == "contains") {
        EXPECT_NE(joined.find(s.body), std::string::npos) << s.args[0] << " lacks:\n" << s.body;
      } else if (how == "starts") {
        EXPECT_TRUE(joined.starts_with(s.body)) << s.args[0] << " does not start with:\n" << s.body;
      } else if (how == "ends") {
        EXPECT_TRUE(joined.ends_with(s.body)) << s.args[0] << " does not end with:\n" << s.body;
      } else {
        ADD_FAILURE() << "unknown match " << how;
      }
    } else if (s.what == "mode") {
      EXPECT_EQ(to_string(plan.mode), s.args.at(0)) << plan.reason;
    } else if (s.what == "completion") {
      raw = s.body;
    } else if (s.what == "cleaned") {
      cleaned = s.body;
    } else if (s.what == "stop") {
      for (stop_reason r : {stop_reason::none, stop_reason::end_of_stream, stop_reason::newline, stop_reason::suffix_continues,
                            stop_reason::dedent, stop_reason::unmatched_bracket, stop_reason::repetition, stop_reason::max_lines}) {
        if (to_string(r) == s.args.at(0)) reason = r;
      }
      ASSERT_TRUE(reason) << "unknown stop reason " << s.args.at(0);
    }
  }
  if (raw) {
    ASSERT_TRUE(cleaned) << "a completion needs --- cleaned";
    completion_filter filter(plan);
    for (std::size_t i = 0; i < raw->size(); i += 3) {
      if (filter.feed(std::string_view(*raw).substr(i, 3))) break;
    }
    EXPECT_EQ(filter.finish(), *cleaned);
    if (reason) {
      EXPECT_EQ(filter.reason(), *reason) << to_string(filter.reason());
    }
  }
  if (HasFailure() && built) std::cerr << "---- prompt of " << c.name << " ----\n" << built->text << "\n----\n";
}

INSTANTIATE_TEST_SUITE_P(Context, GoldenTest, ::testing::ValuesIn(load_cases()),
                         [](const ::testing::TestParamInfo<golden_case>& p) { return p.param.name; });

// The runner itself must see the fixtures: every language has both kinds of golden.
TEST(Golden, EveryLanguageHasPromptAndCompletionCases) {
  const std::vector<golden_case> cases = load_cases();
  for (const char* lang : {"python", "javascript", "typescript", "tsx", "c", "cpp", "rust", "go", "java"}) {
    const auto has = [&](std::string_view what) {
      return std::any_of(cases.begin(), cases.end(), [&](const golden_case& c) {
        return c.name.starts_with(std::string(lang) + "_") &&
               std::any_of(c.sections.begin(), c.sections.end(), [&](const section& s) { return s.what == what; });
      });
    };
    EXPECT_TRUE(has("expect")) << lang << " has no prompt golden";
    EXPECT_TRUE(has("completion")) << lang << " has no completion golden";
  }
}

}  // namespace
}  // namespace qcoder::context
