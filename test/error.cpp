// Tests boost/tornado/error.hpp: codes, category, typed exceptions.
#include <boost/tornado/error.hpp>

#define BOOST_TEST_MODULE error
#include <boost/asio/error.hpp>
#include <boost/test/unit_test.hpp>

namespace tornado = boost::tornado;
using boost::system::error_code;
using boost::system::system_error;

BOOST_AUTO_TEST_CASE(codes_have_the_tornado_category) {
  error_code ec = tornado::error::timeout;
  BOOST_TEST(ec.category().name() == std::string("boost.tornado"));
  BOOST_TEST(ec.message() == "Timeout");
  BOOST_TEST(error_code(tornado::error::queue_full).message() == "Queue is full");
  BOOST_TEST(error_code(tornado::error::stream_closed).message() == "Stream is closed");
}

template <class E>
void check_thrown(tornado::error e) {
  bool as_own = false, as_system = false;
  try {
    tornado::throw_error(e);
  } catch (const E& ex) {
    as_own = true;
    BOOST_TEST(ex.code() == error_code(e));
  }
  try {
    tornado::throw_error(e);
  } catch (const system_error& ex) {
    as_system = true;
    BOOST_TEST(ex.code() == error_code(e));
  }
  BOOST_TEST(as_own);
  BOOST_TEST(as_system);
}

BOOST_AUTO_TEST_CASE(each_exception_is_catchable_by_name_and_as_system_error) {
  check_thrown<tornado::TimeoutError>(tornado::error::timeout);
  check_thrown<tornado::CancelledError>(tornado::error::cancelled);
  check_thrown<tornado::StreamClosedError>(tornado::error::stream_closed);
  check_thrown<tornado::UnsatisfiableReadError>(tornado::error::unsatisfiable_read);
  check_thrown<tornado::StreamBufferFullError>(tornado::error::stream_buffer_full);
  check_thrown<tornado::QueueEmpty>(tornado::error::queue_empty);
  check_thrown<tornado::QueueFull>(tornado::error::queue_full);
  check_thrown<tornado::InvalidStateError>(tornado::error::invalid_state);
}

BOOST_AUTO_TEST_CASE(what_is_the_plain_message) {
  BOOST_TEST(std::string(tornado::TimeoutError().what()) == "Timeout");
  BOOST_TEST(std::string(tornado::TimeoutError("Operation timed out after 1 seconds").what()) ==
             "Operation timed out after 1 seconds");
  BOOST_TEST(std::string(tornado::QueueFull().what()) == "Queue is full");
}

BOOST_AUTO_TEST_CASE(operation_aborted_becomes_cancelled_error) {
  BOOST_CHECK_THROW(tornado::throw_error(boost::asio::error::operation_aborted), tornado::CancelledError);
}

BOOST_AUTO_TEST_CASE(other_codes_stay_system_errors) {
  try {
    tornado::throw_error(boost::asio::error::connection_reset);
    BOOST_FAIL("no throw");
  } catch (const tornado::CancelledError&) {
    BOOST_FAIL("wrong type");
  } catch (const system_error& e) {
    BOOST_TEST(e.code() == boost::asio::error::connection_reset);
  }
}

BOOST_AUTO_TEST_CASE(stream_closed_error_keeps_real_error) {
  tornado::StreamClosedError e(boost::asio::error::connection_reset);
  BOOST_TEST(e.real_error() == boost::asio::error::connection_reset);
  BOOST_TEST(e.code() == error_code(tornado::error::stream_closed));
  BOOST_TEST(!tornado::StreamClosedError().real_error());
}

BOOST_AUTO_TEST_CASE(make_exception_ptr_gives_typed_exception) {
  auto p = tornado::make_exception_ptr(tornado::error::queue_empty);
  BOOST_CHECK_THROW(std::rethrow_exception(p), tornado::QueueEmpty);
}
