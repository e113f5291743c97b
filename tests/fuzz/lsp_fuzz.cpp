// libFuzzer target over what a client controls: the byte stream (framing) and each message (JSON-RPC
// dispatch and every handler of the server session: lifecycle, text sync through the document store and
// tree-sitter, settings, inline completion and code action requests). Whatever arrives, the server must
// not crash, leak or hang, and everything it sends back must be valid JSON-RPC.
//
// There is no model: the loader fails at once, so requests that need one get a clear error. The workspace
// index is off (a fuzzed rootUri must not walk the machine's disk).
// Built and run by scripts/fuzz (clang with -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "lsp/jsonrpc/framing.h"
#include "lsp/server/server_session.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  std::mutex mutex;
  std::vector<std::string> sent;
  qcoder::lsp::session_options options;
  options.index_workspace = false;
  options.load_wait = std::chrono::milliseconds(50);
  options.settings.debounce = std::chrono::milliseconds(0);
  {
    qcoder::lsp::server_session session(
        [&](std::string body) {
          std::lock_guard lock(mutex);
          sent.push_back(std::move(body));
        },
        [](const qcoder::lsp::server_settings&) -> qcoder::result<qcoder::service::loaded_engine> {
          return qcoder::fail(qcoder::errc::not_found, "the fuzzer has no model");
        },
        options);
    qcoder::jsonrpc::frame_reader reader(1 << 16);
    // Feed in two pieces split where the first byte says, so partial frames are exercised too.
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t cut = size == 0 ? 0 : data[0] % size;
    for (const std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
      reader.feed(piece);
      while (auto message = reader.next()) {
        if (*message) {
          session.receive(message->value());
        } else {
          session.reject_frame(message->err().message);
        }
        if (session.exit_code()) break;
      }
    }
    session.stop();
  }
  for (const std::string& body : sent) {
    const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("jsonrpc", "") != "2.0") std::abort();
  }
  return 0;
}
