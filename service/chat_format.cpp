// Request parsing, the Qwen3-Coder-Next template, and the streaming reply parser.
//
// The template is the chat_template of Qwen3-Coder-Next's tokenizer_config.json, rendered as Hugging Face
// does (Jinja with trim_blocks and lstrip_blocks, `tojson` as Python's json.dumps with ensure_ascii off,
// `| string` as Python's str()). Its wording below is copied exactly because the model was trained on it.
// Where we depart from it, on purpose:
//  - A tool result with no message before it in the loop still opens a user turn (the template forgets to,
//    which only happens for a request that starts with a tool result).
//  - An empty or null description is left out, like a missing one (the template would print "" or "None").
//  - `trim` strips ASCII white space only (Python's strip() also strips Unicode spaces).
//  - Content that spells a control token stays text: see encode_pieces.
#include "service/chat_format.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <optional>

#include <fmt/core.h>

namespace qcoder::service {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view tool_call_open = "<tool_call>";
constexpr std::string_view tool_call_close = "</tool_call>";
constexpr std::string_view function_open = "<function=";
constexpr std::string_view function_close = "</function>";
constexpr std::string_view parameter_open = "<parameter=";
constexpr std::string_view parameter_close = "</parameter>";

// The template's system text when tools are given without a system message.
constexpr std::string_view default_system =
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.";

// The tools section's header and, after the list, how to call them (the template's words).
constexpr std::string_view tools_header = "\n\n# Tools\n\nYou have access to the following tools:\n\n<tools>";
constexpr std::string_view tools_footer =
    "\n</tools>\n\nIf you choose to call a tool ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nvalue_2\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: the tool calling block MUST begin with an opening "
    "<tool_call> tag and end with a closing </tool_call> tag.\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE the function call, "
    "but NOT after\n"
    "- If there is no function call available, answer the question like normal with your current knowledge and "
    "do not tell the user about function calls\n"
    "</IMPORTANT>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim_end(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// ---- Python's spellings of JSON values, as the template prints them ----

std::string json_string(std::string_view s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// json.dumps(v, ensure_ascii=False): ", " and ": " separators, keys in their order.
void append_tojson(std::string& out, const json& v) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += json_string(key);
      out += ": ";
      append_tojson(out, value);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ", ";
      append_tojson(out, v[i]);
    }
    out += ']';
  } else if (v.is_string()) {
    out += json_string(v.get_ref<const std::string&>());
  } else {
    out += v.dump();  // numbers, booleans and null are spelled as in JSON
  }
}

std::string tojson(const json& v) {
  std::string out;
  append_tojson(out, v);
  return out;
}

// repr() of a value inside a list or dict: 'text', True, None.
void append_python_repr(std::string& out, const json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    const char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
    out += quote;
    for (const char c : s) {
      if (c == '\\' || c == quote) {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
      } else {
        out += c;
      }
    }
    out += quote;
  } else if (v.is_boolean()) {
    out += v.get<bool>() ? "True" : "False";
  } else if (v.is_null()) {
    out += "None";
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ", ";
      append_python_repr(out, v[i]);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ", ";
      first = false;
      append_python_repr(out, json(key));
      out += ": ";
      append_python_repr(out, value);
    }
    out += '}';
  } else {
    out += v.dump();
  }
}

// str(v): text as is, True/False/None, containers as repr.
std::string python_str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string out;
  append_python_repr(out, v);
  return out;
}

// A value inside the prompt: `v | tojson` for containers, `v | string` otherwise.
std::string template_value(const json& v) { return v.is_object() || v.is_array() ? tojson(v) : python_str(v); }

// ---- request parsing ----

const char* json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

// A member of `obj`, or nullptr when it is missing or null (the API treats both as "not given").
const json* member(const json& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

result<std::string> parse_content(const json& content, const std::string& path) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return fail(errc::invalid_argument, "{}: expected a string or an array of text parts", path);
  // Parts are joined with a newline, as vLLM does: clients split long messages (task, environment) into
  // parts that read as separate paragraphs.
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string at = fmt::format("{}[{}]", path, i);
    if (!part.is_object()) return fail(errc::invalid_argument, "{}: expected a text part object, got {}", at, json_kind(part));
    const json* type = member(part, "type");
    if (type == nullptr || !type->is_string()) return fail(errc::invalid_argument, "{}.type: expected \"text\"", at);
    if (*type != "text") {
      return fail(errc::unsupported, "{}.type: \"{}\" parts are not supported, only \"text\"", at, type->get<std::string>());
    }
    const json* part_text = member(part, "text");
    if (part_text == nullptr || !part_text->is_string()) return fail(errc::invalid_argument, "{}.text: expected a string", at);
    if (i > 0) text += '\n';
    text += part_text->get_ref<const std::string&>();
  }
  return text;
}

