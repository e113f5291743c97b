// POSIX implementation of mapped_file: open + fstat + mmap(PROT_READ, MAP_PRIVATE), the descriptor is closed
// right away (the mapping keeps the file alive).
#include "engine/mapped_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qcoder::engine {

result<std::unique_ptr<mapped_file>> mapped_file::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return fail(e == ENOENT ? errc::not_found : errc::io_error, "{}: cannot open: {}", path.string(), std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(errc::io_error, "{}: cannot stat: {}", path.string(), std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(errc::io_error, "{}: not a regular file", path.string());
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::unique_ptr<mapped_file>(new mapped_file(path, nullptr, 0));
  }
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (data == MAP_FAILED) return fail(errc::io_error, "{}: mmap of {} bytes failed: {}", path.string(), size, std::strerror(e));
  return std::unique_ptr<mapped_file>(new mapped_file(path, static_cast<const std::byte*>(data), size));
}

mapped_file::~mapped_file() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

result<void> mapped_file::lock() const {
  if (size_ == 0) return ok();
  void* addr = const_cast<std::byte*>(data_);
  ::madvise(addr, size_, MADV_WILLNEED);  // a hint: start reading before mlock faults page by page
  if (::mlock(addr, size_) != 0) {
    const int e = errno;
    struct rlimit limit {};
    ::getrlimit(RLIMIT_MEMLOCK, &limit);
    const std::string allowed =
        limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : fmt::format("{} bytes", limit.rlim_cur);
    return fail(errc::io_error, "{}: cannot lock {} bytes in memory: {} (RLIMIT_MEMLOCK is {}; raise it with `ulimit -l`)",
                path_.string(), size_, std::strerror(e), allowed);
  }
  return ok();
}

void mapped_file::unlock() const {
  if (size_ != 0) ::munlock(data_, size_);
}

void mapped_file::release_pages() const {
  if (size_ != 0) ::madvise(const_cast<std::byte*>(data_), size_, MADV_DONTNEED);
}

}  // namespace qcoder::engine
