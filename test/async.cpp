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
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <limits>

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

BOOST_AUTO_TEST_CASE(default_token_returns_operation_and_throws_typed_exception) {
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

BOOST_AUTO_TEST_CASE(default_token_operation_is_lazy_and_converts_to_awaitable) {
  asio::io_context ctx;
  std::vector<int> got;
  auto op = fake_op(ctx, {}, 1);
  static_assert(tornado::awaited_operation<decltype(op)>);
  ctx.poll();
  BOOST_TEST(ctx.stopped());  // nothing started: the operation is lazy
  ctx.restart();
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    got.push_back(co_await std::move(op));
    asio::awaitable<int> converted = fake_op(ctx, {}, 2);
    got.push_back(co_await std::move(converted));
    got.push_back(co_await fake_op(ctx, {}, 3).as_awaitable());
  }, asio::detached);
  // co_spawn takes the operation itself, as it takes a function returning an awaitable.
  asio::co_spawn(ctx, fake_op(ctx, {}, 4), [&](std::exception_ptr e, int v) {
    BOOST_TEST(!e);
    got.push_back(v);
  });
  ctx.run();
  std::sort(got.begin(), got.end());
  BOOST_TEST(got == (std::vector<int>{1, 2, 3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(default_token_carries_move_only_values_and_exception_ptr_signatures) {
  asio::io_context ctx;
  std::unique_ptr<int> got;
  bool rethrown = false;
  auto move_only = [&](auto token) {
    return asio::async_initiate<decltype(token), void(error_code, std::unique_ptr<int>)>(
        [&](auto h) { asio::post(ctx, [h = std::move(h)]() mutable { std::move(h)(error_code(), std::make_unique<int>(5)); }); },
        token);
  };
  auto failing = [&](auto token) {
    return asio::async_initiate<decltype(token), void(std::exception_ptr, int)>(
        [&](auto h) {
          asio::post(ctx, [h = std::move(h)]() mutable {
            std::move(h)(std::make_exception_ptr(std::runtime_error("boom")), 0);
          });
        },
        token);
  };
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    got = co_await move_only(tornado::use_awaitable);
    try {
      co_await failing(tornado::use_awaitable);
    } catch (const std::runtime_error& e) {
      rethrown = std::string(e.what()) == "boom";
    }
  }, asio::detached);
  ctx.run();
  BOOST_TEST((got && *got == 5));
  BOOST_TEST(rethrown);
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
  // Beyond the clock's range: the far end ("never") or, negative, a time long past.
  BOOST_TEST((tornado::Deadline(std::numeric_limits<double>::infinity()).when() == clock::time_point::max()));
  BOOST_TEST((tornado::Deadline(std::chrono::hours::max()).when() == clock::time_point::max()));
  BOOST_TEST((tornado::Deadline(-std::numeric_limits<double>::infinity()).when() < before));
  BOOST_TEST((tornado::Deadline(std::chrono::duration<double>(1e300)).when() == clock::time_point::max()));
}
