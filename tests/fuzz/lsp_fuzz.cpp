// libFuzzer target over what a client controls: the byte stream (framing) and each message (JSON-RPC
// dispatch and the server's handlers). Whatever arrives, the server must not crash, leak or hang, and
// everything it sends back must be valid JSON-RPC.
// Built and run by scripts/fuzz (clang with -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "lsp/jsonrpc/connection.h"
#include "lsp/jsonrpc/framing.h"
#include "lsp/server/language_server.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  std::vector<std::string> sent;
  qcoder::jsonrpc::connection rpc([&sent](std::string body) { sent.push_back(std::move(body)); });
  qcoder::lsp::language_server server(rpc);
  qcoder::jsonrpc::frame_reader reader(1 << 16);
  // Feed in two pieces split where the first byte says, so partial frames are exercised too.
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = size == 0 ? 0 : data[0] % size;
  for (const std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
    reader.feed(piece);
    while (auto message = reader.next()) {
      if (*message) {
        rpc.receive(message->value());
      } else {
        rpc.reject_frame(message->err().message);
      }
    }
  }
  for (const std::string& body : sent) {
    const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("jsonrpc", "") != "2.0") std::abort();
  }
  return 0;
}
