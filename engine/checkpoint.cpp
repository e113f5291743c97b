// Safetensors parsing and validation, shard index resolution, and the kernel views of checkpoint.h.
//
// Layout of a safetensors file: u64 little-endian N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
// then the data area; offsets are relative to the start of the data area (byte 8 + N).
// Everything here runs once, at open(); afterwards the checkpoint is read-only.
#include "engine/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/mapped_file.h"

namespace qcoder::engine {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view index_name = "model.safetensors.index.json";
constexpr std::string_view single_name = "model.safetensors";
// The safetensors reference implementation refuses headers above 100 MB; so do we (the real 80B index has
// ~75k tensors and a header of a few MB per shard).
constexpr std::uint64_t max_header_bytes = 100'000'000;

std::string shape_text(std::span<const std::int64_t> shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string json_type(const json& j) { return j.type_name(); }

// Reads a non-negative integer out of a JSON value (the header stores shapes and offsets as integers).
bool read_u64(const json& j, std::uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<std::uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (v < 0) return false;
    out = static_cast<std::uint64_t>(v);
    return true;
  }
  return false;
}

// product(shape) * element size, or nullopt on overflow.
std::optional<std::uint64_t> byte_size(std::span<const std::int64_t> shape, dtype type) {
  std::uint64_t n = dtype_size(type);
  for (std::int64_t d : shape) {
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<std::uint64_t>::max() / u) return std::nullopt;
    n *= u;
  }
  return n;
}

struct parsed_entry {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// Parses and validates one header entry; `file` is for the messages.
result<parsed_entry> parse_entry(const std::string& file, const std::string& name, const json& value) {
  parsed_entry e;
  e.name = name;
  if (!value.is_object()) return fail(errc::parse_error, "{}: tensor '{}': header entry is a {}, expected an object", file, name, json_type(value));
  const auto dtype_it = value.find("dtype");
  const auto shape_it = value.find("shape");
  const auto offsets_it = value.find("data_offsets");
  if (dtype_it == value.end() || !dtype_it->is_string()) return fail(errc::parse_error, "{}: tensor '{}': missing or non-string \"dtype\"", file, name);
  if (shape_it == value.end() || !shape_it->is_array()) return fail(errc::parse_error, "{}: tensor '{}': missing or non-array \"shape\"", file, name);
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return fail(errc::parse_error, "{}: tensor '{}': \"data_offsets\" must be an array [begin, end]", file, name);
  }
  const std::string& dtype_text = dtype_it->get_ref<const std::string&>();
  const std::optional<dtype> type = dtype_from_name(dtype_text);
  if (!type) {
    return fail(errc::unsupported, "{}: tensor '{}': unknown dtype \"{}\" (qcoder reads F32, F16, BF16 and F8_E4M3)", file, name, dtype_text);
  }
  e.type = *type;
  for (const json& d : *shape_it) {
    std::uint64_t v = 0;
    if (!read_u64(d, v) || v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return fail(errc::parse_error, "{}: tensor '{}': shape {} holds a value that is not a non-negative integer", file, name, shape_it->dump());
    }
    e.shape.push_back(static_cast<std::int64_t>(v));
  }
  if (!read_u64((*offsets_it)[0], e.begin) || !read_u64((*offsets_it)[1], e.end) || e.end < e.begin) {
    return fail(errc::corrupt_data, "{}: tensor '{}': data_offsets {} are not 0 <= begin <= end", file, name, offsets_it->dump());
  }
  const std::optional<std::uint64_t> expected = byte_size(e.shape, e.type);
  if (!expected) return fail(errc::corrupt_data, "{}: tensor '{}': shape {} is too large", file, name, shape_text(e.shape));
  if (*expected != e.end - e.begin) {
    return fail(errc::corrupt_data, "{}: tensor '{}': data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", file,
                name, e.begin, e.end, e.end - e.begin, shape_text(e.shape), dtype_text, *expected);
  }
  return e;
}

// Parses the header of one mapped safetensors file into tensor_infos pointing into the mapping.
// Builds the header's JSON like json::parse and notes the first top-level key that repeats. (A parser
// callback could do the same, but nlohmann's callback parser rescans an object's members at each nested
// object's end, which is quadratic in the tensor count: seconds for a shard of the real model.)
class header_reader : public nlohmann::detail::json_sax_dom_parser<json> {
  using base = nlohmann::detail::json_sax_dom_parser<json>;

