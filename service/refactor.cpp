// Walk, split, select, rewrite, report.
#include "service/refactor.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <tree_sitter/api.h>

#include "context/workspace_index.h"
#include "service/atomic_file.h"
#include "service/edit.h"

namespace qcoder::service {
namespace {

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

std::size_t line_start_of(std::string_view text, std::size_t offset) {
  const std::size_t nl = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  return nl == std::string_view::npos ? 0 : nl + 1;
}

// Cut points (line starts) before each named child of `node`; an oversized child is cut inside as well.
void collect_cuts(TSNode node, std::string_view text, const split_options& options, int depth, std::vector<std::size_t>& cuts) {
  const std::uint32_t count = ts_node_named_child_count(node);
  for (std::uint32_t i = 0; i < count; ++i) {
    const TSNode child = ts_node_named_child(node, i);
    const std::size_t start = line_start_of(text, ts_node_start_byte(child));
    const std::size_t end = ts_node_end_byte(child);
    cuts.push_back(start);
    if (end - start > options.max_unit_bytes && depth < 4 && ts_node_named_child_count(child) > 0) {
      collect_cuts(child, text, options, depth + 1, cuts);
    }
  }
}

std::string_view fence_language(std::optional<context::language> lang) {
  return lang ? context::info(*lang).name : std::string_view("text");
}

void append(std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& more) { ids.insert(ids.end(), more.begin(), more.end()); }

}  // namespace

std::vector<code_unit> split_units(const context::source_view& src, const split_options& options) {
  const std::string_view text = src.text;
  std::vector<code_unit> units;
  if (text.empty()) return units;
  std::vector<std::size_t> cuts{0};
  if (text.size() > options.whole_file_bytes && src.tree != nullptr) {
    collect_cuts(ts_tree_root_node(src.tree), text, options, 0, cuts);
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  }
  cuts.push_back(text.size());
  // Join pieces until a unit reaches the minimum: comments and imports go with what follows them.
  std::vector<std::size_t> bounds{0};
  for (std::size_t i = 1; i < cuts.size(); ++i) {
    if (cuts[i] == text.size() || cuts[i] - bounds.back() >= options.min_unit_bytes) bounds.push_back(cuts[i]);
  }
  if (bounds.size() > 2 && bounds[bounds.size() - 1] - bounds[bounds.size() - 2] < options.min_unit_bytes) {
    bounds.erase(bounds.end() - 2);  // a small last piece joins the one before
  }
  std::size_t line = 0, counted_to = 0;
  const auto line_at = [&](std::size_t offset) {
    line += static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(counted_to),
                                                text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
    counted_to = offset;
    return line;
  };
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    code_unit u{bounds[i], bounds[i + 1], 0, 0};
    u.first_line = line_at(u.begin);
    u.last_line = line_at(u.end - 1);
    units.push_back(u);
  }
  return units;
}

std::vector<std::string> instruction_anchors(std::string_view s) {
  std::vector<std::string> out;
  const auto add = [&](std::string_view name) {
    while (name.ends_with("()")) name.remove_suffix(2);
    while (!name.empty() && !is_ident(name.front()) && name.front() != ':') name.remove_prefix(1);
    while (!name.empty() && !is_ident(name.back())) name.remove_suffix(1);
    if (name.empty() || name.find_first_of(" \t\n") != std::string_view::npos) return;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.emplace_back(name);
  };
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '`' || c == '"' || c == '\'') {
      const std::size_t close = s.find(c, i + 1);
      // An apostrophe inside a word ("don't") is not a quote.
      if (close != std::string_view::npos && !(c == '\'' && i > 0 && is_ident(s[i - 1]))) {
        add(s.substr(i + 1, close - i - 1));
        i = close + 1;
        continue;
      }
      ++i;
      continue;
    }
    if (!is_ident(c)) {
      ++i;
      continue;
    }
    // A word, with :: and . joining identifiers (a::b, obj.method).
    std::size_t j = i;
    while (j < s.size() && (is_ident(s[j]) || ((s[j] == '.' || s[j] == ':') && j + 1 < s.size() && (is_ident(s[j + 1]) || s[j + 1] == ':')))) ++j;
    const std::string_view word = s.substr(i, j - i);
    const bool call = j < s.size() && s[j] == '(';
    bool lower_then_upper = false;
    for (std::size_t k = 1; k < word.size(); ++k) {
      if (std::islower(static_cast<unsigned char>(word[k - 1])) && std::isupper(static_cast<unsigned char>(word[k]))) lower_then_upper = true;
    }
    const bool inner_underscore = word.find('_', 1) != std::string_view::npos && word.find('_', 1) + 1 < word.size();
    const bool qualified = word.find("::") != std::string_view::npos ||
                           (word.find('.') != std::string_view::npos && word.find('.') + 1 < word.size());
    if (call || lower_then_upper || inner_underscore || qualified || word.starts_with('_')) add(word);
    i = j;
  }
  return out;
}

