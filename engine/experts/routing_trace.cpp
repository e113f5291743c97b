// Routing traces: storage, the JSON Lines reader and writer, and the synthetic router (see routing_trace.h).
// Thread-safe: no shared state; a trace is only written by the code that builds it.
#include "engine/experts/routing_trace.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <istream>
#include <limits>
#include <ostream>
#include <random>

#include <nlohmann/json.hpp>

namespace qcoder::engine {
namespace {

using json = nlohmann::json;

constexpr std::string_view format_name = "qcoder-routing-trace";
constexpr int format_version = 1;
constexpr std::int32_t max_dimension = 1 << 20;  // layers, experts: far above any real model, keeps sizes sane

result<std::int64_t> get_int(const json& object, const char* key, std::string_view where) {
  const auto it = object.find(key);
  if (it == object.end()) return fail(errc::parse_error, "{}: missing \"{}\"", where, key);
  if (!it->is_number_integer()) return fail(errc::parse_error, "{}: \"{}\" must be an integer", where, key);
  return it->get<std::int64_t>();
}

// Parses a list of expert-id lists ("layers" or "predicted") into `lists`.
result<void> get_id_lists(const json& value, const char* key, std::int32_t layers, std::string_view where,
                          std::vector<std::vector<std::int32_t>>& lists) {
  if (!value.is_array()) return fail(errc::parse_error, "{}: \"{}\" must be an array of arrays", where, key);
  if (value.size() != static_cast<std::size_t>(layers)) {
    return fail(errc::corrupt_data, "{}: \"{}\" has {} layers, the header says {}", where, key, value.size(), layers);
  }
  for (std::size_t l = 0; l < value.size(); ++l) {
    const json& list = value[l];
    if (!list.is_array()) return fail(errc::parse_error, "{}: {}[{}] must be an array of expert ids", where, key, l);
    std::vector<std::int32_t>& ids = lists[l];
    ids.clear();
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_number_integer()) {
        return fail(errc::parse_error, "{}: {}[{}][{}] must be an integer expert id", where, key, l, i);
      }
      const std::int64_t id = list[i].get<std::int64_t>();
      if (id < 0 || id > std::numeric_limits<std::int32_t>::max()) {
        return fail(errc::corrupt_data, "{}: {}[{}][{}] = {} is not an expert id", where, key, l, i, id);
      }
      ids.push_back(static_cast<std::int32_t>(id));
    }
  }
  return ok();
}

// Uniform double in [0, 1) from 53 random bits: the same stream on every platform (std distributions are not).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::int32_t uniform_index(std::mt19937_64& rng, std::size_t n) {
  return static_cast<std::int32_t>(uniform01(rng) * static_cast<double>(n));
}

// Draws an expert from a layer's popularity: `cdf` is cumulative over experts, ending at 1.
std::int32_t draw(std::mt19937_64& rng, std::span<const double> cdf) {
  const double u = uniform01(rng);
  const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
  return static_cast<std::int32_t>(std::min<std::ptrdiff_t>(it - cdf.begin(), static_cast<std::ptrdiff_t>(cdf.size()) - 1));
}

// Draws by popularity an expert whose `blocked` byte is 0. After a few rejections (a steep skew with the
// popular experts all blocked) it falls back to a uniform pick among the free ones, so it always ends.
std::int32_t draw_free(std::mt19937_64& rng, std::span<const double> cdf, std::span<const std::uint8_t> blocked) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::int32_t e = draw(rng, cdf);
    if (!blocked[static_cast<std::size_t>(e)]) return e;
  }
  std::size_t free = 0;
  for (std::uint8_t b : blocked) free += b ? 0 : 1;
  std::size_t pick = static_cast<std::size_t>(uniform_index(rng, free));
  for (std::size_t e = 0; e < blocked.size(); ++e) {
    if (!blocked[e] && pick-- == 0) return static_cast<std::int32_t>(e);
  }
  return -1;  // unreachable while fewer than all experts are blocked
}

}  // namespace

routing_trace::routing_trace(std::int32_t layers, std::int32_t experts, std::int32_t top_k)
    : layers_(layers), experts_(experts), top_k_(top_k), seen_(static_cast<std::size_t>(std::max(experts, 0)), 0) {}

std::span<const std::int32_t> routing_trace::chosen(std::size_t token_index, std::int32_t layer) const {
  const std::size_t step = token_index * static_cast<std::size_t>(layers_) + static_cast<std::size_t>(layer);
  return std::span<const std::int32_t>(chosen_).subspan(chosen_offsets_[step], chosen_offsets_[step + 1] - chosen_offsets_[step]);
}

