// Names of error codes, for messages and logs.
#include "kernels/common/result.h"

namespace qcoder {

const char* to_string(errc code) {
  switch (code) {
    case errc::invalid_argument: return "invalid argument";
    case errc::parse_error: return "parse error";
    case errc::not_found: return "not found";
    case errc::corrupt_data: return "corrupt data";
    case errc::unsupported: return "unsupported";
    case errc::io_error: return "I/O error";
    case errc::cancelled: return "cancelled";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::internal: return "internal error";
  }
  return "unknown error";
}

}  // namespace qcoder
