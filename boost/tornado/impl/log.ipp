#ifndef BOOST_TORNADO_IMPL_LOG_IPP
#define BOOST_TORNADO_IMPL_LOG_IPP

#include <boost/tornado/log.hpp>
#include <cstdio>
#include <mutex>
#include <memory>
#include <utility>

namespace boost::tornado {
namespace detail {

struct log_state {
  std::mutex mutex;
  std::shared_ptr<const log_hook> hook;
};

inline log_state& log_globals() {
  static log_state state;
  return state;
}

inline const char* level_name(log_level l) {
  switch (l) {
  case log_level::debug: return "DEBUG";
  case log_level::info: return "INFO";
  case log_level::warning: return "WARNING";
  case log_level::error: return "ERROR";
  case log_level::critical: return "CRITICAL";
  }
  return "LOG";
}

} // namespace detail

BOOST_TORNADO_DECL log_hook set_log_hook(log_hook hook) {
  auto& g = detail::log_globals();
  std::shared_ptr<const log_hook> next;
  if (hook) next = std::make_shared<const log_hook>(std::move(hook));
  std::lock_guard lock(g.mutex);
  auto prev = std::exchange(g.hook, std::move(next));
  return prev ? *prev : log_hook{};
}

BOOST_TORNADO_DECL void log(log_level level, std::string_view logger, std::string_view message) {
  auto& g = detail::log_globals();
  std::shared_ptr<const log_hook> hook;
  {
    std::lock_guard lock(g.mutex);
    hook = g.hook;
  }
  log_record rec{level, logger, message};
  if (hook) {
    (*hook)(rec);
    return;
  }
  std::fprintf(stderr, "[%s %.*s] %.*s\n", detail::level_name(level), int(logger.size()),
               logger.data(), int(message.size()), message.data());
}

BOOST_TORNADO_DECL void log_exception(std::string_view logger, std::string_view what,
                                      std::exception_ptr ex) {
  std::string msg(what);
  try {
    if (ex) std::rethrow_exception(ex);
  } catch (const std::exception& e) {
    msg += ": ";
    msg += e.what();
  } catch (...) {
    msg += ": unknown exception";
  }
  log(log_level::error, logger, msg);
}

} // namespace boost::tornado

#endif
