// A Hugging Face checkpoint opened in place: one `model.safetensors`, or the shards listed by
// `model.safetensors.index.json`. Every file is memory-mapped read-only; tensor data is never copied, and
// a tensor's bytes are only paged in when a kernel touches them (so `mtp.*` tensors, which we do not use,
// cost nothing but their header entry).
//
// open() validates everything that can be checked without reading the data: header JSON, dtypes, shapes,
// offsets inside the file and not overlapping, index entries pointing at existing tensors. Errors name the
// file and the tensor.
// Thread-safe after open(): all accessors are const and the mappings are read-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/result.h"
#include "kernels/common/tensor.h"

namespace qcoder::engine {

class mapped_file;

struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;  // inside the file's mapping
  const std::filesystem::path* file = nullptr;  // the shard that holds it (owned by the checkpoint)
  std::uint64_t file_offset = 0;                 // where `bytes` start in that file (for reads that bypass the mmap)

  std::int64_t elements() const;
};

class checkpoint {
 public:
  // Opens `dir/model.safetensors.index.json` if present, else `dir/model.safetensors`.
  static result<checkpoint> open(const std::filesystem::path& dir);
  // Opens one safetensors file (tests, tools).
  static result<checkpoint> open_file(const std::filesystem::path& file);

  checkpoint(checkpoint&&) noexcept;
  checkpoint& operator=(checkpoint&&) noexcept;
  ~checkpoint();

  // nullptr when absent.
  const tensor_info* find(std::string_view name) const;
  // The tensor, or a not_found error naming it and the checkpoint folder.
  result<const tensor_info*> get(std::string_view name) const;
  // The tensor, checked to have exactly this shape (error names the tensor, file, expected and actual shape).
  result<const tensor_info*> get(std::string_view name, std::span<const std::int64_t> shape) const;

  // Views for the kernels. A matrix must be 2-D; for F8_E4M3 its `<name minus .weight>.weight_scale_inv`
  // is attached (shape [ceil(rows/block), ceil(cols/block)], BF16/F16/F32), and a missing or misshapen scale
  // is an error. `block` is quantization_config.weight_block_size.
  result<weight_matrix> matrix(std::string_view name, std::int64_t rows, std::int64_t cols,
                               std::array<std::int32_t, 2> block = {128, 128}) const;
  result<weight_vector> vector(std::string_view name, std::int64_t size) const;

  std::size_t tensor_count() const { return tensors_.size(); }
  std::vector<std::string_view> names() const;  // sorted
  const std::filesystem::path& dir() const { return dir_; }
  std::uint64_t total_bytes() const;  // sum of tensor data sizes

  // Asks the kernel to keep the mappings resident (mlock). Error when the limit does not allow it.
  result<void> lock_in_memory() const;
  // Unmaps the pages this process has touched (after the weights were copied elsewhere), so they no longer
  // count in its memory; tensor views stay valid and page in again if used.
  void release_pages() const;

 private:
  checkpoint() = default;
  // Maps one safetensors file and adds its tensors (error on a name already present).
  result<void> add_file(const std::filesystem::path& path);

  std::filesystem::path dir_;
  std::filesystem::path source_;  // the index or the single file: what error messages name
  std::vector<std::unique_ptr<std::filesystem::path>> files_;
  std::vector<std::unique_ptr<mapped_file>> mappings_;
  std::unordered_map<std::string, tensor_info> tensors_;
};

}  // namespace qcoder::engine
