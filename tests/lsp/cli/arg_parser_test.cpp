#include "lsp/cli/arg_parser.h"

#include <gtest/gtest.h>

namespace qcoder::cli {
namespace {

using argv = std::vector<std::string_view>;

struct fixture {
  std::string model;
  int threads = 2;
  double temperature = 0.7;
  bool step = false;
  std::vector<std::string> include;
  arg_parser parser{"demo --model DIR", "A demo command."};

  fixture() {
    parser.option("model", "DIR", "model folder", &model)
        .option("threads", "N", "worker threads", &threads)
        .option("temperature", "T", "sampling temperature", &temperature)
        .flag("step", "one token at a time", &step)
        .repeated("include", "GLOB", "files to include", &include)
        .required("model");
  }
};

TEST(ArgParser, ParsesSeparateAndInlineValues) {
  fixture f;
  const argv args{"--model", "/m", "--threads=8", "--step", "--include", "*.py", "--include=*.rs",
                  "--temperature", "0.25"};
  ASSERT_TRUE(f.parser.parse(args));
  EXPECT_EQ(f.model, "/m");
  EXPECT_EQ(f.threads, 8);
  EXPECT_TRUE(f.step);
  EXPECT_DOUBLE_EQ(f.temperature, 0.25);
  EXPECT_EQ(f.include, (std::vector<std::string>{"*.py", "*.rs"}));
  EXPECT_FALSE(f.parser.help_requested());
}

TEST(ArgParser, DefaultsStayWhenFlagsAreAbsent) {
  fixture f;
  ASSERT_TRUE(f.parser.parse(argv{"--model", "x"}));
  EXPECT_EQ(f.threads, 2);
  EXPECT_FALSE(f.step);
}

TEST(ArgParser, ReportsUsageErrorsClearly) {
  auto message = [](const argv& args) {
    fixture f;
    result<void> r = f.parser.parse(args);
    return r ? std::string("ok") : r.err().message;
  };
  EXPECT_EQ(message({"--model", "x", "--bogus"}), "unknown flag --bogus (see --help)");
  EXPECT_EQ(message({"--model"}), "--model needs a value (DIR)");
  EXPECT_EQ(message({"--threads", "two", "--model", "x"}), "--threads: 'two' is not a valid number");
  EXPECT_EQ(message({"--threads", "3x", "--model", "x"}), "--threads: '3x' is not a valid number");
  EXPECT_EQ(message({"--step"}), "--model is required (see --help)");
  EXPECT_EQ(message({"--model", "a", "--model", "b"}), "--model given twice");
  EXPECT_EQ(message({"--model", "a", "--step=yes"}), "--step takes no value");
  EXPECT_EQ(message({"--model", "a", "stray"}), "unexpected argument 'stray' (see --help)");
}

TEST(ArgParser, HelpSkipsRequiredChecksAndListsEveryFlag) {
  fixture f;
  ASSERT_TRUE(f.parser.parse(argv{"--help"}));
  EXPECT_TRUE(f.parser.help_requested());
  const std::string help = f.parser.help();
  for (const char* needle : {"usage: qcoder demo --model DIR", "--model DIR", "(required)", "--threads N",
                             "[default: 2]", "--temperature T", "[default: 0.7]", "--step", "--include GLOB",
                             "(repeatable)", "--help"}) {
    EXPECT_NE(help.find(needle), std::string::npos) << needle << "\n" << help;
  }
}

TEST(ArgParser, Positionals) {
  std::vector<std::string> files;
  bool verbose = false;
  arg_parser parser("x FILE...", "x");
  parser.flag("verbose", "more output", &verbose).positionals("FILE", "inputs", &files);
  ASSERT_TRUE(parser.parse(argv{"a", "--verbose", "b", "--", "--c"}));
  EXPECT_EQ(files, (std::vector<std::string>{"a", "b", "--c"}));
  EXPECT_TRUE(verbose);
}

TEST(ParseSize, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("64KiB"), 65536u);
  EXPECT_EQ(*parse_size("512MiB"), 512ull << 20);
  EXPECT_EQ(*parse_size("8GiB"), 8ull << 30);
  EXPECT_EQ(*parse_size("8gib"), 8ull << 30);
  EXPECT_EQ(*parse_size("1.5GB"), 1500000000u);
  EXPECT_EQ(*parse_size("2T"), 2ull << 40);
}

TEST(ParseSize, RejectsGarbage) {
  for (const char* bad : {"", "GiB", "12XB", "-5", "1.2.3MiB", "1e999", "99999999999TiB"}) {
    result<std::uint64_t> r = parse_size(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.err().code, errc::invalid_argument);
    }
  }
}

}  // namespace
}  // namespace qcoder::cli
