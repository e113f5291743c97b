// A whole file memory-mapped read-only (POSIX mmap), the storage behind every checkpoint tensor.
//
// The mapping is private to this object and lives until it is destroyed; pages are read from disk only
// when touched. lock() pins the pages in RAM (mlock) for the resident weights.
// Thread-safe after open(): the mapping is read-only; lock()/unlock() may be called from one thread at a time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <utility>

#include "kernels/common/result.h"

namespace qcoder::engine {

class mapped_file {
 public:
  // Maps `path` read-only. An empty file is mapped as an empty span (no mmap call).
  static result<std::unique_ptr<mapped_file>> open(const std::filesystem::path& path);

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Reads the pages ahead (MADV_WILLNEED) and pins them in RAM. Error (io_error) when RLIMIT_MEMLOCK or the
  // available memory does not allow it; nothing stays locked then.
  result<void> lock() const;
  void unlock() const;
  // Drops this process's mapping of the pages (they are read again from the file if touched later).
  void release_pages() const;

 private:
  mapped_file(std::filesystem::path path, const std::byte* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace qcoder::engine