bool mentions_any(std::string_view code, const std::vector<std::string>& anchors) {
  for (const std::string& a : anchors) {
    for (std::size_t at = code.find(a); at != std::string_view::npos; at = code.find(a, at + 1)) {
      const bool left = at == 0 || !is_ident(code[at - 1]);
      const bool right = at + a.size() >= code.size() || !is_ident(code[at + a.size()]);
      if (left && right) return true;
    }
  }
  return false;
}

bool looks_generated(std::string_view text) {
  const std::string_view head = text.substr(0, 2048);
  for (std::string_view marker : {"@generated", "DO NOT EDIT", "Code generated by", "This file is automatically generated",
                                  "autogenerated", "auto-generated", "Autogenerated", "Auto-generated"}) {
    if (head.find(marker) != std::string_view::npos) return true;
  }
  // Minified: long and almost no line breaks.
  const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  return text.size() > 4096 && text.size() / lines > 400;
}

unit_prompt build_unit_prompt(const engine::tokenizer& tok, const unit_task& task, prompt_tail tail) {
  const std::string_view lang = fence_language(task.lang);
  unit_prompt p;
  append(p.ids, tok.encode_prompt(
                    "<|im_start|>system\nYou are qcoder, refactoring a code base one piece at a time. You change "
                    "code exactly as the instruction asks, change nothing else, keep the file's style and "
                    "indentation, and answer with code only.<|im_end|>\n<|im_start|>user\nInstruction: "));
  append(p.ids, tok.encode_text(task.instruction));
  append(p.ids, tok.encode_text("\n\n"));
  p.head_tokens = p.ids.size();
  append(p.ids, tok.encode_text(fmt::format("File: {} (lines {}-{})\n```{}\n", task.path, task.first_line + 1,
                                            task.last_line + 1, lang)));
  std::string code(task.code);
  if (!code.empty() && code.back() != '\n') code += '\n';
  append(p.ids, tok.encode_text(code));
  append(p.ids, tok.encode_text("```\n"));
  p.unit_tokens = p.ids.size();
  if (tail == prompt_tail::question) {
    append(p.ids, tok.encode_prompt("\nDoes the instruction require any change to this code? Answer yes or no.<|im_end|>\n"
                                    "<|im_start|>assistant\n"));
  } else {
    append(p.ids, tok.encode_prompt(fmt::format(
                      "\nRewrite this code following the instruction. Answer with its whole new version in one ```{} "
                      "block and nothing else; if nothing needs to change, repeat it unchanged.<|im_end|>\n"
                      "<|im_start|>assistant\n```{}\n",
                      lang, lang)));
  }
  return p;
}

namespace {

// A rewrite's generation limit: the unit's length and a quarter more, plus a little.
std::int64_t rewrite_limit(const unit_prompt& prompt) {
  const std::size_t code_tokens = prompt.unit_tokens - prompt.head_tokens;
  return static_cast<std::int64_t>(code_tokens + code_tokens / 4 + 32);
}

std::vector<std::int64_t> unit_snapshots(const unit_prompt& prompt) {
  return {static_cast<std::int64_t>(prompt.head_tokens), static_cast<std::int64_t>(prompt.unit_tokens)};
}

}  // namespace

result<relevance_answer> ask_relevance(const engine::tokenizer& tok, text_backend& backend, const unit_task& task) {
  const unit_prompt prompt = build_unit_prompt(tok, task, prompt_tail::question);
  text_generation gen;
  gen.prompt = prompt.ids;
  gen.max_tokens = 2;
  gen.sampling.greedy = true;
  gen.stop = task.stop;
  gen.snapshot_at = unit_snapshots(prompt);
  std::string answer;
  gen.on_text = [&](std::string_view piece) {
    answer += piece;
    return true;
  };
  QCODER_TRY(text_generated r, backend.generate(gen));
  if (r.reason == engine::finish_reason::cancelled) return fail(errc::cancelled, "cancelled");
  std::size_t at = 0;
  while (at < answer.size() && std::isspace(static_cast<unsigned char>(answer[at]))) ++at;
  relevance_answer out;
  out.wanted = answer.size() >= at + 3 && (answer.compare(at, 3, "yes") == 0 || answer.compare(at, 3, "Yes") == 0 ||
                                           answer.compare(at, 3, "YES") == 0);
  out.prompt_tokens = r.prompt_tokens;
  out.restored_tokens = r.restored_tokens;
  return out;
}

