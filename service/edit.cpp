// Targets, prompts and answers of edits.
#include "service/edit.h"

#include <algorithm>

#include <fmt/core.h>

#include "context/symbols.h"
#include "engine/generate.h"
#include "engine/tokenizer/stream_decoder.h"

namespace qcoder::service {
namespace {

std::size_t line_start_of(std::string_view text, std::size_t offset) {
  const std::size_t nl = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  return nl == std::string_view::npos ? 0 : nl + 1;
}

// Just past the newline that ends the line holding `offset` (the text's end for the last line).
std::size_t line_end_of(std::string_view text, std::size_t offset) {
  const std::size_t nl = text.find('\n', offset);
  return nl == std::string_view::npos ? text.size() : nl + 1;
}

std::size_t line_number(std::string_view text, std::size_t offset) {
  return static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

// [start of line `first`, end of line `last`) in bytes.
std::pair<std::size_t, std::size_t> line_span(std::string_view text, std::size_t first, std::size_t last) {
  std::size_t begin = 0;
  for (std::size_t line = 0; line < first && begin < text.size(); ++line) begin = line_end_of(text, begin);
  std::size_t end = begin;
  for (std::size_t line = first; line <= last && end < text.size(); ++line) end = line_end_of(text, end);
  return {begin, end};
}

// The innermost definition of one of `kinds` whose lines hold `line`.
std::optional<context::definition> enclosing(const context::source_view& src, std::size_t line,
                                             std::initializer_list<context::def_kind> kinds) {
  if (!src.lang || src.tree == nullptr) return std::nullopt;
  context::symbol_options options;
  options.snippet_lines = 0;
  const context::file_symbols symbols = context::extract_symbols(*src.lang, src.text, src.tree, options);
  std::optional<context::definition> best;
  for (const context::definition& def : symbols.definitions) {
    if (std::find(kinds.begin(), kinds.end(), def.kind) == kinds.end()) continue;
    if (def.line > line || def.end_line < line) continue;
    if (!best || def.end_line - def.line < best->end_line - best->line) best = def;
  }
  return best;
}

std::string subject_of(const context::definition& def) {
  const std::string_view kind = def.kind == context::def_kind::class_ ? "class"
                                : def.kind == context::def_kind::method ? "method"
                                                                        : "function";
  return fmt::format("{} {}", kind, def.name);
}

std::string_view fence_language(const context::source_view& src) {
  return src.lang ? context::info(*src.lang).name : std::string_view("text");
}

}  // namespace

std::string_view to_string(edit_kind kind) {
  switch (kind) {
    case edit_kind::rewrite: return "rewrite";
    case edit_kind::complete_body: return "complete";
    case edit_kind::document: return "document";
    case edit_kind::fix: return "fix";
  }
  return "?";
}

std::optional<edit_kind> edit_kind_from(std::string_view name) {
  for (edit_kind k : {edit_kind::rewrite, edit_kind::complete_body, edit_kind::document, edit_kind::fix}) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

result<edit_target> find_edit_target(const context::source_view& src, const edit_request& request) {
  const std::string_view text = src.text;
  if (request.begin > request.end || request.end > text.size()) {
    return fail(errc::invalid_argument, "range [{}, {}) is outside the text ({} bytes)", request.begin, request.end, text.size());
  }
  edit_target target;
  const std::size_t line = line_number(text, request.begin);
  switch (request.kind) {
    case edit_kind::rewrite: {
      if (request.instruction.empty()) return fail(errc::invalid_argument, "a rewrite needs an instruction");
      target.begin = line_start_of(text, request.begin);
      // A selection ending at a line start does not take that line.
      target.end = request.end > request.begin && request.end == line_start_of(text, request.end)
                       ? request.end
                       : line_end_of(text, request.end);
      target.subject = "the selection";
      target.instruction = request.instruction;
      break;
    }
    case edit_kind::complete_body:
    case edit_kind::document: {
      std::initializer_list<context::def_kind> kinds = {context::def_kind::function, context::def_kind::method};
      std::initializer_list<context::def_kind> with_classes = {context::def_kind::function, context::def_kind::method,
                                                               context::def_kind::class_};
      std::optional<context::definition> def =
          enclosing(src, line, request.kind == edit_kind::document ? with_classes : kinds);
      if (!def) return fail(errc::not_found, "no function encloses line {}", line + 1);
      std::tie(target.begin, target.end) = line_span(text, def->line, def->end_line);
      target.subject = subject_of(*def);
      if (request.kind == edit_kind::complete_body) {
        target.instruction = fmt::format(
            "Implement the {} completely: write or finish its body. Keep its name, parameters and "
            "documentation as they are.",
            target.subject);
      } else if (src.lang == context::language::python) {
        target.instruction = fmt::format(
            "Add a docstring to the {}: what it does, its parameters and what it returns. Change nothing else.",
            target.subject);
      } else {
        target.instruction = fmt::format(
            "Add a documentation comment right above the {}, in the style the file uses: what it does, its "
            "parameters and what it returns. Change nothing else.",
            target.subject);
      }
      break;
    }
    case edit_kind::fix: {
      if (request.instruction.empty()) return fail(errc::invalid_argument, "a fix needs the diagnostic's message");
      const std::size_t last_line = line_number(text, request.end);
      // The enclosing function when it is small enough to send whole (a fix often needs its context),
      // else the diagnostic's lines.
      std::optional<context::definition> def =
          enclosing(src, line, {context::def_kind::function, context::def_kind::method});
      if (def && def->end_line >= last_line && def->end_line - def->line < 80) {
        std::tie(target.begin, target.end) = line_span(text, def->line, def->end_line);
        target.subject = subject_of(*def);
      } else {
        std::tie(target.begin, target.end) = line_span(text, line, last_line);
        target.subject = fmt::format("line {}", line + 1);
      }
      target.instruction = fmt::format("Fix this problem reported at line {}: {}\nChange only what the fix needs.",
                                       line + 1, request.instruction);
      break;
    }
  }
  return target;
}

std::string edit_prompt(const context::source_view& src, const edit_request& request, const edit_target& target) {
  const std::string_view text = src.text;
  // About 3 bytes a token; two thirds of the context before the range, a third after, cut at lines.
  const std::size_t budget_bytes = request.context_tokens * 3;
  std::size_t before = target.begin > budget_bytes * 2 / 3 ? target.begin - budget_bytes * 2 / 3 : 0;
  if (before > 0) before = line_end_of(text, before);
  std::size_t after = std::min(text.size(), target.end + budget_bytes / 3);
  if (after < text.size()) after = line_start_of(text, after);
  const std::string_view lang = fence_language(src);
  const std::string_view comment = src.lang ? context::line_comment(*src.lang) : std::string_view("#");
  const std::size_t first_line = line_number(text, target.begin) + 1;
  const std::size_t last_line = std::max(first_line, line_number(text, target.end == 0 ? 0 : target.end - 1) + 1);

  std::string p;
  p += "<|im_start|>system\nYou are qcoder, a coding assistant inside the user's editor. You change code exactly "
       "as asked, keep the file's style and indentation, and answer with code only.<|im_end|>\n";
  p += "<|im_start|>user\n";
  p += fmt::format("File: {}\n\nThe code around the part to change:\n```{}\n", src.path, lang);
  p += text.substr(before, target.begin - before);
  p += fmt::format("{} >>> the part to change (lines {}-{}) is here <<<\n", comment, first_line, last_line);
  p += text.substr(target.end, after - target.end);
  if (!p.empty() && p.back() != '\n') p += '\n';
  p += fmt::format("```\n\nThe part to change:\n```{}\n", lang);
  p += text.substr(target.begin, target.end - target.begin);
  if (p.back() != '\n') p += '\n';
  p += fmt::format("```\n\n{}\nAnswer with the new version of the whole part, in one ```{} block, and nothing else.<|im_end|>\n",
                   target.instruction, lang);
  p += fmt::format("<|im_start|>assistant\n```{}\n", lang);
  return p;
}

bool fenced_reply::push(std::int32_t id) {
  piece_.clear();
  if (!decoder_.push(id, piece_)) return false;
  return push_text(piece_);
}

bool fenced_reply::push_text(std::string_view text) {
  reply_ += text;
  // Stop at the closing fence: the rest is chatter.
  return reply_.find("\n```") == std::string::npos && !reply_.starts_with("```");
}

std::string fenced_reply::code(std::string_view original, engine::finish_reason reason, bool* complete) {
  piece_.clear();
  decoder_.finish(piece_);
  reply_ += piece_;
  bool closed = false;
  std::string code = extract_code(reply_, original, &closed);
  // A reply that ended on its own (end of turn) without a fence is complete too.
  if (complete != nullptr) *complete = closed || reason != engine::finish_reason::length;
  return code;
}

std::string extract_code(std::string_view reply, std::string_view original, bool* closed) {
  std::size_t cut = std::string_view::npos;
  for (std::size_t at = 0; at < reply.size();) {
    const std::size_t nl = reply.find('\n', at);
    const std::string_view line = reply.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    if (line.starts_with("```")) {
      cut = at;
      break;
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  if (closed != nullptr) *closed = cut != std::string_view::npos;
  std::string code(reply.substr(0, cut));
  const bool wants_newline = !original.empty() && original.back() == '\n';
  if (wants_newline && !code.empty() && code.back() != '\n') code += '\n';
  if (!wants_newline) {
    while (!code.empty() && code.back() == '\n') code.pop_back();
  }
  return code;
}

edit_service::edit_service(completion_service& runner) : runner_(runner) {}

result<edit_result> edit_service::edit(text_backend& backend, const edit_request& request) {
  context::document doc(request.path, request.lang, request.text);
  const context::source_view src = doc.view();
  edit_result out;
  QCODER_TRY(out.target, find_edit_target(src, request));
  const std::string prompt = edit_prompt(src, request, out.target);
  const engine::tokenizer& tok = runner_.tokenizer();

  text_generation gen;
  const std::vector<engine::token_id> ids = tok.encode_prompt(prompt);
  gen.prompt.assign(ids.begin(), ids.end());
  out.prompt_tokens = gen.prompt.size();
  gen.max_tokens = request.max_tokens;
  gen.sampling.greedy = true;
  gen.stop = request.stop;
  fenced_reply reply(tok);
  std::size_t generated = 0;
  gen.on_text = [&](std::string_view piece) {
    const bool more = reply.push_text(piece);
    ++generated;
    if (request.on_progress) request.on_progress(generated);
    return more;
  };
  QCODER_TRY(text_generated generated_result, backend.generate(gen));
  out.generated_tokens = generated_result.generated_tokens;
  out.restored_tokens = generated_result.restored_tokens;
  out.prefill_seconds = generated_result.prefill_seconds;
  out.decode_seconds = generated_result.decode_seconds;
  if (generated_result.reason == engine::finish_reason::cancelled) {
    out.cancelled = true;
    return out;
  }
  const std::string_view original = src.text.substr(out.target.begin, out.target.end - out.target.begin);
  out.replacement = reply.code(original, generated_result.reason, &out.complete);
  if (!out.complete && !request.accept_incomplete) {
    return fail(errc::unsupported,
                "the model's answer for {} was cut off at {} tokens; nothing was changed (raise the edit token "
                "limit, or accept incomplete edits in the settings)",
                out.target.subject, request.max_tokens);
  }
  for (text_replacement& r : diff_texts(original, out.replacement)) {
    r.begin += out.target.begin;
    r.end += out.target.begin;
    out.edits.push_back(std::move(r));
  }
  return out;
}

result<std::unique_ptr<assistant>> assistant::create(std::shared_ptr<const engine::tokenizer> tok,
                                                     context::prompt_options options) {
  auto a = std::make_unique<assistant>();
  QCODER_TRY(a->completions, completion_service::create(std::move(tok), std::move(options)));
  a->edits = std::make_unique<edit_service>(*a->completions);
  return a;
}

}  // namespace qcoder::service
