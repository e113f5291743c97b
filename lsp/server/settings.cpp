// Reading settings from JSON.
#include "lsp/server/settings.h"

#include <fmt/core.h>

namespace qcoder::lsp {

using nlohmann::json;

bool server_settings::enabled_for(std::string_view language_id) const {
  if (auto it = enable.find(language_id); it != enable.end()) return it->second;
  if (auto it = enable.find("*"); it != enable.end()) return it->second;
  return true;
}

std::vector<std::string> apply_settings(const json& j, server_settings& s) {
  std::vector<std::string> problems;
  if (j.is_null()) return problems;
  if (!j.is_object()) return {"qcoder: expected an object of settings"};
  const auto integer = [&](const char* key, std::int64_t lo, std::int64_t hi, auto& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_number_integer() || it->template get<std::int64_t>() < lo || it->template get<std::int64_t>() > hi) {
      problems.push_back(fmt::format("qcoder.{}: expected an integer in {}..{}", key, lo, hi));
      return;
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(it->template get<std::int64_t>());
  };
  const auto text = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_string()) {
      problems.push_back(fmt::format("qcoder.{}: expected a string", key));
      return;
    }
    out = it->get<std::string>();
  };
  text("model", s.model);
  text("expertCacheRam", s.expert_cache_ram);
  text("prefixCache", s.prefix_cache);
  text("rewriteInstruction", s.rewrite_instruction);
  integer("contextTokens", 256, 1 << 17, s.context_tokens);
  integer("maxTokens", 1, 8192, s.max_tokens);
  integer("editMaxTokens", 1, 32768, s.edit_max_tokens);
  std::int64_t debounce = s.debounce.count();
  integer("debounceMs", 0, 5000, debounce);
  s.debounce = std::chrono::milliseconds(debounce);
  if (auto it = j.find("acceptIncompleteEdits"); it != j.end() && !it->is_null()) {
    if (it->is_boolean()) {
      s.accept_incomplete_edits = it->get<bool>();
    } else {
      problems.push_back("qcoder.acceptIncompleteEdits: expected true or false");
    }
  }
  if (auto it = j.find("enable"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      problems.push_back("qcoder.enable: expected an object of languageId: true/false");
    } else {
      for (const auto& [language_id, on] : it->items()) {
        if (on.is_boolean()) {
          s.enable[language_id] = on.get<bool>();
        } else {
          problems.push_back(fmt::format("qcoder.enable.{}: expected true or false", language_id));
        }
      }
    }
  }
  return problems;
}

}  // namespace qcoder::lsp
