// `qcoder lsp`: the language server on stdin/stdout. stdout carries only protocol frames; logs go to stderr
// or --log-file.
#include <unistd.h>

#include <charconv>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/inline_completion.h"
#include "lsp/server/language_server.h"
#include "lsp/server/model_host.h"
#include "lsp/server/open_documents.h"
#include "lsp/server/stream_transport.h"

namespace qcoder::cli {

namespace {

// "HOST:PORT" -> endpoint; only loopback addresses unless `remote` is allowed.
result<boost::asio::ip::tcp::endpoint> parse_listen(std::string_view text, bool remote) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail(errc::invalid_argument, "--listen {}: expected HOST:PORT", text);
  std::string host(text.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const std::string_view port_text = text.substr(colon + 1);
  const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return fail(errc::invalid_argument, "--listen {}: bad port", text);
  }
  boost::system::error_code bad;
  const boost::asio::ip::address address = boost::asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, bad);
  if (bad) return fail(errc::invalid_argument, "--listen {}: '{}' is not an IP address", text, host);
  if (!address.is_loopback() && !remote) {
    return fail(errc::invalid_argument,
                "--listen {}: not a loopback address; the server has no authentication, so add --allow-remote "
                "only on a network you trust",
                text);
  }
  return boost::asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
}

}  // namespace

int run_lsp(args_view args) {
  bool stdio = true;
  bool allow_remote = false;
  std::string listen;
  std::string max_message = "64MiB";
  model_flags model;
  prefix_cache_flags cache;
  arg_parser parser("lsp [--stdio | --listen HOST:PORT]",
                    "Run the language server over stdin/stdout (what editors start). Exits with 0 after the\n"
                    "client's shutdown + exit, 1 when the input ends or exit comes without shutdown.");
  parser.flag("stdio", "talk over stdin/stdout (the default; accepted because clients pass it)", &stdio)
      .option("listen", "HOST:PORT", "serve one client over TCP instead (e.g. 127.0.0.1:2087; loopback only)", &listen)
      .flag("allow-remote", "with --listen: accept a non-loopback address", &allow_remote)
      .option("max-message", "SIZE", "largest message accepted from the client", &max_message);
  model.add_to(parser);
  cache.add_to(parser);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  result<std::uint64_t> cap = parse_size(max_message);
  if (!cap || *cap == 0) return report_failure(fail(errc::invalid_argument, "--max-message: expected a size like 64MiB"));

  int in_fd = STDIN_FILENO, out_fd = STDOUT_FILENO;
  boost::asio::io_context accept_io;
  boost::asio::ip::tcp::socket socket(accept_io);
  if (!listen.empty()) {
    result<boost::asio::ip::tcp::endpoint> endpoint = parse_listen(listen, allow_remote);
    if (!endpoint) return report_failure(endpoint.err());
    boost::system::error_code ec;
    boost::asio::ip::tcp::acceptor acceptor(accept_io);
    acceptor.open(endpoint->protocol(), ec);
    if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(*endpoint, ec);
    if (!ec) acceptor.listen(1, ec);
    if (ec) return report_failure(fail(errc::io_error, "--listen {}: {}", listen, ec.message()));
    // The port actually bound (port 0 picks a free one) on stderr, for whoever started us.
    fmt::print(stderr, "qcoder lsp: listening on {}:{}\n", acceptor.local_endpoint().address().to_string(),
               acceptor.local_endpoint().port());
    std::fflush(stderr);
    acceptor.accept(socket, ec);
    if (ec) return report_failure(fail(errc::io_error, "--listen {}: accept failed: {}", listen, ec.message()));
    in_fd = out_fd = socket.native_handle();
  }
  lsp::stream_transport transport(in_fd, out_fd, static_cast<std::size_t>(*cap));
  jsonrpc::connection rpc(transport.sender());
  lsp::language_server server(rpc);
  lsp::open_documents documents(rpc, server);
  // The model loads in the background once the client is initialized; a clean shutdown saves the prefix
  // cache (off the I/O thread) before answering.
  lsp::model_host host(rpc, [&model, &cache] { return load_engine(model, cache); });
  server.set_on_initialized([&] { host.start(server.client_supports_progress()); });
  lsp::inline_completion completions(rpc, server, documents, host);
  std::thread shutting_down;
  server.set_on_shutdown([&](jsonrpc::reply r) {
    shutting_down = std::thread([&host, r = std::move(r)]() mutable {
      if (result<void> saved = host.shutdown(); !saved) spdlog::warn("lsp: {}", saved.err().message);
      r.result(nullptr);
    });
  });
  spdlog::info("lsp: serving on {}", listen.empty() ? "stdin/stdout" : listen);
  transport.run(
      [&](std::string_view body) {
        rpc.receive(body);
        if (server.exit_code()) {
          if (shutting_down.joinable()) shutting_down.join();  // its answer goes out before we stop
          transport.stop();
        }
      },
      [&](std::string_view why) { rpc.reject_frame(why); });
  if (shutting_down.joinable()) shutting_down.join();
  completions.stop();
  host.stop();  // no job may outlive the features it calls back into
  const int code = server.exit_code().value_or(1);
  spdlog::info("lsp: exiting with {}{}", code, transport.input_ended() ? " (end of input)" : "");
  return code;
}

}  // namespace qcoder::cli
