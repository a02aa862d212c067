#ifndef BOOST_TORNADO_IMPL_ERROR_IPP
#define BOOST_TORNADO_IMPL_ERROR_IPP

#include <boost/tornado/error.hpp>
#include <boost/asio/error.hpp>

namespace boost::tornado {
namespace detail {

class tornado_category final : public boost::system::error_category {
public:
  const char* name() const noexcept override { return "boost.tornado"; }
  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
    case error::timeout: return "Timeout";
    case error::cancelled: return "Cancelled";
    case error::stream_closed: return "Stream is closed";
    case error::unsatisfiable_read: return "Unsatisfiable read";
    case error::stream_buffer_full: return "Reached maximum buffer size";
    case error::queue_empty: return "Queue is empty";
    case error::queue_full: return "Queue is full";
    case error::invalid_state: return "Invalid state";
    case error::already_reading: return "Already reading";
    case error::loop_stopped: return "Event loop stopped before Future completed.";
    }
    return "Unknown boost.tornado error";
  }
};

} // namespace detail

BOOST_TORNADO_DECL const boost::system::error_category& error_category() noexcept {
  static const detail::tornado_category cat;
  return cat;
}

BOOST_TORNADO_DECL std::exception_ptr make_exception_ptr(const boost::system::error_code& ec) {
  try {
    throw_error(ec);
  } catch (...) {
    return std::current_exception();
  }
}

BOOST_TORNADO_DECL void throw_error(const boost::system::error_code& ec) {
  if (ec == boost::asio::error::operation_aborted) throw CancelledError();
  if (ec.category() == error_category()) {
    switch (static_cast<error>(ec.value())) {
    case error::timeout: throw TimeoutError();
    case error::cancelled: throw CancelledError();
    case error::stream_closed: throw StreamClosedError();
    case error::unsatisfiable_read: throw UnsatisfiableReadError();
    case error::stream_buffer_full: throw StreamBufferFullError();
    case error::queue_empty: throw QueueEmpty();
    case error::queue_full: throw QueueFull();
    case error::invalid_state: throw InvalidStateError("Invalid state");
    default: break;
    }
  }
  throw boost::system::system_error(ec);
}

} // namespace boost::tornado

#endif