result<json> parse_arguments(const json& arguments, const std::string& path) {
  json parsed;
  if (arguments.is_string()) {
    const std::string_view text = trim(arguments.get_ref<const std::string&>());
    if (text.empty()) return json::object();  // some clients send "" for a call without arguments
    parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return fail(errc::parse_error, "{}: not valid JSON", path);
  } else if (arguments.is_object()) {
    parsed = arguments;
  } else {
    return fail(errc::invalid_argument, "{}: expected a JSON object encoded as a string, got {}", path, json_kind(arguments));
  }
  if (!parsed.is_object()) return fail(errc::invalid_argument, "{}: expected a JSON object, got {}", path, json_kind(parsed));
  return parsed;
}

result<std::vector<tool_call>> parse_tool_calls(const json& calls, const std::string& path) {
  if (!calls.is_array()) return fail(errc::invalid_argument, "{}: expected an array, got {}", path, json_kind(calls));
  std::vector<tool_call> out;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const json& c = calls[i];
    const std::string at = fmt::format("{}[{}]", path, i);
    if (!c.is_object()) return fail(errc::invalid_argument, "{}: expected an object, got {}", at, json_kind(c));
    tool_call call;
    if (const json* type = member(c, "type"); type != nullptr && *type != "function") {
      return fail(errc::invalid_argument, "{}.type: expected \"function\"", at);
    }
    if (const json* id = member(c, "id")) {
      if (!id->is_string()) return fail(errc::invalid_argument, "{}.id: expected a string", at);
      call.id = id->get<std::string>();
    }
    const json* function = member(c, "function");
    if (function == nullptr || !function->is_object()) return fail(errc::invalid_argument, "{}.function: expected an object", at);
    const json* name = member(*function, "name");
    if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return fail(errc::invalid_argument, "{}.function.name: expected a non-empty string", at);
    }
    call.name = name->get<std::string>();
    if (const json* arguments = member(*function, "arguments")) {
      QCODER_TRY(call.arguments, parse_arguments(*arguments, at + ".function.arguments"));
    }
    out.push_back(std::move(call));
  }
  return out;
}

result<chat_message> parse_message(const json& m, const std::string& path) {
  if (!m.is_object()) return fail(errc::invalid_argument, "{}: expected an object, got {}", path, json_kind(m));
  const json* role = member(m, "role");
  if (role == nullptr || !role->is_string()) return fail(errc::invalid_argument, "{}.role: expected a string", path);
  chat_message msg;
  msg.role = role->get<std::string>();
  if (msg.role == "developer") msg.role = "system";  // the newer name for the same thing
  if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool") {
    return fail(errc::invalid_argument, "{}.role: unknown role \"{}\" (expected system, developer, user, assistant or tool)",
                path, msg.role);
  }
  if (member(m, "function_call") != nullptr) {
    return fail(errc::unsupported, "{}.function_call: the legacy function_call is not supported, use tool_calls", path);
  }
  const bool assistant = msg.role == "assistant";
  if (const json* content = member(m, "content")) {
    QCODER_TRY(msg.content, parse_content(*content, path + ".content"));
  } else if (!assistant) {
    // An assistant turn that only calls tools has no content; every other turn needs one.
    const auto it = m.find("content");
    if (it == m.end()) return fail(errc::invalid_argument, "{}.content: missing", path);
    return fail(errc::invalid_argument, "{}.content: expected a string or an array of text parts", path);
  }
  if (const json* calls = member(m, "tool_calls")) {
    if (!assistant) return fail(errc::invalid_argument, "{}.tool_calls: only assistant messages carry tool calls", path);
    QCODER_TRY(msg.tool_calls, parse_tool_calls(*calls, path + ".tool_calls"));
  }
  if (msg.role == "tool") {
    if (const json* id = member(m, "tool_call_id")) {
      if (!id->is_string()) return fail(errc::invalid_argument, "{}.tool_call_id: expected a string", path);
      msg.tool_call_id = id->get<std::string>();
    }
  }
  return msg;
}

// A name goes into "<function=NAME>", which the reply parser reads up to '>'.
bool valid_tool_name(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '<' || c == '>' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
  });
}