 public:
  explicit header_reader(json& root) : base(root, /*allow_exceptions=*/false) {}
  bool start_object(std::size_t elements) {
    ++depth_;
    return base::start_object(elements);
  }
  bool end_object() {
    --depth_;
    return base::end_object();
  }
  bool key(std::string& name) {
    if (depth_ == 1 && !keys_.insert(name).second && duplicate.empty()) duplicate = name;
    return base::key(name);
  }
  std::string duplicate;

 private:
  int depth_ = 0;
  std::unordered_set<std::string> keys_;
};

result<std::vector<tensor_info>> parse_safetensors(const mapped_file& mapping, const fs::path* path) {
  const std::string file = path->string();
  const std::span<const std::byte> bytes = mapping.bytes();
  if (bytes.size() < 8) {
    return fail(errc::corrupt_data, "{}: truncated: {} bytes, but a safetensors file starts with an 8-byte header length", file, bytes.size());
  }
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if constexpr (std::endian::native == std::endian::big) header_len = __builtin_bswap64(header_len);
  if (header_len > bytes.size() - 8) {
    return fail(errc::corrupt_data, "{}: header length {} runs past the end of the file ({} bytes): truncated or not a safetensors file",
                file, header_len, bytes.size());
  }
  if (header_len > max_header_bytes) return fail(errc::corrupt_data, "{}: header length {} is over the 100 MB limit", file, header_len);

  const char* header = reinterpret_cast<const char*>(bytes.data() + 8);
  // Duplicate keys would silently overwrite each other in the parsed object; catch them while parsing.
  json root;
  header_reader reader(root);
  const bool parsed = json::sax_parse(header, header + header_len, &reader, json::input_format_t::json, /*strict=*/true);
  if (!parsed || root.is_discarded()) return fail(errc::parse_error, "{}: the {}-byte header is not valid JSON", file, header_len);
  if (!root.is_object()) return fail(errc::parse_error, "{}: the header is a JSON {}, expected an object", file, json_type(root));
  if (!reader.duplicate.empty()) {
    return fail(errc::corrupt_data, "{}: tensor '{}' appears twice in the header", file, reader.duplicate);
  }

  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_size = bytes.size() - data_start;
  std::vector<parsed_entry> entries;
  entries.reserve(root.size());
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") continue;
    QCODER_TRY(parsed_entry e, parse_entry(file, name, value));
    if (e.end > data_size) {
      return fail(errc::corrupt_data, "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes): truncated file?",
                  file, name, e.begin, e.end, data_size);
    }
    entries.push_back(std::move(e));
  }

  // No two tensors may share bytes. Sorting by begin, each non-empty tensor must start at or after the end
  // of every non-empty tensor before it.
  std::vector<const parsed_entry*> by_offset;
  for (const parsed_entry& e : entries) {
    if (e.end > e.begin) by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const parsed_entry* a, const parsed_entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  const parsed_entry* furthest = nullptr;
  for (const parsed_entry* e : by_offset) {
    if (furthest != nullptr && e->begin < furthest->end) {
      return fail(errc::corrupt_data, "{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]", file, e->name, e->begin,
                  e->end, furthest->name, furthest->begin, furthest->end);
    }
    if (furthest == nullptr || e->end > furthest->end) furthest = e;
  }

  std::vector<tensor_info> out;
  out.reserve(entries.size());
  for (parsed_entry& e : entries) {
    tensor_info t;
    t.name = std::move(e.name);
    t.type = e.type;
    t.shape = std::move(e.shape);
    t.bytes = bytes.subspan(data_start + e.begin, e.end - e.begin);
    t.file_offset = data_start + e.begin;
    t.file = path;
    out.push_back(std::move(t));
  }
  return out;
}

result<std::string> read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::io_error, "{}: cannot read", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(errc::io_error, "{}: read error", path.string());
  return text.str();
}

