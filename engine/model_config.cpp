// Parsing of config.json / generation_config.json for qwen3_next, with errors that name the file and key.
//
// Structural sizes are required: a checkpoint whose config lacks one is broken, and guessing the Hugging
// Face default would only move the failure to a confusing shape error later. Keys that have a documented
// neutral default (attention_bias, norm_topk_prob, mlp_only_layers, ...) are optional.
// Pure functions; thread-safe.
#include "engine/model_config.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Reads keys of one JSON object, naming the file in every error.
class reader {
 public:
  reader(const json& object, std::string source, std::string prefix = {})
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  const json* find(std::string_view key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  std::string where(std::string_view key) const { return fmt::format("{}: key \"{}{}\"", source_, prefix_, key); }

  error missing(std::string_view key) const { return fail(errc::parse_error, "{}: missing required key \"{}{}\"", source_, prefix_, key); }
  error mistyped(std::string_view key, std::string_view expected, const json& got) const {
    return fail(errc::parse_error, "{} must be {}, got {} {}", where(key), expected, got.type_name(), got.dump());
  }

  result<std::int64_t> integer(std::string_view key) const {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    return integer_value(key, *v);
  }
  result<std::int64_t> integer(std::string_view key, std::int64_t fallback) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return fallback;
    return integer_value(key, *v);
  }
  result<std::int64_t> positive(std::string_view key) const {
    QCODER_TRY(const std::int64_t v, integer(key));
    if (v <= 0) return fail(errc::parse_error, "{} must be positive, got {}", where(key), v);
    return v;
  }
  result<double> number(std::string_view key) const {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_number()) return mistyped(key, "a number", *v);
    return v->get<double>();
  }
  result<bool> boolean(std::string_view key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (!v->is_boolean()) return mistyped(key, "true or false", *v);
    return v->get<bool>();
  }
  result<std::string> string(std::string_view key) const {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_string()) return mistyped(key, "a string", *v);
    return v->get<std::string>();
  }
  // An integer or a list of integers (token ids); nullopt when absent or null.
  result<std::optional<std::vector<std::int64_t>>> ids(std::string_view key) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return std::optional<std::vector<std::int64_t>>{};
    std::vector<std::int64_t> out;
    if (v->is_array()) {
      for (const json& item : *v) {
        QCODER_TRY(const std::int64_t id, integer_value(key, item));
        out.push_back(id);
      }
    } else {
      QCODER_TRY(const std::int64_t id, integer_value(key, *v));
      out.push_back(id);
    }
    return std::optional<std::vector<std::int64_t>>(std::move(out));
  }

 private:
  result<std::int64_t> integer_value(std::string_view key, const json& v) const {
    if (v.is_number_integer()) return v.get<std::int64_t>();
    // Some exporters write 4.0 for 4; accept whole floats.
    if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<std::int64_t>(v.get<double>()))) {
      return static_cast<std::int64_t>(v.get<double>());
    }
    return mistyped(key, "an integer", v);
  }

  const json& object_;
  std::string source_;
  std::string prefix_;
};

result<json> parse_object(std::string_view text, const std::string& source) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return fail(errc::parse_error, "{}: not valid JSON", source);
  if (!root.is_object()) return fail(errc::parse_error, "{}: expected a JSON object, got {}", source, root.type_name());
  return root;
}

result<quantization> parse_quantization(const json& q, const std::string& source) {
  const reader r(q, source, "quantization_config.");
  quantization out;
  QCODER_TRY(const std::string method, r.string("quant_method"));
  if (method != "fp8") return fail(errc::unsupported, "{}: quantization_config.quant_method \"{}\" is not supported (only fp8)", source, method);
  out.fp8 = true;
  if (const json* fmt = r.find("fmt"); fmt != nullptr && !fmt->is_null()) {
    if (!fmt->is_string() || fmt->get<std::string>() != "e4m3") {
      return fail(errc::unsupported, "{}: quantization_config.fmt {} is not supported (only \"e4m3\")", source, fmt->dump());
    }
  }
  if (const json* scheme = r.find("activation_scheme"); scheme != nullptr && !scheme->is_null()) {
    if (!scheme->is_string() || scheme->get<std::string>() != "dynamic") {
      return fail(errc::unsupported, "{}: quantization_config.activation_scheme {} is not supported (only \"dynamic\")", source,
                  scheme->dump());
    }
  }
  if (const json* block = r.find("weight_block_size"); block != nullptr && !block->is_null()) {
    if (!block->is_array() || block->size() != 2 || !(*block)[0].is_number_integer() || !(*block)[1].is_number_integer() ||
        (*block)[0].get<std::int64_t>() <= 0 || (*block)[1].get<std::int64_t>() <= 0 || (*block)[0].get<std::int64_t>() > 1 << 20 ||
        (*block)[1].get<std::int64_t>() > 1 << 20) {
      return r.mistyped("weight_block_size", "two positive integers", *block);
    }
    out.block = {static_cast<std::int32_t>((*block)[0].get<std::int64_t>()), static_cast<std::int32_t>((*block)[1].get<std::int64_t>())};
  }
  if (const json* modules = r.find("modules_to_not_convert"); modules != nullptr && !modules->is_null()) {
    if (!modules->is_array()) return r.mistyped("modules_to_not_convert", "a list of module names", *modules);
    for (const json& m : *modules) {
      if (!m.is_string()) return r.mistyped("modules_to_not_convert", "a list of module names", *modules);
      out.modules_to_not_convert.push_back(m.get<std::string>());
    }
  }
  return out;
}