// A rewrite in the batch: what turns its tokens into code.
struct model_rewriter::flight {
  std::size_t id = 0;
  std::string_view original;
  std::size_t prompt_tokens = 0;
  fenced_reply reply;
};

model_rewriter::model_rewriter(const engine::tokenizer& tok, engine_backend& backend, rewriter_options options)
    : tok_(tok), backend_(backend), options_(options), batch_(backend.model()) {
  options_.jobs = std::max<std::size_t>(1, options_.jobs);
}

model_rewriter::~model_rewriter() = default;

result<relevance_answer> model_rewriter::concerns(const unit_task& task) { return ask_relevance(tok_, backend_, task); }

result<void> model_rewriter::start(std::size_t id, const unit_task& task) {
  const engine::tokenizer& tok = tok_;
  const unit_prompt prompt = build_unit_prompt(tok, task, prompt_tail::rewrite);
  engine::generation_request gen;
  gen.prompt = prompt.ids;
  gen.max_tokens = rewrite_limit(prompt);
  gen.sampling.greedy = true;
  gen.cache = backend_.cache();
  gen.stop = task.stop;
  gen.plan.snapshot_at = unit_snapshots(prompt);
  gen.speculate = options_.speculate;
  gen.lookup.assign(prompt.ids.begin() + static_cast<std::ptrdiff_t>(prompt.head_tokens),
                    prompt.ids.begin() + static_cast<std::ptrdiff_t>(prompt.unit_tokens));
  backend_.add_stop_ids(gen);
  auto f = std::make_unique<flight>(flight{id, task.code, prompt.ids.size(), fenced_reply(tok)});
  gen.on_token = [reply = &f->reply](std::int32_t token) { return reply->push(token); };
  QCODER_TRY(const std::size_t ticket, batch_.add(std::move(gen)));
  flights_.emplace(ticket, std::move(f));
  return ok();
}

result<std::vector<unit_rewriter::done>> model_rewriter::finish_some() {
  std::vector<done> out;
  while (out.empty() && batch_.size() > 0) {
    result<std::vector<engine::generation_batch::finished>> step = batch_.step();
    if (!step) {
      flights_.clear();
      return step.take_error();
    }
    for (engine::generation_batch::finished& f : *step) {
      const auto it = flights_.find(f.ticket);
      if (it == flights_.end()) return fail(errc::internal, "a rewrite finished that was never started");
      flight& fl = *it->second;
      const engine::generation_result& r = f.result;
      rewrite_answer answer;
      answer.prompt_tokens = fl.prompt_tokens;
      answer.restored_tokens = r.prompt_tokens_restored;
      answer.generated_tokens = r.tokens.size();
      answer.drafted = r.drafted;
      answer.accepted = r.accepted;
      answer.forward_passes = r.forward_passes;
      if (r.reason == engine::finish_reason::cancelled) {
        answer.cancelled = true;
      } else {
        answer.code = fl.reply.code(fl.original, r.reason, &answer.complete);
      }
      out.push_back({fl.id, std::move(answer)});
      flights_.erase(it);
    }
  }
  return out;
}

// What the rewrite threads hand back, under one lock.
struct backend_rewriter::shared {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<done> finished;
  std::optional<error> failure;
};

backend_rewriter::backend_rewriter(const engine::tokenizer& tok, text_backend& backend, rewriter_options options)
    : tok_(tok), backend_(backend), options_(options), shared_(std::make_shared<shared>()) {
  options_.jobs = std::max<std::size_t>(1, options_.jobs);
}

backend_rewriter::~backend_rewriter() { stop_all(); }

void backend_rewriter::stop_all() {
  for (auto& [id, r] : running_) r.stop->request_stop();
  for (auto& [id, r] : running_) r.thread.join();
  running_.clear();
}

result<relevance_answer> backend_rewriter::concerns(const unit_task& task) { return ask_relevance(tok_, backend_, task); }

