// Tests boost/tornado/gen.hpp (gen_test.py cases that apply, named after the Python ones).
#include <boost/tornado/gen.hpp>

#define BOOST_TEST_MODULE gen
#include "support/test.hpp"
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <limits>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using tornado::Future;
using tornado::IOLoop;
using namespace std::chrono_literals;

BOOST_FIXTURE_TEST_SUITE(GenCoroutineTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_sleep) {
  double t0 = IOLoop::time();
  loop.run_sync([]() -> asio::awaitable<void> { co_await gen::sleep(0.01); });
  BOOST_TEST(IOLoop::time() - t0 >= 0.0099);
  loop.run_sync([]() -> asio::awaitable<void> { co_await gen::sleep(1ms); });
}

BOOST_AUTO_TEST_CASE(sleep_is_cancellable) {
  asio::cancellation_signal sig;
  boost::system::error_code got;
  gen::sleep(1h, asio::bind_cancellation_slot(sig.slot(), [&](boost::system::error_code ec) { got = ec; }));
  poll();
  sig.emit(asio::cancellation_type::terminal);
  loop.context().run();
  BOOST_TEST(got == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(sleep_forever) {
  // Durations too long for the clock wait forever (Python's sleep(math.inf)), instead of
  // overflowing into a time already past.
  int fired = 0;
  auto count = [&](boost::system::error_code ec) {
    if (!ec) ++fired;
  };
  gen::sleep(std::numeric_limits<double>::infinity(), count);
  gen::sleep(1e12, count);
  gen::sleep(std::chrono::hours::max(), count);
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(fired == 0);
}

BOOST_AUTO_TEST_CASE(test_moment) {
  // Two coroutines yielding with moment interleave one step at a time.
  std::vector<int> seq;
  auto coro = [&](int id) -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      seq.push_back(id);
      co_await gen::moment();
    }
  };
  asio::co_spawn(loop.context(), coro(1), asio::detached);
  asio::co_spawn(loop.context(), coro(2), asio::detached);
  loop.context().run();
  BOOST_TEST((seq == std::vector<int>{1, 2, 1, 2, 1, 2}));
}

BOOST_AUTO_TEST_CASE(test_multi) {
  std::vector<Future<int>> fs(2);
  fs[0].set_result(1);
  fs[1].set_result(2);
  auto r = loop.run_sync([&]() -> asio::awaitable<std::vector<int>> { co_return co_await gen::multi(fs); });
  BOOST_TEST((r == std::vector<int>{1, 2}));
}

BOOST_AUTO_TEST_CASE(multi_of_done_children_is_done_at_once) {
  // Tornado's multi_future counts children already done at once (future_add_done_callback):
  // the result is done when multi_future returns, with no loop turn.
  std::vector<Future<int>> fs(2);
  fs[0].set_result(1);
  fs[1].set_result(2);
  auto all = gen::multi_future(fs);
  BOOST_TEST(all.done());
  BOOST_TEST((all.result() == std::vector<int>{1, 2}));
  std::map<std::string, Future<int>> named{{"a", fs[0]}, {"b", fs[1]}};
  auto by_name = gen::multi_future(named);
  BOOST_TEST(by_name.done());
}

BOOST_AUTO_TEST_CASE(test_multi_dict) {
  std::map<std::string, Future<int>> fs{{"foo", Future<int>()}, {"bar", Future<int>()}};
  fs["foo"].set_result(1);
  fs["bar"].set_result(2);
  auto r = loop.run_sync([&] { return gen::multi_future(fs); });
  BOOST_TEST(r.at("foo") == 1);
  BOOST_TEST(r.at("bar") == 2);
}

BOOST_AUTO_TEST_CASE(test_multi_delayed) {
  // Results come back in input order even when children finish in reverse.
  std::vector<Future<int>> fs(3);
  for (int i = 0; i < 3; ++i) loop.call_later((3 - i) * 0.002, [f = fs[i], i]() mutable { f.set_result(i); });
  auto r = loop.run_sync([&] { return gen::multi_future(fs); });
  BOOST_TEST((r == std::vector<int>{0, 1, 2}));
}

BOOST_AUTO_TEST_CASE(test_multi_empty) {
  auto r = loop.run_sync([&] { return gen::multi_future(std::vector<Future<int>>{}); });
  BOOST_TEST(r.empty());
}