result<std::vector<layer_kind>> parse_layer_types(const reader& r, std::int64_t layers, const std::string& source) {
  std::vector<layer_kind> out;
  if (const json* types = r.find("layer_types"); types != nullptr && !types->is_null()) {
    if (!types->is_array()) return r.mistyped("layer_types", "a list of \"linear_attention\" / \"full_attention\"", *types);
    for (std::size_t i = 0; i < types->size(); ++i) {
      const json& t = (*types)[i];
      if (t == "linear_attention") {
        out.push_back(layer_kind::linear_attention);
      } else if (t == "full_attention") {
        out.push_back(layer_kind::full_attention);
      } else {
        return fail(errc::parse_error, "{}: layer_types[{}] is {}, expected \"linear_attention\" or \"full_attention\"", source, i, t.dump());
      }
    }
    if (static_cast<std::int64_t>(out.size()) != layers) {
      return fail(errc::parse_error, "{}: layer_types has {} entries but num_hidden_layers is {}", source, out.size(), layers);
    }
    return out;
  }
  if (r.find("full_attention_interval") == nullptr) {
    return fail(errc::parse_error, "{}: missing required key \"layer_types\" (or \"full_attention_interval\")", source);
  }
  QCODER_TRY(const std::int64_t interval, r.positive("full_attention_interval"));
  for (std::int64_t i = 0; i < layers; ++i) {
    out.push_back((i + 1) % interval == 0 ? layer_kind::full_attention : layer_kind::linear_attention);
  }
  return out;
}

result<void> validate(const model_config& c, const std::string& source) {
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return fail(errc::parse_error, "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.num_attention_heads,
                c.num_key_value_heads);
  }
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0) {
    return fail(errc::parse_error, "{}: linear_num_value_heads {} is not a multiple of linear_num_key_heads {}", source,
                c.linear_num_value_heads, c.linear_num_key_heads);
  }
  if (c.num_experts_per_tok > c.num_experts) {
    return fail(errc::parse_error, "{}: num_experts_per_tok {} is more than num_experts {}", source, c.num_experts_per_tok, c.num_experts);
  }
  if (!(c.partial_rotary_factor > 0.0 && c.partial_rotary_factor <= 1.0) || c.rotary_dim() % 2 != 0) {
    return fail(errc::parse_error, "{}: partial_rotary_factor {} gives rotary dims {} of head_dim {} (must be even and in (0, 1])", source,
                c.partial_rotary_factor, c.rotary_dim(), c.head_dim);
  }
  if (!(c.rms_norm_eps > 0.0) || !(c.rope_theta > 0.0)) {
    return fail(errc::parse_error, "{}: rms_norm_eps ({}) and rope_theta ({}) must be positive", source, c.rms_norm_eps, c.rope_theta);
  }
  for (std::int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) return fail(errc::parse_error, "{}: eos token id {} is outside the vocabulary ({})", source, id, c.vocab_size);
  }
  return ok();
}

result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::not_found, "{}: cannot read", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

