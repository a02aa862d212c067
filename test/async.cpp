// Tests boost/tornado/async.hpp: the default token raises typed exceptions, every other Asio
// token gets the error_code; associated executor, allocator and cancellation slot are kept;
// Deadline conversions.
#include <boost/tornado/async.hpp>

#define BOOST_TEST_MODULE async
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

// A minimal operation in the library's style: completes (posted) with the given error and
// value, or with operation_aborted when cancelled first.
struct initiate_fake {
  asio::io_context* ctx;
  template <class Handler>
  void operator()(Handler&& h, error_code ec, int value) const {
    auto ex = asio::get_associated_executor(h, ctx->get_executor());
    asio::post(ex, [h = std::forward<Handler>(h), ec, value]() mutable { std::move(h)(ec, value); });
  }
};

template <class Token = tornado::use_awaitable_t>
auto fake_op(asio::io_context& ctx, error_code ec, int value, Token&& token = {}) {
  return asio::async_initiate<Token, void(error_code, int)>(initiate_fake{&ctx}, token, ec, value);
}

} // namespace

BOOST_AUTO_TEST_CASE(default_token_returns_awaitable_and_throws_typed_exception) {
  asio::io_context ctx;
  int got = 0;
  bool timed_out = false;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    got = co_await fake_op(ctx, {}, 7);
    try {
      co_await fake_op(ctx, tornado::error::timeout, 0);
    } catch (const tornado::TimeoutError&) {
      timed_out = true;
    }
  }, asio::detached);
  ctx.run();
  BOOST_TEST(got == 7);
  BOOST_TEST(timed_out);
}

BOOST_AUTO_TEST_CASE(typed_exceptions_are_system_errors) {
  asio::io_context ctx;
  error_code seen;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    try {
      co_await fake_op(ctx, tornado::error::queue_full, 0);
    } catch (const boost::system::system_error& e) {
      seen = e.code();
    }
  }, asio::detached);
  ctx.run();
  BOOST_TEST(seen == error_code(tornado::error::queue_full));
}

BOOST_AUTO_TEST_CASE(callback_token_gets_error_code) {
  asio::io_context ctx;
  error_code seen;
  int v = 0;
  fake_op(ctx, tornado::error::timeout, 3, [&](error_code ec, int x) {
    seen = ec;
    v = x;
  });
  BOOST_TEST(!seen);  // never inline
  ctx.run();
  BOOST_TEST(seen == error_code(tornado::error::timeout));
  BOOST_TEST(v == 3);
}

BOOST_AUTO_TEST_CASE(asio_use_awaitable_throws_system_error) {
  asio::io_context ctx;
  bool caught = false;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    try {
      co_await fake_op(ctx, tornado::error::timeout, 0, asio::use_awaitable);
    } catch (const tornado::TimeoutError&) {
      BOOST_FAIL("asio::use_awaitable gives plain system_error");
    } catch (const boost::system::system_error& e) {
      caught = e.code() == tornado::error::timeout;
    }
  }, asio::detached);
  ctx.run();
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE(as_tuple_and_redirect_error) {
  asio::io_context ctx;
  error_code a, b;
  int va = 0, vb = 0;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    auto [ec, v] = co_await fake_op(ctx, tornado::error::cancelled, 5, asio::as_tuple(asio::use_awaitable));
    a = ec;
    va = v;
    vb = co_await fake_op(ctx, tornado::error::queue_empty, 6, asio::redirect_error(asio::use_awaitable, b));
  }, asio::detached);
  ctx.run();
  BOOST_TEST(a == error_code(tornado::error::cancelled));
  BOOST_TEST(va == 5);
  BOOST_TEST(b == error_code(tornado::error::queue_empty));
  BOOST_TEST(vb == 6);
}

BOOST_AUTO_TEST_CASE(deferred_and_use_future) {
  asio::io_context ctx;
  int got = 0;
  auto op = fake_op(ctx, {}, 9, asio::deferred);
  std::move(op)([&](error_code, int v) { got = v; });
  auto fut = fake_op(ctx, tornado::error::timeout, 1, asio::use_future);
  ctx.run();
  BOOST_TEST(got == 9);
  BOOST_CHECK_THROW(fut.get(), boost::system::system_error);
}

BOOST_AUTO_TEST_CASE(yield_context) {
  asio::io_context ctx;
  int got = 0;
  error_code seen;
  asio::spawn(ctx, [&](asio::yield_context yield) {
    got = fake_op(ctx, {}, 11, yield);
    fake_op(ctx, tornado::error::timeout, 0, yield[seen]);
  }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  ctx.run();
  BOOST_TEST(got == 11);
  BOOST_TEST(seen == error_code(tornado::error::timeout));
}

BOOST_AUTO_TEST_CASE(associated_executor_is_used) {
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  bool in_strand = false;
  fake_op(ctx, {}, 1, asio::bind_executor(strand, [&](error_code, int) {
    in_strand = strand.running_in_this_thread();
  }));
  ctx.run();
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(deadline_forms) {
  using clock = std::chrono::steady_clock;
  tornado::Deadline none;
  BOOST_TEST(!none.has_value());
  auto before = clock::now();
  tornado::Deadline rel = 50ms;
  BOOST_TEST(rel.has_value());
  BOOST_TEST((rel.when() >= before + 50ms));
  tornado::Deadline abs = before;
  BOOST_TEST((abs.when() == before));
  double secs = std::chrono::duration<double>(before.time_since_epoch()).count() + 1.0;
  tornado::Deadline f = secs;
  auto diff = f.when() - before;
  BOOST_TEST(std::chrono::duration<double>(diff).count() == 1.0, boost::test_tools::tolerance(1e-6));
}
