#include "service/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include <fmt/core.h>

namespace qcoder::service {
namespace fs = std::filesystem;
namespace {

struct fd_closer {
  int fd = -1;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

std::string os_error() { return std::strerror(errno); }

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

result<std::string> read_whole_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return fail(errc::not_found, "{}: no such file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(errc::io_error, "{}: cannot read it", path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail(errc::io_error, "{}: read failed", path.string());
  return text;
}

result<void> replace_file_atomically(const fs::path& path, std::string_view content, const std::string* expected) {
  struct stat old_stat {};
  if (::stat(path.c_str(), &old_stat) != 0 || !S_ISREG(old_stat.st_mode)) {
    return fail(errc::not_found, "{}: no such file", path.string());
  }
  if (expected != nullptr) {
    QCODER_TRY(const std::string now, read_whole_file(path));
    if (now != *expected) return fail(errc::conflict, "{}: changed since it was read; not written", path.string());
  }
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  // A name no other writer picks, hidden, in the same folder (so the rename stays on one file system).
  std::random_device seed;
  const fs::path temp = dir / fmt::format(".{}.qcoder-{:08x}", path.filename().string(), seed());
  const mode_t mode = old_stat.st_mode & 07777;
  // Preferably an unnamed file (O_TMPFILE): until it is complete nothing in the folder names it, so a kill
  // while writing leaves nothing behind. It gets the temporary name only for the rename.
  fd_closer out{::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode)};
  const bool unnamed = out.fd >= 0;
  if (!unnamed) out.fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (out.fd < 0) return fail(errc::io_error, "{}: cannot create {}: {}", path.string(), temp.string(), os_error());
  bool named = !unnamed;
  const auto give_up = [&](std::string_view what) -> error {
    const std::string why = os_error();
    ::close(out.fd);
    out.fd = -1;
    if (named) ::unlink(temp.c_str());
    return fail(errc::io_error, "{}: {} failed: {}; the file is unchanged", path.string(), what, why);
  };
  if (!write_all(out.fd, content)) return give_up("write");
  // The mode as it was (open's mode is filtered by the umask), and the owner where we may set it.
  if (::fchmod(out.fd, mode) != 0) return give_up("chmod");
  if (::fchown(out.fd, old_stat.st_uid, old_stat.st_gid) != 0 && errno != EPERM) return give_up("chown");
  if (::fsync(out.fd) != 0) return give_up("fsync");
  if (unnamed) {
    const std::string self = fmt::format("/proc/self/fd/{}", out.fd);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) != 0) return give_up("link");
    named = true;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) return give_up("rename");
  ::close(out.fd);
  out.fd = -1;
  fd_closer folder{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (folder.fd >= 0) ::fsync(folder.fd);  // best effort: the rename is done either way
  return ok();
}

}  // namespace qcoder::service