// ---- rendering ----

// Collects the prompt, merging neighbours of one kind.
class piece_writer {
 public:
  void control(std::string_view s) { add(s, true); }
  void text(std::string_view s) { add(s, false); }
  std::vector<prompt_piece> take() { return std::move(pieces_); }

 private:
  void add(std::string_view s, bool control) {
    if (s.empty()) return;
    if (!pieces_.empty() && pieces_.back().control == control) {
      pieces_.back().text += s;
    } else {
      pieces_.push_back(prompt_piece{std::string(s), control});
    }
  }
  std::vector<prompt_piece> pieces_;
};

// The template's render_extra_keys: "\n<key>value</key>" for each key not handled elsewhere.
void render_extra_keys(piece_writer& w, const json& dict, std::initializer_list<std::string_view> handled) {
  if (!dict.is_object()) return;
  for (const auto& [key, value] : dict.items()) {
    if (std::find(handled.begin(), handled.end(), key) != handled.end()) continue;
    w.control("\n<");
    w.text(key);
    w.control(">");
    w.text(template_value(value));
    w.control("</");
    w.text(key);
    w.control(">");
  }
}

void render_tools(piece_writer& w, const std::vector<tool_spec>& tools) {
  w.control(tools_header);
  for (const tool_spec& tool : tools) {
    w.control("\n<function>\n<name>");
    w.text(tool.name);
    w.control("</name>");
    if (!tool.description.empty()) {
      w.control("\n<description>");
      w.text(trim(tool.description));
      w.control("</description>");
    }
    w.control("\n<parameters>");
    const json& params = tool.parameters;
    if (params.is_object()) {
      const auto props = params.find("properties");
      if (props != params.end() && props->is_object()) {
        for (const auto& [name, fields] : props->items()) {
          w.control("\n<parameter>\n<name>");
          w.text(name);
          w.control("</name>");
          if (fields.is_object()) {
            if (const auto type = fields.find("type"); type != fields.end()) {
              w.control("\n<type>");
              w.text(python_str(*type));
              w.control("</type>");
            }
            if (const auto description = fields.find("description"); description != fields.end()) {
              w.control("\n<description>");
              w.text(trim(python_str(*description)));
              w.control("</description>");
            }
            render_extra_keys(w, fields, {"name", "type", "description"});
          }
          w.control("\n</parameter>");
        }
      }
    }
    render_extra_keys(w, params, {"type", "properties"});
    w.control("\n</parameters>");
    render_extra_keys(w, tool.extra, {"type", "name", "description", "parameters"});
    w.control("\n</function>");
  }
  w.control(tools_footer);
}

// An assistant turn that called tools, in the format the model answers in.
void render_tool_calls(piece_writer& w, const chat_message& m) {
  w.control("<|im_start|>assistant");
  if (const std::string_view content = trim(m.content); !content.empty()) {
    w.control("\n");
    w.text(content);
    w.control("\n");
  }
  for (const tool_call& call : m.tool_calls) {
    w.control("\n<tool_call>\n<function=");
    w.text(call.name);
    w.control(">\n");
    for (const auto& [name, value] : call.arguments.items()) {
      w.control("<parameter=");
      w.text(name);
      w.control(">\n");
      w.text(template_value(value));
      w.control("\n</parameter>\n");
    }
    w.control("</function>\n</tool_call>");
  }
  w.control("<|im_end|>\n");
}

// ---- reply parsing ----

