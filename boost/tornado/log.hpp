// Tornado's logging (tornado.log): one hook receives every record the library logs, with
// Tornado's logger names ("tornado.application", "tornado.general", "tornado.access").
#ifndef BOOST_TORNADO_LOG_HPP
#define BOOST_TORNADO_LOG_HPP

#include <boost/tornado/detail/config.hpp>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

namespace boost::tornado {

enum class log_level { debug = 10, info = 20, warning = 30, error = 40, critical = 50 };

struct log_record {
  log_level level;
  std::string_view logger;  // "tornado.application", "tornado.general", ...
  std::string_view message;
};

using log_hook = std::function<void(const log_record&)>;

// Installs the hook and returns the previous one; an empty hook restores the default, which
// writes "[LEVEL logger] message" lines to stderr. Thread-safe.
BOOST_TORNADO_DECL log_hook set_log_hook(log_hook hook);

BOOST_TORNADO_DECL void log(log_level level, std::string_view logger, std::string_view message);

// Logs `what` followed by the exception's description at error level, as Python's
// app_log.error(..., exc_info=True).
BOOST_TORNADO_DECL void log_exception(std::string_view logger, std::string_view what,
                                      std::exception_ptr ex);

inline constexpr std::string_view app_log = "tornado.application";
inline constexpr std::string_view gen_log = "tornado.general";
inline constexpr std::string_view access_log = "tornado.access";

} // namespace boost::tornado

#ifdef BOOST_TORNADO_HEADER_ONLY
#include <boost/tornado/impl/log.ipp>
#endif

#endif
