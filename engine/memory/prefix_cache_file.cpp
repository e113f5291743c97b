// Saving the prefix cache to disk and loading it back, and the model identity that tags the file.
//
// File layout (little-endian), checksummed as a whole:
//   "QCPREFIX", u32 version, u32 0, u64 identity length, identity bytes,
//   u64 attention layers, u64 kv_stride, u64 snapshot floats, u64 vocab, u64 node count,
//   per node in pre-order (the root is implicit): u64 parent (0 = root, else 1-based node number),
//     u64 last used, u64 token count, tokens (i32), per attention layer its K rows then its V rows (f32),
//     u8 has snapshot [+ floats], u8 has logits [+ floats],
//   u64 checksum of all bytes before it.
// Rows are stored per node, not per page, so a cache saved with one page size loads with another.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/memory/prefix_cache.h"
#include "engine/memory/prefix_cache_node.h"

namespace qcoder::engine {
namespace {

constexpr char magic[8] = {'Q', 'C', 'P', 'R', 'E', 'F', 'I', 'X'};
constexpr std::uint32_t version = 1;

// A fast 64-bit hash over a byte stream, independent of how the stream is split into calls. It detects
// corruption and distinguishes files; it is not meant to resist an attacker.
class stream_hash {
 public:
  void update(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (size > 0) {
      const std::size_t take = std::min(size, sizeof(pending_) - pending_size_);
      std::memcpy(pending_ + pending_size_, p, take);
      pending_size_ += take;
      p += take;
      size -= take;
      if (pending_size_ == sizeof(pending_)) {
        std::uint64_t word;
        std::memcpy(&word, pending_, sizeof(word));
        mix(word);
        pending_size_ = 0;
      }
    }
  }
  std::uint64_t digest() const {
    stream_hash copy = *this;
    std::uint64_t word = 0;
    std::memcpy(&word, copy.pending_, copy.pending_size_);
    copy.mix(word ^ (static_cast<std::uint64_t>(copy.pending_size_) << 56));
    copy.mix(copy.length_);
    return copy.state_ ^ (copy.state_ >> 31);
  }

 private:
  void mix(std::uint64_t word) {
    state_ = (state_ ^ word) * 0x9E3779B97F4A7C15ull;
    state_ ^= state_ >> 29;
    length_ += 8;
  }
  std::uint64_t state_ = 0xCBF29CE484222325ull;
  std::uint64_t length_ = 0;
  unsigned char pending_[8] = {};
  std::size_t pending_size_ = 0;
};

class writer {
 public:
  explicit writer(std::FILE* f) : f_(f) {}
  void bytes(const void* data, std::size_t size) {
    if (size == 0) return;
    hash_.update(data, size);
    if (ok_ && std::fwrite(data, 1, size, f_) != size) ok_ = false;
  }
  void u64(std::uint64_t v) { bytes(&v, sizeof(v)); }
  void u8(std::uint8_t v) { bytes(&v, sizeof(v)); }
  bool finish() {
    const std::uint64_t sum = hash_.digest();
    if (ok_ && std::fwrite(&sum, 1, sizeof(sum), f_) != sizeof(sum)) ok_ = false;
    return ok_;
  }

 private:
  std::FILE* f_;
  stream_hash hash_;
  bool ok_ = true;
};

class reader {
 public:
  explicit reader(std::FILE* f) : f_(f) {}
  result<void> bytes(void* data, std::size_t size) {
    if (size == 0) return ok();
    if (std::fread(data, 1, size, f_) != size) return fail(errc::corrupt_data, "the file is truncated");
    hash_.update(data, size);
    return ok();
  }
  result<std::uint64_t> u64() {
    std::uint64_t v = 0;
    QCODER_CHECK(bytes(&v, sizeof(v)));
    return v;
  }
  result<std::uint8_t> u8() {
    std::uint8_t v = 0;
    QCODER_CHECK(bytes(&v, sizeof(v)));
    return v;
  }
  std::uint64_t digest() const { return hash_.digest(); }
  std::FILE* file() const { return f_; }