std::span<const std::int32_t> routing_trace::predicted(std::size_t token_index, std::int32_t layer) const {
  if (predicted_.empty()) return {};
  const std::size_t step = token_index * static_cast<std::size_t>(layers_) + static_cast<std::size_t>(layer);
  return std::span<const std::int32_t>(predicted_)
      .subspan(predicted_offsets_[step], predicted_offsets_[step + 1] - predicted_offsets_[step]);
}

bool routing_trace::complete() const {
  return chosen_offsets_.size() == token_ids_.size() * static_cast<std::size_t>(layers_) + 1;
}

result<void> routing_trace::begin_token(std::uint64_t token_id) {
  if (layers_ <= 0 || experts_ <= 0 || top_k_ <= 0) {
    return fail(errc::invalid_argument, "routing trace: layers, experts and top_k must be positive");
  }
  if (!complete()) return fail(errc::internal, "routing trace: token {} started before the last one got every layer", token_id);
  if (!token_ids_.empty() && token_id <= token_ids_.back()) {
    return fail(errc::corrupt_data, "token {} does not come after token {}", token_id, token_ids_.back());
  }
  token_ids_.push_back(token_id);
  return ok();
}

result<void> routing_trace::check_ids(std::span<const std::int32_t> ids, const char* what) const {
  if (ids.size() > static_cast<std::size_t>(experts_)) {
    return fail(errc::corrupt_data, "{} lists {} experts, more than the {} there are", what, ids.size(), experts_);
  }
  for (std::int32_t e : ids) {
    if (e < 0 || e >= experts_) return fail(errc::corrupt_data, "{}: expert {} is out of range [0, {})", what, e, experts_);
  }
  return ok();
}

result<void> routing_trace::add_layer(std::span<const std::int32_t> chosen, std::span<const std::int32_t> predicted) {
  if (token_ids_.empty() || complete()) return fail(errc::internal, "routing trace: add_layer without begin_token");
  QCODER_CHECK(check_ids(chosen, "chosen"));
  QCODER_CHECK(check_ids(predicted, "predicted"));
  for (std::span<const std::int32_t> ids : {chosen, predicted}) {
    bool duplicate = false;
    std::int32_t which = 0;
    for (std::int32_t e : ids) {
      if (seen_[static_cast<std::size_t>(e)]) {
        duplicate = true;
        which = e;
      }
      seen_[static_cast<std::size_t>(e)] = 1;
    }
    for (std::int32_t e : ids) seen_[static_cast<std::size_t>(e)] = 0;
    if (duplicate) return fail(errc::corrupt_data, "expert {} is listed twice in one layer", which);
  }
  chosen_.insert(chosen_.end(), chosen.begin(), chosen.end());
  chosen_offsets_.push_back(static_cast<std::uint32_t>(chosen_.size()));
  predicted_.insert(predicted_.end(), predicted.begin(), predicted.end());
  predicted_offsets_.push_back(static_cast<std::uint32_t>(predicted_.size()));
  if (chosen_.size() > std::numeric_limits<std::uint32_t>::max() / 2) {
    return fail(errc::unsupported, "routing trace: more than 2^31 expert choices; split the trace");
  }
  return ok();
}