BOOST_AUTO_TEST_CASE(test_multi_exceptions) {
  // The first error in input order is raised, after every child finished; others are logged.
  test::log_capture logs;
  std::vector<Future<int>> fs(3);
  fs[1].set_exception(std::runtime_error("error 1"));
  loop.call_later(2ms, [f = fs[2]]() mutable { f.set_exception(std::runtime_error("error 2")); });
  loop.call_later(4ms, [f = fs[0]]() mutable { f.set_result(0); });
  try {
    loop.run_sync([&] { return gen::multi_future(fs); });
    BOOST_FAIL("no throw");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) == "error 1");
  }
  BOOST_TEST(fs[0].done());
  BOOST_TEST(logs.contains("Multiple exceptions in yield list: error 2"));
}

BOOST_AUTO_TEST_CASE(multi_void) {
  std::vector<Future<void>> fs(2);
  fs[0].set_result();
  loop.call_later(1ms, [f = fs[1]]() mutable { f.set_result(); });
  loop.run_sync([&]() -> asio::awaitable<void> { co_await gen::multi(fs); });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(WithTimeoutTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_timeout) {
  Future<int> f;
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<int> {
    co_return co_await gen::with_timeout(10ms, f);
  }), tornado::TimeoutError);
  BOOST_TEST(!f.done());  // not cancelled, as Tornado
}

BOOST_AUTO_TEST_CASE(test_completes_before_timeout) {
  Future<int> f;
  loop.call_later(1ms, [&] { f.set_result(42); });
  int r = loop.run_sync([&]() -> asio::awaitable<int> { co_return co_await gen::with_timeout(1s, f); });
  BOOST_TEST(r == 42);
}

BOOST_AUTO_TEST_CASE(test_fails_before_timeout) {
  Future<int> f;
  loop.call_later(1ms, [&] { f.set_exception(std::domain_error("nope")); });
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<int> {
    co_return co_await gen::with_timeout(IOLoop::time() + 1.0, f);
  }), std::domain_error);
}

BOOST_AUTO_TEST_CASE(test_already_resolved) {
  Future<int> f;
  f.set_result(24);
  int r = loop.run_sync([&]() -> asio::awaitable<int> { co_return co_await gen::with_timeout(1s, f); });
  BOOST_TEST(r == 24);
}

BOOST_AUTO_TEST_CASE(later_failure_after_timeout_is_logged) {
  test::log_capture logs;
  Future<int> f;
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<int> {
    co_return co_await gen::with_timeout(5ms, f);
  }), tornado::TimeoutError);
  f.set_exception(std::runtime_error("too late"));
  loop.context().restart();
  poll();
  BOOST_TEST(logs.contains("Exception in Future after timeout: too late"));
}

BOOST_AUTO_TEST_CASE(asio_operation_is_cancelled_on_timeout) {
  asio::steady_timer timer(loop.context(), 1h);
  boost::system::error_code ec;
  loop.run_sync([&]() -> asio::awaitable<void> {
    co_await gen::with_timeout(5ms, timer.async_wait(asio::deferred),
                               asio::redirect_error(asio::use_awaitable, ec));
  });
  BOOST_TEST(ec == boost::system::error_code(tornado::error::timeout));
  BOOST_TEST(loop.context().poll() == 0u);  // nothing left pending: the wait was cancelled
}

BOOST_AUTO_TEST_CASE(asio_operation_completing_first) {
  asio::steady_timer timer(loop.context(), 1ms);
  loop.run_sync([&]() -> asio::awaitable<void> {
    co_await gen::with_timeout(1s, timer.async_wait(asio::deferred));
  });
}

