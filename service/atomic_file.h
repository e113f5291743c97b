// Replacing a file so that anyone reading it — another program, or this one after a crash or a SIGKILL —
// sees the old version or the new one, never a mix: the new content goes to a temporary file in the same
// folder (unnamed, O_TMPFILE, where the file system allows: a kill while it is written leaves nothing; it is
// named ".NAME.qcoder-XXXXXXXX" only for the rename), is flushed to disk, gets the old file's permissions, and is renamed over the old one (rename is
// atomic within a file system); then the folder itself is flushed so the rename survives a power cut.
// Thread-safety: pure functions; any thread (two writers of one path: the last rename wins).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "kernels/common/result.h"

namespace qcoder::service {

// Replaces `path` with `content`. With `expected`, the file must still hold exactly that (it was read
// before the change was computed); otherwise nothing is written and the error is errc::conflict.
// Errors: not_found (no such file), conflict, io_error (with what the OS said). A failed write leaves the
// old file and no temporary file behind.
result<void> replace_file_atomically(const std::filesystem::path& path, std::string_view content,
                                     const std::string* expected = nullptr);

// A file's whole content. Errors: not_found, io_error.
result<std::string> read_whole_file(const std::filesystem::path& path);

}  // namespace qcoder::service