// How much of the end of `s` could be the start of `tag` (a proper prefix of it).
std::size_t partial_tag_at_end(std::string_view s, std::string_view tag) {
  for (std::size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

// Where a parameter's value ends, and where the text after its closing tag starts. The value ends at a
// "</parameter>" followed (after white space) by the next parameter or the end of the function, so code
// that itself mentions "</parameter>" survives; failing that at the first one; failing that (the model
// left the tag out) at the next parameter or the function's end.
std::pair<std::size_t, std::size_t> parameter_end(std::string_view block, std::size_t from, std::size_t body_end) {
  std::size_t first_close = std::string_view::npos;
  for (std::size_t c = block.find(parameter_close, from); c != std::string_view::npos && c < body_end;
       c = block.find(parameter_close, c + 1)) {
    if (first_close == std::string_view::npos) first_close = c;
    std::size_t after = c + parameter_close.size();
    while (after < body_end && is_space(block[after])) ++after;
    if (after >= body_end || block.substr(after).starts_with(parameter_open)) return {c, c + parameter_close.size()};
  }
  if (first_close != std::string_view::npos) return {first_close, first_close + parameter_close.size()};
  std::size_t next = block.find(parameter_open, from);
  if (next == std::string_view::npos || next > body_end) next = body_end;
  return {next, next};
}

// The JSON schema types a parameter accepts, in the order the schema gives them.
void collect_types(const json& schema, std::vector<std::string>& types, int depth = 0) {
  if (!schema.is_object() || depth > 4) return;
  if (const auto type = schema.find("type"); type != schema.end()) {
    if (type->is_string()) types.push_back(type->get<std::string>());
    if (type->is_array()) {
      for (const json& t : *type) {
        if (t.is_string()) types.push_back(t.get<std::string>());
      }
    }
    return;
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (const auto alternatives = schema.find(key); alternatives != schema.end() && alternatives->is_array()) {
      for (const json& alternative : *alternatives) collect_types(alternative, types, depth + 1);
    }
  }
}

// `text` read as a value of JSON schema type `type`, or nothing when it is not one.
std::optional<json> as_type(std::string_view type, std::string_view text) {
  text = trim(text);
  if (type == "boolean") {
    // Python's spelling too: the template prints earlier calls' booleans as True/False.
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "true") return json(true);
    if (lower == "false") return json(false);
    return std::nullopt;
  }
  if (type == "null") {
    if (text == "null" || text == "None") return json(nullptr);
    return std::nullopt;
  }
  if (type != "integer" && type != "number" && type != "object" && type != "array") return std::nullopt;
  json v = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return std::nullopt;
  if (type == "integer") {
    if (v.is_number_integer()) return v;
    // "3.0" for an integer: the number it means.
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::trunc(d) == d && std::abs(d) < 9.0e15) return json(static_cast<std::int64_t>(d));
    }
    return std::nullopt;
  }
  if (type == "number" && v.is_number()) return v;
  if (type == "object" && v.is_object()) return v;
  if (type == "array" && v.is_array()) return v;
  return std::nullopt;
}

}  // namespace

result<std::vector<chat_message>> parse_messages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) return fail(errc::invalid_argument, "messages: expected an array, got {}", json_kind(messages));
  if (messages.empty()) return fail(errc::invalid_argument, "messages: expected at least one message");
  std::vector<chat_message> out;
  out.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    QCODER_TRY(chat_message m, parse_message(messages[i], fmt::format("messages[{}]", i)));
    out.push_back(std::move(m));
  }
  return out;
}

result<std::vector<tool_spec>> parse_tools(const nlohmann::ordered_json& tools) {
  std::vector<tool_spec> out;
  if (tools.is_null()) return out;
  if (!tools.is_array()) return fail(errc::invalid_argument, "tools: expected an array, got {}", json_kind(tools));
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string at = fmt::format("tools[{}]", i);
    if (!t.is_object()) return fail(errc::invalid_argument, "{}: expected an object, got {}", at, json_kind(t));
    if (const json* type = member(t, "type"); type != nullptr && *type != "function") {
      return fail(errc::unsupported, "{}.type: only \"function\" tools are supported", at);
    }
    const json* function = member(t, "function");
    if (function == nullptr || !function->is_object()) return fail(errc::invalid_argument, "{}.function: expected an object", at);
    tool_spec spec;
    const json* name = member(*function, "name");
    if (name == nullptr || !name->is_string()) return fail(errc::invalid_argument, "{}.function.name: expected a string", at);
    spec.name = name->get<std::string>();
    if (!valid_tool_name(spec.name)) {
      return fail(errc::invalid_argument, "{}.function.name: \"{}\" is not a valid name (1-256 characters, no white space, '<' or '>')",
                  at, spec.name);
    }
    if (std::any_of(out.begin(), out.end(), [&](const tool_spec& s) { return s.name == spec.name; })) {
      return fail(errc::invalid_argument, "{}.function.name: \"{}\" is defined twice", at, spec.name);
    }
    if (const json* description = member(*function, "description")) {
      if (!description->is_string()) return fail(errc::invalid_argument, "{}.function.description: expected a string", at);
      spec.description = description->get<std::string>();
    }
    if (const json* parameters = member(*function, "parameters")) {
      if (!parameters->is_object()) {
        return fail(errc::invalid_argument, "{}.function.parameters: expected a JSON schema object, got {}", at, json_kind(*parameters));
      }
      spec.parameters = *parameters;
    }
    for (const auto& [key, value] : function->items()) {
      if (key != "name" && key != "description" && key != "parameters" && key != "type") spec.extra[key] = value;
    }
    out.push_back(std::move(spec));
  }
  return out;
}