result<void> backend_rewriter::start(std::size_t id, const unit_task& task) {
  const unit_prompt prompt = build_unit_prompt(tok_, task, prompt_tail::rewrite);
  text_generation gen;
  gen.prompt = prompt.ids;
  gen.max_tokens = rewrite_limit(prompt);
  gen.sampling.greedy = true;
  gen.snapshot_at = unit_snapshots(prompt);
  auto stop = std::make_shared<std::stop_source>();
  gen.stop = stop->get_token();
  // The thread gets copies: the task's texts may be gone before a stopped rewrite returns.
  std::thread thread([this, id, gen = std::move(gen), original = std::string(task.code), task_stop = task.stop, stop,
                      prompt_tokens = prompt.ids.size(), state = shared_]() mutable {
    std::stop_callback forward(task_stop, [&stop] { stop->request_stop(); });
    fenced_reply reply(tok_);
    gen.on_text = [&reply](std::string_view piece) { return reply.push_text(piece); };
    result<text_generated> r = backend_.generate(gen);
    std::lock_guard lock(state->mutex);
    if (!r) {
      if (!state->failure) state->failure = r.take_error();
    } else {
      rewrite_answer answer;
      answer.prompt_tokens = prompt_tokens;
      answer.restored_tokens = r->restored_tokens;
      answer.generated_tokens = r->generated_tokens;
      if (r->reason == engine::finish_reason::cancelled) {
        answer.cancelled = true;
      } else {
        answer.code = reply.code(original, r->reason, &answer.complete);
      }
      state->finished.push_back({id, std::move(answer)});
    }
    state->changed.notify_all();
  });
  running_.emplace(id, runner{std::move(thread), std::move(stop)});
  return ok();
}

result<std::vector<unit_rewriter::done>> backend_rewriter::finish_some() {
  if (running_.empty()) return std::vector<done>{};
  std::vector<done> out;
  {
    std::unique_lock lock(shared_->mutex);
    shared_->changed.wait(lock, [&] { return !shared_->finished.empty() || shared_->failure; });
    if (shared_->failure) {
      error why = *shared_->failure;
      lock.unlock();
      stop_all();
      return why;
    }
    out = std::move(shared_->finished);
    shared_->finished.clear();
  }
  for (const done& d : out) {
    const auto it = running_.find(d.id);
    if (it == running_.end()) continue;
    it->second.thread.join();
    running_.erase(it);
  }
  return out;
}

namespace {

// A file whose units are being worked on; reported (in walk order) when none is outstanding.
struct open_file {
  file_change change;
  std::vector<code_unit> units;
  std::vector<std::optional<std::string>> replacements;  // per unit: the new text, when it changed
  std::size_t outstanding = 0;  // rewrites started and not returned
  bool stopped = false;         // a stop cut it short: dropped whole
};

}  // namespace