// The shard file names of an index, by tensor; checks that every name is a plain relative path.
result<std::map<std::string, std::string>> parse_index(const fs::path& index_path) {
  const std::string file = index_path.string();
  QCODER_TRY(const std::string text, read_text_file(index_path));
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return fail(errc::parse_error, "{}: not valid JSON", file);
  if (!root.is_object()) return fail(errc::parse_error, "{}: expected a JSON object", file);
  const auto map_it = root.find("weight_map");
  if (map_it == root.end() || !map_it->is_object()) return fail(errc::parse_error, "{}: missing or non-object \"weight_map\"", file);
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) return fail(errc::parse_error, "{}: tensor '{}': weight_map value is a {}, expected a file name", file, name, json_type(shard));
    const std::string& shard_name = shard.get_ref<const std::string&>();
    const fs::path p(shard_name);
    const bool escapes = std::any_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
    if (shard_name.empty() || p.is_absolute() || escapes) {
      return fail(errc::corrupt_data, "{}: tensor '{}': shard '{}' is not a file inside the checkpoint folder", file, name, shard_name);
    }
    out.emplace(name, shard_name);
  }
  return out;
}

}  // namespace

std::int64_t tensor_info::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

checkpoint::checkpoint(checkpoint&&) noexcept = default;
checkpoint& checkpoint::operator=(checkpoint&&) noexcept = default;
checkpoint::~checkpoint() = default;

result<void> checkpoint::add_file(const fs::path& path) {
  files_.push_back(std::make_unique<fs::path>(path));
  const fs::path* owned = files_.back().get();
  QCODER_TRY(std::unique_ptr<mapped_file> mapping, mapped_file::open(path));
  QCODER_TRY(std::vector<tensor_info> infos, parse_safetensors(*mapping, owned));
  mappings_.push_back(std::move(mapping));
  for (tensor_info& t : infos) {
    const auto [it, inserted] = tensors_.try_emplace(t.name, std::move(t));
    if (!inserted) {
      return fail(errc::corrupt_data, "tensor '{}' appears in both {} and {}", it->first, it->second.file->string(), path.string());
    }
  }
  return ok();
}

result<checkpoint> checkpoint::open_file(const fs::path& file) {
  try {
    checkpoint c;
    c.dir_ = file.parent_path();
    c.source_ = file;
    QCODER_CHECK(c.add_file(file));
    spdlog::debug("checkpoint {}: {} tensors, {} bytes", file.string(), c.tensor_count(), c.total_bytes());
    return c;
  } catch (const std::exception& e) {
    return fail(errc::internal, "{}: {}", file.string(), e.what());
  }
}

result<checkpoint> checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fail(errc::not_found, "{}: no such checkpoint folder", dir.string());
  const fs::path index_path = dir / index_name;
  if (!fs::exists(index_path, ec)) {
    const fs::path single = dir / single_name;
    if (!fs::exists(single, ec)) return fail(errc::not_found, "{}: neither {} nor {} is there", dir.string(), single_name, index_name);
    QCODER_TRY(checkpoint c, open_file(single));
    c.dir_ = dir;
    return c;
  }
  try {
    QCODER_TRY(const auto weight_map, parse_index(index_path));
    checkpoint c;
    c.dir_ = dir;
    c.source_ = index_path;
    std::map<std::string, std::string> first_tensor;  // shard -> a tensor that names it (for messages)
    for (const auto& [name, shard] : weight_map) first_tensor.try_emplace(shard, name);
    for (const auto& [shard, name] : first_tensor) {
      const fs::path path = dir / shard;
      if (!fs::exists(path, ec)) {
        return fail(errc::not_found, "{}: tensor '{}' is mapped to shard '{}', which does not exist", index_path.string(), name, shard);
      }
      QCODER_CHECK(c.add_file(path));
    }
    for (const auto& [name, shard] : weight_map) {
      const tensor_info* t = c.find(name);
      if (t == nullptr) {
        return fail(errc::not_found, "{}: tensor '{}' is mapped to shard '{}', which has no such tensor", index_path.string(), name, shard);
      }
      if (*t->file != dir / shard) {
        return fail(errc::corrupt_data, "{}: tensor '{}' is mapped to shard '{}', but it is in {}", index_path.string(), name, shard,
                    t->file->string());
      }
    }
    if (c.tensor_count() != weight_map.size()) {
      spdlog::warn("{}: {} tensors in the shards are not in the index's weight_map", index_path.string(),
                   c.tensor_count() - weight_map.size());
    }
    spdlog::debug("checkpoint {}: {} tensors in {} shards, {} bytes", dir.string(), c.tensor_count(), c.files_.size(), c.total_bytes());
    return c;
  } catch (const std::exception& e) {
    return fail(errc::internal, "{}: {}", index_path.string(), e.what());
  }
}