std::vector<prompt_piece> render_chat(const std::vector<chat_message>& messages, const std::vector<tool_spec>& tools,
                                      bool add_generation_prompt) {
  piece_writer w;
  // The first system message heads the system turn; the tools section joins it.
  const bool has_system = !messages.empty() && messages.front().role == "system";
  if (has_system) {
    w.control("<|im_start|>system\n");
    w.text(messages.front().content);
  } else if (!tools.empty()) {
    w.control("<|im_start|>system\n");
    w.control(default_system);
  }
  if (!tools.empty()) render_tools(w, tools);
  if (has_system || !tools.empty()) w.control("<|im_end|>\n");

  const std::size_t first = has_system ? 1 : 0;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const chat_message& m = messages[i];
    if (m.role == "assistant" && !m.tool_calls.empty()) {
      render_tool_calls(w, m);
    } else if (m.role == "tool") {
      // Consecutive tool results share one user turn.
      if (i == first || messages[i - 1].role != "tool") w.control("<|im_start|>user\n");
      w.control("<tool_response>\n");
      w.text(m.content);
      w.control("\n</tool_response>\n");
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") w.control("<|im_end|>\n");
    } else {
      w.control(fmt::format("<|im_start|>{}\n", m.role));
      w.text(m.content);
      w.control("<|im_end|>\n");
    }
  }
  if (add_generation_prompt) w.control("<|im_start|>assistant\n");
  return w.take();
}

std::vector<std::int32_t> encode_pieces(const engine::tokenizer& tok, const std::vector<prompt_piece>& pieces) {
  // Control tokens are cut out of the control pieces (leftmost, longest first, as encode_prompt matches
  // them); the text between two of them, whoever wrote it, is encoded in one go as plain text. Encoding
  // each piece alone would split words at piece boundaries ("<function=" + "read_file" gives "=", "read"
  // where the model saw "=read") and drift from what the model was trained on and from what it generated
  // (so from the prefix cache). The added tokens' lstrip/rstrip flags are not honoured: Qwen sets none.
  const std::vector<engine::added_token>& added = tok.added_tokens();  // longest first
  std::array<bool, 256> starts{};
  for (const engine::added_token& a : added) {
    if (!a.content.empty()) starts[static_cast<unsigned char>(a.content[0])] = true;
  }
  std::vector<std::int32_t> ids;
  engine::encoder enc(tok);
  std::string run;
  const auto flush = [&] {
    if (!run.empty()) enc.encode(run, /*allow_special=*/false, ids);
    run.clear();
  };
  for (const prompt_piece& piece : pieces) {
    if (!piece.control) {
      run += piece.text;
      continue;
    }
    const std::string_view text = piece.text;
    std::size_t done = 0;
    for (std::size_t at = 0; at < text.size(); ++at) {
      if (!starts[static_cast<unsigned char>(text[at])]) continue;
      const auto match = std::find_if(added.begin(), added.end(), [&](const engine::added_token& a) {
        return !a.content.empty() && text.substr(at).starts_with(a.content);
      });
      if (match == added.end()) continue;
      run.append(text.substr(done, at - done));
      flush();
      ids.push_back(match->id);
      done = at + match->content.size();
      at = done - 1;
    }
    run.append(text.substr(done));
  }
  flush();
  return ids;
}

std::string join_pieces(const std::vector<prompt_piece>& pieces) {
  std::string out;
  for (const prompt_piece& p : pieces) out += p.text;
  return out;
}

std::string make_tool_call_id(std::mt19937_64& rng) {
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += alphabet[pick(rng)];
  return id;
}

tool_call_parser::tool_call_parser(std::vector<tool_spec> tools, std::uint64_t seed) : tools_(std::move(tools)), rng_(seed) {
  for (std::size_t i = 0; i < tools_.size(); ++i) by_name_.emplace(tools_[i].name, i);
}

tool_call_parser::output tool_call_parser::push(std::string_view text) {
  output out;
  pending_ += text;
  drain(out);
  return out;
}

tool_call_parser::output tool_call_parser::finish() {
  output out;
  if (in_call_) {
    // Cut off inside a call. Whole once </function> came; otherwise shown as the text it is.
    std::optional<tool_call> call;
    if (pending_.find(function_close) != std::string::npos) call = parse_call(pending_);
    if (call) {
      out.calls.push_back(std::move(*call));
    } else {
      out.content += tool_call_open;
      out.content += pending_;
    }
  } else {
    out.content += pending_;  // a tag's start that was not one, white space that no call followed
  }
  pending_.clear();
  in_call_ = after_call_ = false;
  close_scan_ = 0;
  return out;
}