result<refactor_stats> run_refactor(const std::filesystem::path& root, const refactor_options& options,
                                    unit_rewriter& rewriter, const refactor_callbacks& callbacks, std::stop_token stop) {
  const auto started = std::chrono::steady_clock::now();
  if (options.instruction.find_first_not_of(" \t\r\n") == std::string::npos) {
    return fail(errc::invalid_argument, "the instruction is empty");
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return fail(errc::not_found, "{}: not a folder", root.string());
  context::walk_result walked = context::walk_workspace(root, options.walk, stop);
  if (walked.files.size() > options.max_files) walked.files.resize(options.max_files);
  refactor_stats stats;
  stats.files = walked.files.size();
  const std::vector<std::string> anchors = instruction_anchors(options.instruction);
  const auto progress = [&](std::string_view path) {
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (callbacks.on_progress) callbacks.on_progress(stats, path);
  };

  // Files in walk order from the first not yet reported; rewrites in flight by id (file, unit).
  std::deque<open_file> open;
  std::size_t reported = 0;  // walk index of open.front()
  std::map<std::size_t, std::pair<std::size_t, std::size_t>> flying;
  std::size_t next_id = 0;
  bool stopped = false;  // a stop was seen: nothing new starts, the file it cut and all after are dropped

  // Takes the rewrites that are done.
  const auto collect = [&]() -> result<void> {
    QCODER_TRY(std::vector<unit_rewriter::done> finished, rewriter.finish_some());
    for (unit_rewriter::done& d : finished) {
      const auto it = flying.find(d.id);
      if (it == flying.end()) return fail(errc::internal, "a rewrite came back that was never started");
      const auto [file_index, unit_index] = it->second;
      flying.erase(it);
      open_file& file = open[file_index - reported];
      const code_unit& u = file.units[unit_index];
      const std::string_view code = std::string_view(file.change.original).substr(u.begin, u.end - u.begin);
      const rewrite_answer& answer = d.answer;
      --file.outstanding;
      ++stats.units_rewritten;
      stats.prompt_tokens += answer.prompt_tokens;
      stats.restored_tokens += answer.restored_tokens;
      stats.generated_tokens += answer.generated_tokens;
      stats.drafted += answer.drafted;
      stats.accepted += answer.accepted;
      stats.forward_passes += answer.forward_passes;
      if (answer.cancelled) {
        file.stopped = stopped = true;
      } else if (!answer.complete && !options.accept_incomplete) {
        ++stats.units_incomplete;
        spdlog::info("refactor: {} lines {}-{}: the answer was cut off; left as it was", file.change.path,
                     u.first_line + 1, u.last_line + 1);
      } else if (answer.code != code) {
        file.replacements[unit_index] = std::move(d.answer.code);
        ++stats.units_changed;
        ++file.change.units_changed;
      }
      progress(file.change.path);
    }
    return ok();
  };
  // Reports the finished files at the front, in walk order; a file a stop cut short ends the reporting.
  const auto report = [&]() -> result<void> {
    while (!open.empty() && open.front().outstanding == 0 && !open.front().stopped) {
      open_file& file = open.front();
      if (file.replacements.size() < file.units.size()) break;  // its units are still being decided
      ++stats.files_done;
      if (file.change.units_changed > 0) {
        for (std::size_t i = 0; i < file.units.size(); ++i) {
          const code_unit& u = file.units[i];
          if (file.replacements[i]) {
            file.change.updated += *file.replacements[i];
          } else {
            file.change.updated.append(file.change.original, u.begin, u.end - u.begin);
          }
        }
        if (file.change.updated != file.change.original) {
          ++stats.files_changed;
          if (callbacks.on_file) QCODER_CHECK(callbacks.on_file(file.change));
        }
      }
      open.pop_front();
      ++reported;
    }
    return ok();
  };

  for (std::size_t index = 0; index < walked.files.size() && !stopped; ++index) {
    const context::walked_file& file = walked.files[index];
    if (stop.stop_requested()) break;
    progress(file.path);
    const auto overlay = options.overlay.find(file.path);
    result<std::string> text = overlay != options.overlay.end() ? result<std::string>(overlay->second)
                                                                : read_whole_file(root / file.path);
    if (!text || context::looks_binary(std::string_view(*text).substr(0, 8000)) || looks_generated(*text)) {
      ++stats.files_skipped;
      open.push_back({});  // an empty file record: reported as done, changes nothing
      QCODER_CHECK(report());
      continue;
    }
    // The file stays in `open` until it is reported, which cannot happen while its units are being
    // decided; a deque keeps its elements (and the texts the tasks point into) in place as it grows.
    open_file& f = open.emplace_back();
    f.change = file_change{file.path, std::move(*text), {}, 0, 0};
    {
      context::document doc(file.path, file.lang, f.change.original);
      f.units = split_units(doc.view(), options.split);
    }
    f.change.units = f.units.size();
    stats.units += f.units.size();
    for (std::size_t ui = 0; ui < f.units.size(); ++ui) {
      const code_unit u = f.units[ui];
      const std::string_view code = std::string_view(f.change.original).substr(u.begin, u.end - u.begin);
      if (stopped || stop.stop_requested() || (!anchors.empty() && !mentions_any(code, anchors))) {
        f.replacements.emplace_back();
        continue;
      }
      ++stats.units_mentioned;
      const unit_task task{f.change.path, file.lang, options.instruction, code, u.first_line, u.last_line, stop};
      bool wanted = true;
      if (options.check_relevance) {
        ++stats.units_asked;
        result<relevance_answer> concerned = rewriter.concerns(task);
        if (!concerned && concerned.err().code == errc::cancelled) {
          f.stopped = stopped = true;
          wanted = false;
        } else if (!concerned) {
          return concerned.take_error();
        } else {
          wanted = concerned->wanted;
          stats.prompt_tokens += concerned->prompt_tokens;
          stats.restored_tokens += concerned->restored_tokens;
        }
      }
      if (wanted) {
        // Wait for a free place; what comes back may finish earlier files (this one cannot be reported:
        // it has fewer replacements than units until its last unit is decided, just below).
        while (flying.size() >= std::max<std::size_t>(1, rewriter.capacity())) {
          QCODER_CHECK(collect());
          QCODER_CHECK(report());
        }
      }
      f.replacements.emplace_back();
      if (wanted) {
        if (!stopped) {
          QCODER_CHECK(rewriter.start(next_id, task));
          flying.emplace(next_id++, std::pair{index, ui});
          ++f.outstanding;
        }
      }
      progress(f.change.path);
    }
    if (stop.stop_requested()) f.stopped = stopped = true;
    QCODER_CHECK(report());
  }
  // The rewrites still in flight (after a stop they come back cancelled at their next token).
  while (!flying.empty()) {
    QCODER_CHECK(collect());
    QCODER_CHECK(report());
  }
  stats.cancelled = stop.stop_requested() || !walked.complete || stats.files_done < stats.files;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

}  // namespace qcoder::service
