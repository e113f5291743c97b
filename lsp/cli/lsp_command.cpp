// `qcoder lsp`: the language server on stdin/stdout. stdout carries only protocol frames; logs go to stderr
// or --log-file.
#include <unistd.h>

#include <charconv>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "lsp/cli/command.h"
#include "lsp/cli/model_flags.h"
#include "lsp/cli/prefix_cache_flags.h"
#include "lsp/cli/remote_flags.h"
#include "lsp/jsonrpc/connection.h"
#include "lsp/server/server_session.h"
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
  int debounce_ms = 150;
  model_flags model;
  prefix_cache_flags cache;
  remote_flags remote(model);
  arg_parser parser("lsp [--stdio | --listen HOST:PORT]",
                    "Run the language server over stdin/stdout (what editors start). Exits with 0 after the\n"
                    "client's shutdown + exit, 1 when the input ends or exit comes without shutdown.");
  parser.flag("stdio", "talk over stdin/stdout (the default; accepted because clients pass it)", &stdio)
      .option("listen", "HOST:PORT", "serve one client over TCP instead (e.g. 127.0.0.1:2087; loopback only)", &listen)
      .flag("allow-remote", "with --listen: accept a non-loopback address", &allow_remote)
      .option("max-message", "SIZE", "largest message accepted from the client", &max_message)
      .option("debounce", "MS", "longest wait before a typed completion request starts (adaptive below it; 0: none)", &debounce_ms);
  model.add_to(parser);
  cache.add_to(parser);
  remote.add_to(parser);
  log_options logging;
  if (std::optional<int> done = start_command(parser, logging, args)) return *done;
  if (debounce_ms < 0 || debounce_ms > 5000) return report_failure(fail(errc::invalid_argument, "--debounce: expected 0..5000 ms"));
  // What the command line set explicitly wins over the client's settings (flags keep their defaults otherwise).
  const bool experts_given = model.expert_cache_ram != "none";
  const bool cache_given = cache.size != "auto";
  if (result<void> checked = remote.validate(); !checked) return report_failure(checked.err());
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
  // The client's settings may name the model and its budgets; the command line's flags win.
  const auto load = [&model, &cache, &remote, model_given = !model.model.empty(), experts_given, cache_given](
                        const lsp::server_settings& settings) {
    model_flags m = model;
    prefix_cache_flags c = cache;
    if (!model_given && !settings.model.empty()) m.model = settings.model;
    if (remote.enabled()) return remote.load(m);  // the folder then only needs the tokenizer
    if (!experts_given && !settings.expert_cache_ram.empty()) m.expert_cache_ram = settings.expert_cache_ram;
    if (!cache_given && !settings.prefix_cache.empty()) c.size = settings.prefix_cache;
    return load_engine(m, c);
  };
  lsp::session_options options;
  options.settings.debounce = std::chrono::milliseconds(debounce_ms);
  lsp::server_session session(transport.sender(), load, options);
  spdlog::info("lsp: serving on {}", listen.empty() ? "stdin/stdout" : listen);
  std::optional<int> exit_code;
  transport.run(
      [&](std::string_view body) {
        session.receive(body);
        if ((exit_code = session.exit_code())) transport.stop();
      },
      [&](std::string_view why) { session.reject_frame(why); });
  session.stop();
  const int code = exit_code.value_or(1);
  spdlog::info("lsp: exiting with {}{}", code, transport.input_ended() ? " (end of input)" : "");
  return code;
}

}  // namespace qcoder::cli