void tool_call_parser::drain(output& out) {
  for (;;) {
    if (in_call_) {
      const std::size_t close = pending_.find(tool_call_close, close_scan_);
      if (close == std::string::npos) {
        // Resume where a closing tag could still start.
        close_scan_ = pending_.size() >= tool_call_close.size() ? pending_.size() - tool_call_close.size() + 1 : 0;
        return;
      }
      const std::string_view block(pending_.data(), close);
      if (std::optional<tool_call> call = parse_call(block)) {
        out.calls.push_back(std::move(*call));
      } else {
        // Not a call after all (no <function=...>): the text it is.
        out.content += tool_call_open;
        out.content += block;
        out.content += tool_call_close;
      }
      pending_.erase(0, close + tool_call_close.size());
      in_call_ = false;
      after_call_ = true;
      close_scan_ = 0;
      continue;
    }
    if (after_call_) {
      const std::size_t text = pending_.find_first_not_of(" \t\n\r\f\v");
      if (text == std::string::npos) {
        pending_.clear();
        return;
      }
      pending_.erase(0, text);
      after_call_ = false;
    }
    if (const std::size_t open = pending_.find(tool_call_open); open != std::string::npos) {
      out.content += trim_end(std::string_view(pending_).substr(0, open));
      pending_.erase(0, open + tool_call_open.size());
      in_call_ = true;
      close_scan_ = 0;
      continue;
    }
    // No tag: all of it is content but a tag's possible start and the white space before that.
    std::size_t keep = pending_.size() - partial_tag_at_end(pending_, tool_call_open);
    while (keep > 0 && is_space(pending_[keep - 1])) --keep;
    out.content.append(pending_, 0, keep);
    pending_.erase(0, keep);
    return;
  }
}

std::optional<tool_call> tool_call_parser::parse_call(std::string_view block) {
  const std::size_t function = block.find(function_open);
  if (function == std::string_view::npos) return std::nullopt;
  const std::size_t name_end = block.find('>', function);
  if (name_end == std::string_view::npos) return std::nullopt;
  const std::size_t name_begin = function + function_open.size();
  tool_call call;
  call.name = std::string(trim(block.substr(name_begin, name_end - name_begin)));
  if (call.name.empty()) return std::nullopt;
  call.id = make_tool_call_id(rng_);
  // The last </function>: a value may mention the tag, the block's own closing comes after it.
  std::size_t body_end = block.rfind(function_close);
  if (body_end == std::string_view::npos || body_end < name_end) body_end = block.size();
  std::size_t at = name_end + 1;
  for (;;) {
    const std::size_t open = block.find(parameter_open, at);
    if (open == std::string_view::npos || open >= body_end) break;
    const std::size_t close = block.find('>', open);
    if (close == std::string_view::npos || close >= body_end) break;
    const std::size_t pname_begin = open + parameter_open.size();
    const std::string name(trim(block.substr(pname_begin, close - pname_begin)));
    const auto [value_end, next] = parameter_end(block, close + 1, body_end);
    std::string value(block.substr(close + 1, value_end - close - 1));
    // The format puts the value on lines of its own: one newline each side is the format's, not the value's.
    if (value.starts_with('\n')) value.erase(0, 1);
    if (value.ends_with('\n')) value.pop_back();
    if (!name.empty()) call.arguments[name] = convert(call.name, name, std::move(value));
    at = next;
  }
  return call;
}

nlohmann::ordered_json tool_call_parser::convert(const std::string& function, const std::string& parameter,
                                                 std::string value) const {
  const auto tool = by_name_.find(function);
  if (tool == by_name_.end()) return value;
  const json& params = tools_[tool->second].parameters;
  if (!params.is_object()) return value;
  const auto props = params.find("properties");
  if (props == params.end() || !props->is_object()) return value;
  const auto schema = props->find(parameter);
  if (schema == props->end()) return value;
  std::vector<std::string> types;
  collect_types(*schema, types);
  // The first listed type that reads the text wins; "string" reads anything.
  for (const std::string& type : types) {
    if (type == "string") return value;
    if (std::optional<json> v = as_type(type, value)) return std::move(*v);
  }
  return value;
}

}  // namespace qcoder::service