result<model_config> parse_config(std::string_view config_json, std::string_view generation_json, const std::string& source,
                                  const std::string& generation_source) {
  QCODER_TRY(const json root, parse_object(config_json, source));
  const reader r(root, source);
  model_config c;
  QCODER_TRY(c.model_type, r.string("model_type"));
  if (c.model_type != "qwen3_next") {
    return fail(errc::unsupported, "{}: model_type \"{}\" is not supported (qcoder runs qwen3_next, e.g. Qwen3-Coder-Next)", source, c.model_type);
  }
  QCODER_TRY(c.vocab_size, r.positive("vocab_size"));
  QCODER_TRY(c.hidden_size, r.positive("hidden_size"));
  QCODER_TRY(c.num_hidden_layers, r.positive("num_hidden_layers"));
  QCODER_TRY(c.intermediate_size, r.integer("intermediate_size", 0));
  QCODER_TRY(c.rms_norm_eps, r.number("rms_norm_eps"));
  QCODER_TRY(c.tie_word_embeddings, r.boolean("tie_word_embeddings", false));
  QCODER_TRY(c.max_position_embeddings, r.integer("max_position_embeddings", 0));

  QCODER_TRY(c.num_attention_heads, r.positive("num_attention_heads"));
  QCODER_TRY(c.num_key_value_heads, r.positive("num_key_value_heads"));
  QCODER_TRY(c.head_dim, r.positive("head_dim"));
  QCODER_TRY(c.attention_bias, r.boolean("attention_bias", false));
  // Newer transformers move rope settings into `rope_parameters`; accept either place.
  const json* rope = r.find("rope_parameters");
  const reader rope_reader(rope != nullptr && rope->is_object() ? *rope : root, source, rope != nullptr && rope->is_object() ? "rope_parameters." : "");
  if (r.find("rope_theta") != nullptr || rope_reader.find("rope_theta") == nullptr) {
    QCODER_TRY(c.rope_theta, r.number("rope_theta"));
  } else {
    QCODER_TRY(c.rope_theta, rope_reader.number("rope_theta"));
  }
  if (r.find("partial_rotary_factor") != nullptr || rope_reader.find("partial_rotary_factor") == nullptr) {
    QCODER_TRY(c.partial_rotary_factor, r.number("partial_rotary_factor"));
  } else {
    QCODER_TRY(c.partial_rotary_factor, rope_reader.number("partial_rotary_factor"));
  }

  QCODER_TRY(c.linear_num_key_heads, r.positive("linear_num_key_heads"));
  QCODER_TRY(c.linear_num_value_heads, r.positive("linear_num_value_heads"));
  QCODER_TRY(c.linear_key_head_dim, r.positive("linear_key_head_dim"));
  QCODER_TRY(c.linear_value_head_dim, r.positive("linear_value_head_dim"));
  QCODER_TRY(c.linear_conv_kernel_dim, r.positive("linear_conv_kernel_dim"));

  QCODER_TRY(c.num_experts, r.positive("num_experts"));
  QCODER_TRY(c.num_experts_per_tok, r.positive("num_experts_per_tok"));
  QCODER_TRY(c.moe_intermediate_size, r.positive("moe_intermediate_size"));
  QCODER_TRY(c.shared_expert_intermediate_size, r.integer("shared_expert_intermediate_size"));
  QCODER_TRY(c.norm_topk_prob, r.boolean("norm_topk_prob", true));
  QCODER_TRY(c.decoder_sparse_step, r.integer("decoder_sparse_step", 1));
  if (c.decoder_sparse_step <= 0) return fail(errc::parse_error, "{} must be positive", r.where("decoder_sparse_step"));
  if (const json* only = r.find("mlp_only_layers"); only != nullptr && !only->is_null()) {
    if (!only->is_array()) return r.mistyped("mlp_only_layers", "a list of layer indices", *only);
    for (const json& l : *only) {
      if (!l.is_number_integer()) return r.mistyped("mlp_only_layers", "a list of layer indices", *only);
      c.mlp_only_layers.push_back(l.get<std::int64_t>());
    }
  }
  QCODER_TRY(c.layer_types, parse_layer_types(r, c.num_hidden_layers, source));

  if (const json* q = r.find("quantization_config"); q != nullptr && !q->is_null()) {
    if (!q->is_object()) return r.mistyped("quantization_config", "an object", *q);
    QCODER_TRY(c.quant, parse_quantization(*q, source));
  }

  QCODER_TRY(const auto config_bos, r.ids("bos_token_id"));
  QCODER_TRY(const auto config_eos, r.ids("eos_token_id"));
  std::optional<std::vector<std::int64_t>> generation_bos;
  std::optional<std::vector<std::int64_t>> generation_eos;
  if (!generation_json.empty()) {
    QCODER_TRY(const json generation, parse_object(generation_json, generation_source));
    const reader g(generation, generation_source);
    QCODER_TRY(generation_bos, g.ids("bos_token_id"));
    QCODER_TRY(generation_eos, g.ids("eos_token_id"));
  }
  if (generation_eos && !generation_eos->empty()) {
    c.eos_token_ids = *generation_eos;
  } else if (config_eos) {
    c.eos_token_ids = *config_eos;
  }
  if (config_bos && !config_bos->empty()) {
    c.bos_token_id = config_bos->front();
  } else if (generation_bos && !generation_bos->empty()) {
    c.bos_token_id = generation_bos->front();
  }
  QCODER_CHECK(validate(c, source));
  return c;
}

}  // namespace

bool model_config::is_moe_layer(std::int64_t layer) const {
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

result<model_config> model_config::parse(std::string_view config_json, std::string_view generation_json, std::string_view source) {
  const fs::path config_path(source);
  const std::string generation_source =
      config_path.has_parent_path() ? (config_path.parent_path() / "generation_config.json").string() : "generation_config.json";
  try {
    return parse_config(config_json, generation_json, std::string(source), generation_source);
  } catch (const std::exception& e) {
    return fail(errc::internal, "{}: {}", source, e.what());
  }
}

result<model_config> model_config::load(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
  const fs::path generation_path = dir / "generation_config.json";
  QCODER_TRY(const std::string config_text, read_file(config_path));
  std::string generation_text;
  std::error_code ec;
  if (fs::exists(generation_path, ec)) {
    QCODER_TRY(generation_text, read_file(generation_path));
  }
  try {
    return parse_config(config_text, generation_text, config_path.string(), generation_path.string());
  } catch (const std::exception& e) {
    return fail(errc::internal, "{}: {}", config_path.string(), e.what());
  }
}

}  // namespace qcoder::engine
