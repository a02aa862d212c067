// Tornado's exceptions and the error codes behind them. Token users receive an
// error_code of tornado::error_category(); coroutines using the default token get the typed
// exception, catchable by its own name or as boost::system::system_error.
#ifndef BOOST_TORNADO_ERROR_HPP
#define BOOST_TORNADO_ERROR_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <type_traits>

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

// Every exception type is a system_error carrying its code.
class TimeoutError : public boost::system::system_error {
public:
  explicit TimeoutError(const char* what = "Timeout")
      : system_error(make_error_code(error::timeout), what) {}
};

class CancelledError : public boost::system::system_error {
public:
  explicit CancelledError(const char* what = "Cancelled")
      : system_error(make_error_code(error::cancelled), what) {}
};

class StreamClosedError : public boost::system::system_error {
public:
  explicit StreamClosedError(boost::system::error_code real_error = {})
      : system_error(make_error_code(error::stream_closed),
                     real_error ? real_error.message() : "Stream is closed"),
        real_error_(real_error) {}
  // Why the stream closed (connection reset, UnsatisfiableReadError, ...), if known.
  const boost::system::error_code& real_error() const noexcept { return real_error_; }

private:
  boost::system::error_code real_error_;
};

class UnsatisfiableReadError : public boost::system::system_error {
public:
  explicit UnsatisfiableReadError(const char* what = "Unsatisfiable read")
      : system_error(make_error_code(error::unsatisfiable_read), what) {}
};

class StreamBufferFullError : public boost::system::system_error {
public:
  explicit StreamBufferFullError(const char* what = "Reached maximum buffer size")
      : system_error(make_error_code(error::stream_buffer_full), what) {}
};

class QueueEmpty : public boost::system::system_error {
public:
  QueueEmpty() : system_error(make_error_code(error::queue_empty)) {}
};

class QueueFull : public boost::system::system_error {
public:
  QueueFull() : system_error(make_error_code(error::queue_full)) {}
};

class InvalidStateError : public boost::system::system_error {
public:
  explicit InvalidStateError(const char* what)
      : system_error(make_error_code(error::invalid_state), what) {}
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
