// `qcoder lsp`: the language server on stdin/stdout. stdout carries only protocol frames; logs go to stderr
// or --log-file.
#include <unistd.h>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/cli/command.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/language_server.h"
#include "lsp/server/stream_transport.h"

namespace qcoder::cli {

int run_lsp(args_view args) {
  bool stdio = true;
  std::string max_message = "64MiB";
  arg_parser parser("lsp [--stdio]",
                    "Run the language server over stdin/stdout (what editors start). Exits with 0 after the\n"
                    "client's shutdown + exit, 1 when the input ends or exit comes without shutdown.");
  parser.flag("stdio", "talk over stdin/stdout (the default; accepted because clients pass it)", &stdio)
      .option("max-message", "SIZE", "largest message accepted from the client", &max_message);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  result<std::uint64_t> cap = parse_size(max_message);
  if (!cap || *cap == 0) return report_failure(fail(errc::invalid_argument, "--max-message: expected a size like 64MiB"));

  lsp::stream_transport transport(STDIN_FILENO, STDOUT_FILENO, static_cast<std::size_t>(*cap));
  jsonrpc::connection rpc(transport.sender());
  lsp::language_server server(rpc);
  spdlog::info("lsp: serving on stdin/stdout");
  transport.run(
      [&](std::string_view body) {
        rpc.receive(body);
        if (server.exit_code()) transport.stop();
      },
      [&](std::string_view why) { rpc.reject_frame(why); });
  const int code = server.exit_code().value_or(1);
  spdlog::info("lsp: exiting with {}{}", code, transport.input_ended() ? " (end of input)" : "");
  return code;
}

}  // namespace qcoder::cli