result<routing_trace> read_routing_trace(std::istream& in, std::string_view source_name) {
  std::string line;
  std::size_t line_number = 0;
  auto next_line = [&]() -> bool {
    while (std::getline(in, line)) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
    }
    return false;
  };
  if (!next_line()) return fail(errc::corrupt_data, "{}: empty routing trace (no header line)", source_name);

  std::string where = fmt::format("{} line {}", source_name, line_number);
  const json header = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return fail(errc::parse_error, "{}: the header is not a JSON object", where);
  const auto format = header.find("format");
  if (format == header.end() || !format->is_string() || format->get<std::string>() != format_name) {
    return fail(errc::parse_error, "{}: not a routing trace (the header's \"format\" must be \"{}\")", where, format_name);
  }
  QCODER_TRY(const std::int64_t version, get_int(header, "version", where));
  if (version != format_version) {
    return fail(errc::unsupported, "{}: routing trace version {} (this build reads version {})", where, version, format_version);
  }
  QCODER_TRY(const std::int64_t layers, get_int(header, "layers", where));
  QCODER_TRY(const std::int64_t experts, get_int(header, "experts", where));
  QCODER_TRY(const std::int64_t top_k, get_int(header, "top_k", where));
  if (layers <= 0 || layers > max_dimension || experts <= 0 || experts > max_dimension || top_k <= 0 || top_k > experts) {
    return fail(errc::corrupt_data, "{}: layers ({}) and experts ({}) must be positive and top_k ({}) in [1, experts]",
                where, layers, experts, top_k);
  }
  routing_trace trace(static_cast<std::int32_t>(layers), static_cast<std::int32_t>(experts), static_cast<std::int32_t>(top_k));
  std::vector<std::vector<std::int32_t>> chosen(static_cast<std::size_t>(layers)), predicted(static_cast<std::size_t>(layers));
  while (next_line()) {
    where = fmt::format("{} line {}", source_name, line_number);
    const json token = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (token.is_discarded()) return fail(errc::parse_error, "{}: not valid JSON", where);
    if (!token.is_object()) return fail(errc::parse_error, "{}: a token must be a JSON object", where);
    QCODER_TRY(const std::int64_t id, get_int(token, "token", where));
    if (id < 0) return fail(errc::corrupt_data, "{}: \"token\" must not be negative", where);
    const auto layers_it = token.find("layers");
    if (layers_it == token.end()) return fail(errc::parse_error, "{}: missing \"layers\"", where);
    QCODER_CHECK(get_id_lists(*layers_it, "layers", trace.layers(), where, chosen));
    const auto predicted_it = token.find("predicted");
    const bool has_predicted = predicted_it != token.end() && !predicted_it->is_null();
    if (has_predicted) QCODER_CHECK(get_id_lists(*predicted_it, "predicted", trace.layers(), where, predicted));
    if (auto begun = trace.begin_token(static_cast<std::uint64_t>(id)); !begun) {
      return fail(begun.err().code, "{}: {}", where, begun.err().message);
    }
    for (std::size_t l = 0; l < chosen.size(); ++l) {
      const std::span<const std::int32_t> p = has_predicted ? std::span<const std::int32_t>(predicted[l]) : std::span<const std::int32_t>();
      if (auto added = trace.add_layer(chosen[l], p); !added) {
        return fail(added.err().code, "{}: layer {}: {}", where, l, added.err().message);
      }
    }
  }
  if (in.bad()) return fail(errc::io_error, "{}: read error after line {}", source_name, line_number);
  return trace;
}

result<routing_trace> read_routing_trace_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(errc::not_found, "cannot open routing trace {}", path);
  return read_routing_trace(in, path);
}

result<void> write_routing_trace(const routing_trace& trace, std::ostream& out) {
  out << fmt::format(R"({{"format": "{}", "version": {}, "layers": {}, "experts": {}, "top_k": {}}})", format_name,
                     format_version, trace.layers(), trace.experts(), trace.top_k())
      << '\n';
  std::string line;
  auto append_lists = [&](auto&& get) {
    line += '[';
    for (std::int32_t l = 0; l < trace.layers(); ++l) {
      if (l) line += ", ";
      line += '[';
      const std::span<const std::int32_t> ids = get(l);
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) line += ',';
        line += std::to_string(ids[i]);
      }
      line += ']';
    }
    line += ']';
  };
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    line = fmt::format(R"({{"token": {}, "layers": )", trace.token_id(t));
    append_lists([&](std::int32_t l) { return trace.chosen(t, l); });
    if (trace.has_predictions()) {
      line += R"(, "predicted": )";
      append_lists([&](std::int32_t l) { return trace.predicted(t, l); });
    }
    line += "}\n";
    out << line;
  }
  out.flush();
  if (!out) return fail(errc::io_error, "writing the routing trace failed");
  return ok();
}

result<void> write_routing_trace_file(const routing_trace& trace, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return fail(errc::io_error, "cannot create {}", path);
  if (auto written = write_routing_trace(trace, out); !written) return fail(errc::io_error, "{}: {}", path, written.err().message);
  return ok();
}