 private:
  std::FILE* f_;
  stream_hash hash_;
};

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

}  // namespace

result<void> prefix_cache::save(const std::filesystem::path& file, std::string_view identity) const {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  const std::filesystem::path temp = file.string() + fmt::format(".tmp{}", ::getpid());
  file_ptr f(std::fopen(temp.c_str(), "wb"));
  if (!f) return fail(errc::io_error, "cannot write the prefix cache to {}: {}", temp.string(), std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  std::setvbuf(f.get(), buffer.data(), _IOFBF, buffer.size());

  writer out(f.get());
  out.bytes(magic, sizeof(magic));
  const std::uint32_t header[2] = {version, 0};
  out.bytes(header, sizeof(header));
  out.u64(identity.size());
  out.bytes(identity.data(), identity.size());
  out.u64(attention_layers_.size());
  out.u64(static_cast<std::uint64_t>(kv_stride_));
  out.u64(static_cast<std::uint64_t>(snapshot_floats_));
  out.u64(static_cast<std::uint64_t>(vocab_));
  out.u64(static_cast<std::uint64_t>(node_count()));

  std::vector<const node*> order;
  root_->visit([&](const node& n) { order.push_back(&n); });
  std::unordered_map<const node*, std::uint64_t> number;
  for (std::size_t i = 0; i < order.size(); ++i) number[order[i]] = i;  // the root is 0
  const std::int64_t p = options_.page_tokens;
  const std::size_t per_row = static_cast<std::size_t>(kv_stride_);
  for (std::size_t i = 1; i < order.size(); ++i) {
    const node& n = *order[i];
    out.u64(number[n.parent]);
    out.u64(n.last_used);
    out.u64(n.tokens.size());
    out.bytes(n.tokens.data(), n.tokens.size() * sizeof(std::int32_t));
    for (std::size_t slot = 0; slot < 2 * attention_layers_.size(); ++slot) {
      for (std::int64_t first = 0; first < n.length(); first += p) {
        const std::size_t rows = static_cast<std::size_t>(std::min(p, n.length() - first));
        const std::vector<float>& page = n.pages[static_cast<std::size_t>(first / p)];
        out.bytes(page.data() + slot * rows * per_row, rows * per_row * sizeof(float));
      }
    }
    out.u8(n.snapshot.empty() ? 0 : 1);
    out.bytes(n.snapshot.data(), n.snapshot.size() * sizeof(float));
    out.u8(n.logits.empty() ? 0 : 1);
    out.bytes(n.logits.data(), n.logits.size() * sizeof(float));
  }
  const bool written = out.finish() && std::fflush(f.get()) == 0 && ::fsync(::fileno(f.get())) == 0;
  f.reset();
  if (!written) {
    std::filesystem::remove(temp, ec);
    return fail(errc::io_error, "cannot write the prefix cache to {}: {}", temp.string(), std::strerror(errno));
  }
  std::filesystem::rename(temp, file, ec);
  if (ec) {
    std::filesystem::remove(temp, ec);
    return fail(errc::io_error, "cannot rename the prefix cache into {}: {}", file.string(), ec.message());
  }
  return ok();
}

struct prefix_cache::loader {
  static result<void> run(prefix_cache& cache, const std::filesystem::path& file, std::string_view identity) {
    file_ptr f(std::fopen(file.c_str(), "rb"));
    if (!f) return fail(errc::not_found, "no prefix cache at {}: {}", file.string(), std::strerror(errno));
    std::vector<char> buffer(1 << 20);
    std::setvbuf(f.get(), buffer.data(), _IOFBF, buffer.size());
    struct stat st {};
    const std::uint64_t file_size = ::fstat(::fileno(f.get()), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    reader in(f.get());

    char head[8];
    QCODER_CHECK(in.bytes(head, sizeof(head)));
    if (std::memcmp(head, magic, sizeof(magic)) != 0) return fail(errc::corrupt_data, "not a qcoder prefix cache");
    std::uint32_t header[2];
    QCODER_CHECK(in.bytes(header, sizeof(header)));
    if (header[0] != version) return fail(errc::corrupt_data, "prefix cache format version {} (expected {})", header[0], version);
    QCODER_TRY(const std::uint64_t identity_size, in.u64());
    if (identity_size > 4096) return fail(errc::corrupt_data, "the identity field is {} bytes long", identity_size);
    std::string saved_identity(identity_size, '\0');
    QCODER_CHECK(in.bytes(saved_identity.data(), identity_size));
    if (saved_identity != identity) {
      return fail(errc::invalid_argument, "saved for another model (identity {}, this model is {})", saved_identity, identity);
    }
    QCODER_TRY(const std::uint64_t attention_layers, in.u64());
    QCODER_TRY(const std::uint64_t kv_stride, in.u64());
    QCODER_TRY(const std::uint64_t snapshot_floats, in.u64());
    QCODER_TRY(const std::uint64_t vocab, in.u64());
    if (attention_layers != cache.attention_layers_.size() || kv_stride != static_cast<std::uint64_t>(cache.kv_stride_) ||
        snapshot_floats != static_cast<std::uint64_t>(cache.snapshot_floats_) ||
        vocab != static_cast<std::uint64_t>(cache.vocab_)) {
      return fail(errc::corrupt_data, "the saved shapes do not match the model");
    }
    QCODER_TRY(const std::uint64_t count, in.u64());
    if (count > file_size) return fail(errc::corrupt_data, "{} nodes in a file of {} bytes", count, file_size);

    std::vector<node*> nodes{cache.root_.get()};
    const std::int64_t p = cache.options_.page_tokens;
    const std::size_t per_row = static_cast<std::size_t>(cache.kv_stride_);
    const std::size_t slots = 2 * cache.attention_layers_.size();
    std::uint64_t newest = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      QCODER_TRY(const std::uint64_t parent_number, in.u64());
      QCODER_TRY(const std::uint64_t last_used, in.u64());
      QCODER_TRY(const std::uint64_t length, in.u64());
      if (parent_number >= nodes.size()) return fail(errc::corrupt_data, "node {} names a parent that is not before it", i + 1);
      if (length == 0 || length > file_size / sizeof(std::int32_t)) return fail(errc::corrupt_data, "node {} has {} tokens", i + 1, length);
      node* parent = nodes[parent_number];
      auto n = std::make_unique<node>();
      n->parent = parent;
      n->start = parent->end();
      n->last_used = last_used;
      newest = std::max(newest, last_used);
      n->tokens.resize(length);
      QCODER_CHECK(in.bytes(n->tokens.data(), length * sizeof(std::int32_t)));
      if (parent->child(n->tokens.front()) != nullptr) return fail(errc::corrupt_data, "node {} duplicates a sibling", i + 1);
      for (std::int64_t first = 0; first < n->length(); first += p) {
        n->pages.emplace_back(slots * static_cast<std::size_t>(std::min(p, n->length() - first)) * per_row);
      }
      for (std::size_t slot = 0; slot < slots; ++slot) {
        for (std::int64_t first = 0; first < n->length(); first += p) {
          const std::size_t rows = static_cast<std::size_t>(std::min(p, n->length() - first));
          std::vector<float>& page = n->pages[static_cast<std::size_t>(first / p)];
          QCODER_CHECK(in.bytes(page.data() + slot * rows * per_row, rows * per_row * sizeof(float)));
        }
      }
      QCODER_TRY(const std::uint8_t has_snapshot, in.u8());
      if (has_snapshot != 0) {
        n->snapshot.resize(static_cast<std::size_t>(snapshot_floats));
        QCODER_CHECK(in.bytes(n->snapshot.data(), n->snapshot.size() * sizeof(float)));
      }
      QCODER_TRY(const std::uint8_t has_logits, in.u8());
      if (has_logits != 0) {
        if (has_snapshot == 0) return fail(errc::corrupt_data, "node {} has logits without a snapshot", i + 1);
        n->logits.resize(static_cast<std::size_t>(vocab));
        QCODER_CHECK(in.bytes(n->logits.data(), n->logits.size() * sizeof(float)));
      }
      nodes.push_back(n.get());
      parent->children.push_back(std::move(n));
    }
    const std::uint64_t expected = in.digest();
    std::uint64_t stored = 0;
    if (std::fread(&stored, 1, sizeof(stored), f.get()) != sizeof(stored)) return fail(errc::corrupt_data, "the file is truncated");
    if (stored != expected) return fail(errc::corrupt_data, "checksum mismatch (the file is corrupt)");
    for (const node* n : nodes) {
      if (n != cache.root_.get() && n->children.empty() && n->snapshot.empty()) {
        return fail(errc::corrupt_data, "a leaf without a snapshot");
      }
    }
    // Exact capacities, so the accounting matches what is held.
    for (node* n : nodes) n->children.shrink_to_fit();
    cache.clock_ = newest;
    cache.bytes_ = cache.audit_bytes();
    while (cache.bytes_ > cache.options_.budget_bytes && cache.evict_one()) {
    }
    return ok();
  }
};

result<void> prefix_cache::load(const std::filesystem::path& file, std::string_view identity) {
  clear();
  if (result<void> r = loader::run(*this, file, identity); !r) {
    clear();
    return fail(r.err().code, "prefix cache {}: {}", file.string(), r.err().message);
  }
  return ok();
}

result<std::string> model_identity(const std::filesystem::path& model_dir) {
  stream_hash hash;
  auto add_file_part = [&](int fd, std::uint64_t offset, std::size_t size) -> bool {
    std::vector<char> data(size);
    const ssize_t got = ::pread(fd, data.data(), size, static_cast<off_t>(offset));
    if (got < 0) return false;
    hash.update(data.data(), static_cast<std::size_t>(got));
    return true;
  };
  std::ifstream config(model_dir / "config.json", std::ios::binary);
  if (!config) return fail(errc::not_found, "cannot read {}", (model_dir / "config.json").string());
  std::stringstream text;
  text << config.rdbuf();
  const std::string config_text = text.str();
  hash.update(config_text.data(), config_text.size());

  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, ec)) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errc::io_error, "cannot open {}: {}", path.string(), std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    const std::string name = path.filename().string();
    hash.update(name.data(), name.size());
    hash.update(&size, sizeof(size));
    std::uint64_t header_size = 0;
    bool read = ::pread(fd, &header_size, sizeof(header_size), 0) == sizeof(header_size);
    header_size = std::min<std::uint64_t>(header_size, std::min<std::uint64_t>(size, 64u << 20));
    read = read && add_file_part(fd, 8, static_cast<std::size_t>(header_size));
    // 16 blocks of 4 KiB spread over the tensor data: different weights under the same header differ here.
    const std::uint64_t data_begin = 8 + header_size;
    for (int i = 0; i < 16 && read && size > data_begin; ++i) {
      const std::uint64_t offset = data_begin + (size - data_begin) * static_cast<std::uint64_t>(i) / 16;
      read = add_file_part(fd, offset, static_cast<std::size_t>(std::min<std::uint64_t>(4096, size - offset)));
    }
    ::close(fd);
    if (!read) return fail(errc::io_error, "cannot read {}: {}", path.string(), std::strerror(errno));
  }
  return fmt::format("{:016x}", hash.digest());
}

}  // namespace qcoder::engine