BOOST_AUTO_TEST_CASE(outer_cancellation_cancels_the_wait) {
  Future<int> f;
  asio::cancellation_signal sig;
  std::exception_ptr got;
  gen::with_timeout(1h, f, asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, int) { got = e; }));
  poll();
  sig.emit(asio::cancellation_type::terminal);
  loop.context().run();
  BOOST_CHECK_THROW(std::rethrow_exception(got), tornado::CancelledError);
  BOOST_TEST(!f.done());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(WaitIteratorTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_empty_iterator) {
  gen::WaitIterator<int> it({});
  BOOST_TEST(it.done());
  BOOST_TEST(!it.current_index().has_value());
  BOOST_CHECK_THROW(it.next_future(), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(next_of_a_done_future_is_done_at_once) {
  // As Tornado: a future done before the iterator was made is ready for the first next().
  std::vector<Future<int>> fs(2);
  fs[1].set_result(42);
  gen::WaitIterator<int> it(fs);
  Future<int> first = it.next_future();
  BOOST_TEST(first.done());
  BOOST_TEST(first.result() == 42);
  BOOST_TEST(*it.current_index() == 1u);
  fs[0].set_result(24);
}

BOOST_AUTO_TEST_CASE(test_already_done) {
  std::vector<Future<int>> fs(3);
  fs[0].set_result(24);
  fs[1].set_result(42);
  fs[2].set_result(84);
  std::vector<std::pair<std::size_t, int>> got;
  loop.run_sync([&]() -> asio::awaitable<void> {
    gen::WaitIterator<int> it(fs);
    while (!it.done()) {
      int r = co_await it.next();
      got.emplace_back(*it.current_index(), r);
    }
  });
  BOOST_TEST(got.size() == 3u);
  BOOST_TEST(got[0].first == 0u);
  BOOST_TEST(got[0].second == 24);
  BOOST_TEST(got[2].second == 84);
}

BOOST_AUTO_TEST_CASE(test_iterator) {
  // Results in completion order, exceptions delivered in their turn.
  std::vector<Future<int>> fs(4);
  std::vector<std::string> got;
  loop.call_later(1ms, [&] { fs[3].set_result(84); });
  loop.call_later(2ms, [&] { fs[0].set_result(24); });
  loop.call_later(3ms, [&] { fs[1].set_exception(std::runtime_error("fail")); });
  loop.call_later(4ms, [&] { fs[2].set_result(42); });
  loop.run_sync([&]() -> asio::awaitable<void> {
    gen::WaitIterator<int> it(fs);
    while (!it.done()) {
      try {
        int r = co_await it.next();
        got.push_back(std::to_string(*it.current_index()) + "=" + std::to_string(r));
      } catch (const std::runtime_error& e) {
        got.push_back(std::to_string(*it.current_index()) + "!" + e.what());
      }
    }
  });
  BOOST_TEST((got == std::vector<std::string>{"3=84", "0=24", "1!fail", "2=42"}));
}

BOOST_AUTO_TEST_CASE(test_no_ref) {
  // Only the Future from next() is kept, not the iterator: it still completes.
  Future<int> f;
  loop.call_later(1ms, [&] { f.set_result(7); });
  BOOST_TEST(loop.run_sync([&]() -> asio::awaitable<int> {
    Future<int> next = gen::WaitIterator<int>({f}).next_future();
    co_return co_await gen::with_timeout(1s, next);
  }) == 7);
}

BOOST_AUTO_TEST_CASE(test_abandoned_next_loses_no_result) {
  // A next() that timed out is replaced by the next call, as Tornado's running future is: the
  // outcomes after it go to the new one, and none is lost.
  std::vector<Future<int>> fs(2);
  gen::WaitIterator<int> it(fs);
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<int> {
    co_return co_await gen::with_timeout(std::chrono::milliseconds(5), it.next_future());
  }),
                    tornado::TimeoutError);
  loop.call_later(1ms, [&] { fs[0].set_result(1); });
  loop.call_later(3ms, [&] { fs[1].set_result(2); });
  std::vector<std::pair<std::size_t, int>> got;
  loop.run_sync([&]() -> asio::awaitable<void> {
    while (!it.done()) {
      int r = co_await it.next();
      got.emplace_back(*it.current_index(), r);
    }
  });
  BOOST_TEST((got == std::vector<std::pair<std::size_t, int>>{{0, 1}, {1, 2}}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(test_cancelled_next_future) {
  // A Future from next_future() that its holder cancels takes nothing: the outcome waits for
  // the next call, and nothing is logged.
  std::vector<Future<int>> fs(1);
  gen::WaitIterator<int> it(fs);
  test::log_capture logs;
  Future<int> abandoned = it.next_future();
  abandoned.cancel();
  fs[0].set_result(1);
  poll();
  BOOST_TEST(logs.size() == 0u);
  BOOST_TEST(!it.done());
  BOOST_TEST(loop.run_sync([&]() -> asio::awaitable<int> { co_return co_await it.next(); }) == 1);
  BOOST_TEST(*it.current_index() == 0u);
  BOOST_TEST(it.done());
}

BOOST_AUTO_TEST_SUITE_END()