const tensor_info* checkpoint::find(std::string_view name) const {
  const auto it = tensors_.find(std::string(name));
  return it == tensors_.end() ? nullptr : &it->second;
}

result<const tensor_info*> checkpoint::get(std::string_view name) const {
  if (const tensor_info* t = find(name)) return t;
  return fail(errc::not_found, "{}: tensor '{}' not found ({} tensors)", source_.string(), name, tensors_.size());
}

result<const tensor_info*> checkpoint::get(std::string_view name, std::span<const std::int64_t> shape) const {
  QCODER_TRY(const tensor_info* t, get(name));
  if (!std::equal(t->shape.begin(), t->shape.end(), shape.begin(), shape.end())) {
    return fail(errc::corrupt_data, "{}: tensor '{}' has shape {}, expected {}", t->file->string(), name, shape_text(t->shape),
                shape_text(shape));
  }
  return t;
}

result<weight_matrix> checkpoint::matrix(std::string_view name, std::int64_t rows, std::int64_t cols,
                                         std::array<std::int32_t, 2> block) const {
  const std::array<std::int64_t, 2> shape{rows, cols};
  QCODER_TRY(const tensor_info* t, get(name, shape));
  weight_matrix m;
  m.type = t->type;
  m.data = t->bytes.data();
  m.rows = rows;
  m.cols = cols;
  if (t->type != dtype::f8_e4m3) return m;

  if (block[0] <= 0 || block[1] <= 0) {
    return fail(errc::invalid_argument, "{}: tensor '{}': block size [{}, {}] must be positive", t->file->string(), name, block[0], block[1]);
  }
  std::string scale_name(name);
  scale_name += "_scale_inv";  // `x.weight` -> `x.weight_scale_inv`
  const tensor_info* s = find(scale_name);
  if (s == nullptr) {
    return fail(errc::not_found, "{}: tensor '{}' is F8_E4M3 but its scale '{}' is missing", t->file->string(), name, scale_name);
  }
  if (s->type == dtype::f8_e4m3) {
    return fail(errc::unsupported, "{}: tensor '{}': scale dtype F8_E4M3 is not supported (BF16, F16 or F32)", s->file->string(), scale_name);
  }
  const std::array<std::int64_t, 2> scale_shape{(rows + block[0] - 1) / block[0], (cols + block[1] - 1) / block[1]};
  QCODER_TRY(s, get(scale_name, scale_shape));
  m.scale_type = s->type;
  m.scales = s->bytes.data();
  m.block_rows = block[0];
  m.block_cols = block[1];
  return m;
}

result<weight_vector> checkpoint::vector(std::string_view name, std::int64_t size) const {
  const std::array<std::int64_t, 1> shape{size};
  QCODER_TRY(const tensor_info* t, get(name, shape));
  weight_vector v;
  v.type = t->type;
  v.data = t->bytes.data();
  v.size = size;
  return v;
}

std::vector<std::string_view> checkpoint::names() const {
  std::vector<std::string_view> out;
  out.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

std::uint64_t checkpoint::total_bytes() const {
  std::uint64_t n = 0;
  for (const auto& [name, info] : tensors_) n += info.bytes.size();
  return n;
}

void checkpoint::release_pages() const {
  for (const auto& mapping : mappings_) mapping->release_pages();
}

result<void> checkpoint::lock_in_memory() const {
  for (std::size_t i = 0; i < mappings_.size(); ++i) {
    if (result<void> locked = mappings_[i]->lock(); !locked) {
      for (std::size_t j = 0; j < i; ++j) mappings_[j]->unlock();
      return locked;
    }
  }
  return ok();
}

}  // namespace qcoder::engine
