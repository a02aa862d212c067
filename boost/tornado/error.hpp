// Tornado's exceptions and the error codes behind them. Token users receive an
// error_code of tornado::error_category(); coroutines using the default token get the typed
// exception, catchable by its own name or as boost::system::system_error.
#ifndef BOOST_TORNADO_ERROR_HPP
#define BOOST_TORNADO_ERROR_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace boost::tornado {

enum class error {
  timeout = 1,          // TimeoutError
  cancelled,            // CancelledError
  stream_closed,        // StreamClosedError
  unsatisfiable_read,   // UnsatisfiableReadError
  stream_buffer_full,   // StreamBufferFullError
  queue_empty,          // QueueEmpty
  queue_full,           // QueueFull
  invalid_state,        // asyncio.InvalidStateError (Future result not ready / set twice)
  already_reading,      // "Already reading"
  loop_stopped,         // run_sync: loop stopped before the work completed
};

BOOST_TORNADO_DECL const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

namespace detail {
// Every exception type is a system_error carrying its code; what() is the plain message.
class tornado_exception : public boost::system::system_error {
public:
  tornado_exception(boost::system::error_code ec, std::string what)
      : system_error(ec), what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

private:
  std::string what_;
};
} // namespace detail

class TimeoutError : public detail::tornado_exception {
public:
  explicit TimeoutError(std::string what = "Timeout")
      : tornado_exception(make_error_code(error::timeout), std::move(what)) {}
};

class CancelledError : public detail::tornado_exception {
public:
  explicit CancelledError(std::string what = "Cancelled")
      : tornado_exception(make_error_code(error::cancelled), std::move(what)) {}
};

class StreamClosedError : public detail::tornado_exception {
public:
  explicit StreamClosedError(boost::system::error_code real_error = {})
      : tornado_exception(make_error_code(error::stream_closed),
                          real_error ? "Stream is closed: " + real_error.message()
                                     : "Stream is closed"),
        real_error_(real_error) {}
  // Why the stream closed (connection reset, UnsatisfiableReadError, ...), if known.
  const boost::system::error_code& real_error() const noexcept { return real_error_; }

private:
  boost::system::error_code real_error_;
};

class UnsatisfiableReadError : public detail::tornado_exception {
public:
  explicit UnsatisfiableReadError(std::string what = "Unsatisfiable read")
      : tornado_exception(make_error_code(error::unsatisfiable_read), std::move(what)) {}
};

class StreamBufferFullError : public detail::tornado_exception {
public:
  explicit StreamBufferFullError(std::string what = "Reached maximum buffer size")
      : tornado_exception(make_error_code(error::stream_buffer_full), std::move(what)) {}
};

class QueueEmpty : public detail::tornado_exception {
public:
  QueueEmpty() : tornado_exception(make_error_code(error::queue_empty), "Queue is empty") {}
};

class QueueFull : public detail::tornado_exception {
public:
  QueueFull() : tornado_exception(make_error_code(error::queue_full), "Queue is full") {}
};

class InvalidStateError : public detail::tornado_exception {
public:
  explicit InvalidStateError(std::string what)
      : tornado_exception(make_error_code(error::invalid_state), std::move(what)) {}
};

// Turns an error code into the exception a coroutine sees: tornado codes become their typed
// exception, Asio's operation_aborted becomes CancelledError, anything else a system_error.
BOOST_TORNADO_DECL std::exception_ptr make_exception_ptr(const boost::system::error_code& ec);
[[noreturn]] BOOST_TORNADO_DECL void throw_error(const boost::system::error_code& ec);

} // namespace boost::tornado

template <>
struct boost::system::is_error_code_enum<boost::tornado::error> : std::true_type {};

#ifdef BOOST_TORNADO_HEADER_ONLY
#include <boost/tornado/impl/error.ipp>
#endif

#endif