result<routing_trace> make_synthetic_trace(const synthetic_trace_options& o) {
  if (o.layers <= 0 || o.layers > max_dimension || o.experts <= 0 || o.experts > max_dimension || o.tokens < 0 ||
      o.top_k <= 0 || 2 * o.top_k > o.experts) {
    return fail(errc::invalid_argument,
                "synthetic trace: layers ({}), experts ({}) and top_k ({}) must be positive with 2·top_k <= experts, "
                "tokens ({}) not negative", o.layers, o.experts, o.top_k, o.tokens);
  }
  if (o.window < 1 || o.window > 4096) return fail(errc::invalid_argument, "synthetic trace: window must be in [1, 4096]");
  if (!(o.skew >= 0 && o.skew <= 4) || !(o.locality >= 0 && o.locality <= 1) ||
      !(o.prediction_accuracy >= 0 && o.prediction_accuracy <= 1)) {
    return fail(errc::invalid_argument, "synthetic trace: skew must be in [0, 4], locality and prediction accuracy in [0, 1]");
  }
  const auto n = static_cast<std::size_t>(o.experts);
  const auto k = static_cast<std::size_t>(o.top_k);
  const auto layers = static_cast<std::size_t>(o.layers);
  std::mt19937_64 rng(o.seed);

  // Per layer: popularity 1/(rank+1)^skew, ranks assigned by a per-layer shuffle, as a CDF over expert ids.
  std::vector<double> cdf(layers * n);
  std::vector<std::int32_t> rank(n);
  for (std::size_t l = 0; l < layers; ++l) {
    for (std::size_t e = 0; e < n; ++e) rank[e] = static_cast<std::int32_t>(e);
    for (std::size_t i = n - 1; i > 0; --i) std::swap(rank[i], rank[static_cast<std::size_t>(uniform_index(rng, i + 1))]);
    double total = 0;
    for (std::size_t e = 0; e < n; ++e) {
      total += std::pow(static_cast<double>(rank[e]) + 1.0, -o.skew);
      cdf[l * n + e] = total;
    }
    for (std::size_t e = 0; e < n; ++e) cdf[l * n + e] /= total;
  }

  routing_trace trace(o.layers, o.experts, o.top_k);
  const auto window = static_cast<std::size_t>(o.window);
  std::vector<std::int32_t> history(window * layers * k), predicted(k);  // ring of the last `window` tokens
  std::vector<std::uint8_t> taken(n, 0);
  for (std::int32_t t = 0; t < o.tokens; ++t) {
    QCODER_CHECK(trace.begin_token(static_cast<std::uint64_t>(t)));
    const auto ut = static_cast<std::size_t>(t);
    const std::size_t known = std::min(ut, window);  // earlier tokens in the ring
    for (std::size_t l = 0; l < layers; ++l) {
      const std::span<const double> layer_cdf(cdf.data() + l * n, n);
      const std::span<std::int32_t> chosen(history.data() + ((ut % window) * layers + l) * k, k);
      for (std::size_t i = 0; i < k; ++i) {
        std::int32_t e = -1;
        if (known > 0 && uniform01(rng) < o.locality) {
          // Repeat an expert that one of the last `window` tokens chose in this layer (a few tries to find
          // one this token has not taken yet).
          for (int attempt = 0; attempt < 8 && e < 0; ++attempt) {
            const std::size_t back = 1 + static_cast<std::size_t>(uniform_index(rng, known));
            const std::size_t source = ((ut - back) % window * layers + l) * k;
            const std::int32_t candidate = history[source + static_cast<std::size_t>(uniform_index(rng, k))];
            if (!taken[static_cast<std::size_t>(candidate)]) e = candidate;
          }
        }
        if (e < 0) e = draw_free(rng, layer_cdf, taken);
        taken[static_cast<std::size_t>(e)] = 1;
        chosen[i] = e;
      }
      for (std::int32_t e : chosen) taken[static_cast<std::size_t>(e)] = 0;

      // The prediction made before layer l ran (from layer l - 1's hidden state): none for layer 0.
      std::span<const std::int32_t> guess;
      if (l > 0) {
        for (std::int32_t e : chosen) taken[static_cast<std::size_t>(e)] = 1;  // wrong guesses are other experts
        std::size_t kept = 0;
        for (std::int32_t e : chosen) {
          if (uniform01(rng) < o.prediction_accuracy) predicted[kept++] = e;
        }
        for (std::size_t i = kept; i < k; ++i) {
          const std::int32_t e = draw_free(rng, layer_cdf, taken);
          taken[static_cast<std::size_t>(e)] = 1;
          predicted[i] = e;
        }
        for (std::int32_t e : predicted) taken[static_cast<std::size_t>(e)] = 0;
        for (std::int32_t e : chosen) taken[static_cast<std::size_t>(e)] = 0;
        guess = predicted;
      }
      QCODER_CHECK(trace.add_layer(chosen, guess));
    }
  }
  return trace;
}

}  // namespace qcoder::engine
