// Installs the default spdlog logger: stderr (coloured when it is a terminal) or an appending log file.
#include "kernels/common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace qcoder {

result<void> configure_logging(const log_options& options) {
  const spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  // from_str maps anything it does not know to "off"; only accept that when it was asked for.
  if (level == spdlog::level::off && options.level != "off") {
    return fail(errc::invalid_argument,
                "unknown log level '{}' (use trace, debug, info, warn, error, critical or off)", options.level);
  }
  spdlog::drop("qcoder");  // configuring twice (tests, restarts) replaces the logger
  std::shared_ptr<spdlog::logger> logger;
  if (options.file.empty()) {
    logger = spdlog::stderr_color_mt("qcoder");
  } else {
    try {
      logger = spdlog::basic_logger_mt("qcoder", options.file, /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      return fail(errc::io_error, "cannot open log file {}: {}", options.file, e.what());
    }
  }
  logger->set_level(level);
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] [%t] %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return ok();
}

}  // namespace qcoder
