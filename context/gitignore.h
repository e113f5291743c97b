// .gitignore rules, as git applies them to a walk of the working tree.
//
// Supported: blank lines and '#' comments; '\' escapes (so "\#a" and "\!a" are literal); trailing spaces
// dropped unless escaped; '!' re-includes; a trailing '/' matches directories only; a pattern with a '/'
// at its start or middle is anchored to its .gitignore's folder, otherwise it matches a name at any depth;
// '*', '?', '[a-z]' / '[!a-z]' never match '/'; "**/" matches zero or more folders, a trailing "/**"
// everything inside. The last matching rule wins, so rules of deeper files (added later) override. As in
// git, a file inside an ignored folder stays ignored whatever later rules say: the walker does not enter
// ignored folders.
//
// Thread-safety: build it on one thread; const lookups may then run on any.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qcoder::context {

class gitignore {
 public:
  // Adds the rules of one ignore file that lives in folder `dir` ('/'-separated, relative to the workspace
  // root, "" for the root).
  void add(std::string_view dir, std::string_view content);

  // Whether `path` ('/'-separated, relative to the root) is ignored. `is_dir` enables folder-only rules.
  bool ignored(std::string_view path, bool is_dir) const;

  std::size_t rule_count() const { return rules_.size(); }

 private:
  struct rule {
    std::string base;  // the folder of the ignore file, with a trailing '/' unless it is the root
    std::string pattern;
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;
  };
  std::vector<rule> rules_;
};

// Glob matching with git's wildmatch rules (see the file comment); exposed for tests.
bool glob_match(std::string_view pattern, std::string_view path);

}  // namespace qcoder::context
