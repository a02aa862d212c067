// Tests boost/tornado/concurrent.hpp: Future and the tornado.concurrent helpers
// (concurrent_test.py cases that apply, named after the Python ones).
#include <boost/tornado/concurrent.hpp>

#define BOOST_TEST_MODULE concurrent
#include "support/test.hpp"
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <thread>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using tornado::Future;
using namespace std::chrono_literals;

BOOST_FIXTURE_TEST_SUITE(future, test::loop_fixture)

BOOST_AUTO_TEST_CASE(result_when_done) {
  Future<int> f;
  BOOST_TEST(!f.done());
  f.set_result(3);
  BOOST_TEST(f.done());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.result() == 3);
  BOOST_TEST(!f.exception());
}

BOOST_AUTO_TEST_CASE(result_not_ready_is_invalid_state) {
  Future<int> f;
  BOOST_CHECK_THROW(f.result(), tornado::InvalidStateError);
  BOOST_CHECK_THROW(f.exception(), tornado::InvalidStateError);
}

BOOST_AUTO_TEST_CASE(set_twice_is_invalid_state) {
  Future<int> f;
  f.set_result(1);
  BOOST_CHECK_THROW(f.set_result(2), tornado::InvalidStateError);
  BOOST_CHECK_THROW(f.set_exception(std::runtime_error("x")), tornado::InvalidStateError);
  BOOST_TEST(f.result() == 1);
}

BOOST_AUTO_TEST_CASE(exception_rethrown_by_result) {
  Future<int> f;
  f.set_exception(std::runtime_error("boom"));
  BOOST_CHECK_THROW(f.result(), std::runtime_error);
  BOOST_TEST(static_cast<bool>(f.exception()));
}

BOOST_AUTO_TEST_CASE(cancel) {
  Future<int> f;
  BOOST_TEST(f.cancel());
  BOOST_TEST(f.cancelled());
  BOOST_TEST(f.done());
  BOOST_CHECK_THROW(f.result(), tornado::CancelledError);
  BOOST_CHECK_THROW(f.exception(), tornado::CancelledError);
  BOOST_TEST(!f.cancel());
  Future<int> g;
  g.set_result(1);
  BOOST_TEST(!g.cancel());
}

BOOST_AUTO_TEST_CASE(void_future) {
  Future<void> f;
  f.set_result();
  BOOST_TEST(f.done());
  f.result();
}

BOOST_AUTO_TEST_CASE(done_callback_never_runs_inside_set_result) {
  Future<int> f;
  std::vector<int> seq;
  f.add_done_callback([&](Future<int> done) { seq.push_back(done.result()); });
  f.set_result(5);
  BOOST_TEST(seq.empty());
  poll();
  BOOST_TEST(seq == std::vector<int>{5});
  // Added after completion: still scheduled, not run inline.
  f.add_done_callback([&](Future<int>) { seq.push_back(6); });
  BOOST_TEST(seq.size() == 1u);
  poll();
  BOOST_TEST((seq == std::vector<int>{5, 6}));
}

BOOST_AUTO_TEST_CASE(done_callbacks_run_in_order) {
  Future<void> f;
  std::vector<int> seq;
  for (int i = 0; i < 5; ++i) f.add_done_callback([&, i](Future<void>) { seq.push_back(i); });
  f.cancel();
  poll();
  BOOST_TEST((seq == std::vector<int>{0, 1, 2, 3, 4}));
}

BOOST_AUTO_TEST_CASE(waiters_and_done_callbacks_run_in_registration_order) {
  Future<int> f;
  std::vector<std::string> seq;
  f.add_done_callback([&](Future<int>) { seq.push_back("cb1"); });
  f.async_wait([&](std::exception_ptr, int) { seq.push_back("wait"); });
  f.add_done_callback([&](Future<int>) { seq.push_back("cb2"); });
  loop.add_callback([&] { f.set_result(1); });
  poll();
  poll();
  BOOST_TEST((seq == std::vector<std::string>{"cb1", "wait", "cb2"}));
}

BOOST_AUTO_TEST_CASE(callbacks_added_after_an_off_loop_result_run_in_order) {
  // Settled while the loop is not running, the Future delivers later; a callback or waiter
  // added meanwhile still runs after those registered before.
  Future<int> f;
  std::vector<std::string> seq;
  f.add_done_callback([&](Future<int>) { seq.push_back("cb1"); });
  f.set_result(0);
  f.add_done_callback([&](Future<int>) { seq.push_back("cb2"); });
  f.async_wait([&](std::exception_ptr, int) { seq.push_back("wait"); });
  poll();
  poll();
  BOOST_TEST((seq == std::vector<std::string>{"cb1", "cb2", "wait"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(lazy_wait_outlives_every_other_handle) {
  // A deferred wait keeps the Future alive until it runs.
  auto op = [] {
    Future<int> only;
    only.set_result(5);
    return only.async_wait(asio::deferred);
  }();
  Future<int> other;
  other.set_result(7);
  int got = 0;
  std::move(op)([&](std::exception_ptr, int v) { got = v; });
  poll();
  BOOST_TEST(got == 5);
}

BOOST_AUTO_TEST_CASE(exception_in_done_callback_is_logged) {
  test::log_capture logs;
  Future<int> f;
  f.add_done_callback([](Future<int>) { throw std::runtime_error("cb failed"); });
  f.set_result(1);
  poll();
  BOOST_TEST(logs.contains("Exception in callback: cb failed"));
}

BOOST_AUTO_TEST_CASE(await_result_in_coroutine) {
  Future<int> f;
  int got = 0;
  asio::co_spawn(loop.context(), [&]() -> asio::awaitable<void> { got = co_await f.async_wait(); },
                 asio::detached);
  poll();
  BOOST_TEST(got == 0);
  f.set_result(42);
  BOOST_TEST(got == 0);  // resumption is posted
  poll();
  BOOST_TEST(got == 42);
}

BOOST_AUTO_TEST_CASE(await_exception_in_coroutine) {
  Future<int> f;
  std::string what;
  asio::co_spawn(loop.context(), [&]() -> asio::awaitable<void> {
    try {
      co_await f.async_wait();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
  }, asio::detached);
  poll();
  f.set_exception(std::runtime_error("bad"));
  poll();
  BOOST_TEST(what == "bad");
}

BOOST_AUTO_TEST_CASE(await_cancelled_future_throws_cancelled_error) {
  Future<void> f;
  bool cancelled = false;
  asio::co_spawn(loop.context(), [&]() -> asio::awaitable<void> {
    try {
      co_await f.async_wait();
    } catch (const tornado::CancelledError&) {
      cancelled = true;
    }
  }, asio::detached);
  poll();
  f.cancel();
  poll();
  BOOST_TEST(cancelled);
}

BOOST_AUTO_TEST_CASE(await_already_done_future) {
  Future<int> f;
  f.set_result(8);
  int got = 0;
  asio::co_spawn(loop.context(), [&]() -> asio::awaitable<void> { got = co_await f.async_wait(); },
                 asio::detached);
  poll();
  BOOST_TEST(got == 8);
}

BOOST_AUTO_TEST_CASE(several_waiters_all_get_the_result) {
  Future<int> f;
  int sum = 0;
  for (int i = 0; i < 3; ++i)
    f.async_wait([&](std::exception_ptr e, int v) {
      BOOST_TEST(!e);
      sum += v;
    });
  f.set_result(2);
  BOOST_TEST(sum == 0);
  poll();
  BOOST_TEST(sum == 6);
}

BOOST_AUTO_TEST_CASE(wait_cancellation_leaves_future_pending) {
  Future<int> f;
  asio::cancellation_signal sig;
  std::exception_ptr got;
  bool called = false;
  f.async_wait(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, int) {
    called = true;
    got = e;
  }));
  poll();
  sig.emit(asio::cancellation_type::terminal);
  BOOST_TEST(!called);  // posted
  poll();
  BOOST_TEST(called);
  BOOST_CHECK_THROW(std::rethrow_exception(got), tornado::CancelledError);
  BOOST_TEST(!f.done());
  f.set_result(1);  // no waiter left: nothing else runs
  poll();
}

BOOST_AUTO_TEST_CASE(each_cancellation_type_cancels_the_wait) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    Future<int> f;
    asio::cancellation_signal sig;
    std::exception_ptr got;
    f.async_wait(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, int) { got = e; }));
    sig.emit(type);
    poll();
    BOOST_CHECK_THROW(std::rethrow_exception(got), tornado::CancelledError);
  }
}

namespace {
template <class T>
struct counting_allocator {
  using value_type = T;
  int* count;
  explicit counting_allocator(int* c) noexcept : count(c) {}
  template <class U>
  counting_allocator(const counting_allocator<U>& o) noexcept : count(o.count) {}
  T* allocate(std::size_t n) {
    ++*count;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const counting_allocator<U>& o) const noexcept { return count == o.count; }
};
} // namespace

BOOST_AUTO_TEST_CASE(wait_uses_the_handlers_allocator) {
  Future<int> f;
  int allocations = 0;
  int got = 0;
  f.async_wait(asio::bind_allocator(counting_allocator<void>(&allocations),
                                    [&](std::exception_ptr, int v) { got = v; }));
  BOOST_TEST(allocations >= 1);  // the waiting node
  loop.add_callback([&] { f.set_result(3); });
  poll();
  poll();
  BOOST_TEST(got == 3);
}

BOOST_AUTO_TEST_CASE(cancel_after_completion_is_harmless) {
  Future<int> f;
  asio::cancellation_signal sig;
  int calls = 0;
  f.async_wait(asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, int v) {
    ++calls;
    BOOST_TEST(!e);
    BOOST_TEST(v == 4);
  }));
  loop.add_callback([&] {
    f.set_result(4);  // on the loop thread: the waiter is completed at once
    sig.emit(asio::cancellation_type::terminal);  // slot already cleared
  });
  poll();
  poll();
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(destroyed_with_waiter_pending) {
  // The waiting handler is destroyed without being called; nothing leaks (ASan checks).
  bool called = false;
  {
    Future<int> f;
    f.async_wait([&](std::exception_ptr, int) { called = true; });
  }
  poll();
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(set_result_from_other_thread_delivers_on_loop) {
  Future<int> f;
  std::thread::id waiter_thread;
  int got = 0;
  f.async_wait([&](std::exception_ptr, int v) {
    got = v;
    waiter_thread = std::this_thread::get_id();
    loop.stop();
  });
  std::thread t([f]() mutable { f.set_result(17); });
  loop.start();
  t.join();
  BOOST_TEST(got == 17);
  BOOST_TEST((waiter_thread == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(many_threads_settle_many_futures) {
  // 4 threads settle 4000 futures (some cancelled by the loop meanwhile) while coroutines
  // await them on the loop thread; run under ThreadSanitizer in CI.
  constexpr int per_thread = 1000, threads = 4;
  std::vector<Future<int>> futures;
  for (int i = 0; i < per_thread * threads; ++i) futures.emplace_back(loop.get_executor());
  long long sum = 0;
  int finished = 0;
  for (auto& f : futures) {
    asio::co_spawn(loop.context(), [&, f]() -> asio::awaitable<void> {
      try {
        sum += co_await f.async_wait();
      } catch (const tornado::CancelledError&) {
      }
      if (++finished == per_thread * threads) loop.stop();
    }, asio::detached);
  }
  for (int i = 0; i < per_thread * threads; i += 7) loop.add_callback([f = futures[i]]() mutable { f.cancel(); });
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto f = futures[t * per_thread + i];
        tornado::future_set_result_unless_cancelled(f, 1);
        loop.add_callback([] {});
      }
    });
  loop.start();
  for (auto& th : pool) th.join();
  BOOST_TEST(finished == per_thread * threads);
  BOOST_TEST(sum <= per_thread * threads);
  BOOST_TEST(sum > 0);
}

BOOST_AUTO_TEST_CASE(test_future_set_result_unless_cancelled) {
  Future<int> fut;
  tornado::future_set_result_unless_cancelled(fut, 42);
  BOOST_TEST(fut.result() == 42);
  BOOST_TEST(!fut.cancelled());

  Future<int> c;
  c.cancel();
  BOOST_TEST(c.cancelled());
  tornado::future_set_result_unless_cancelled(c, 42);
  BOOST_TEST(c.cancelled());
}

BOOST_AUTO_TEST_CASE(future_set_exception_unless_cancelled_logs_when_cancelled) {
  test::log_capture logs;
  Future<int> c;
  c.cancel();
  tornado::future_set_exception_unless_cancelled(c, std::make_exception_ptr(std::runtime_error("late")));
  BOOST_TEST(c.cancelled());
  BOOST_TEST(logs.contains("Exception after Future was cancelled: late"));
}

BOOST_AUTO_TEST_CASE(chain_future_copies_result_and_exception) {
  Future<int> a, b, c, d;
  tornado::chain_future(a, b);
  tornado::chain_future(c, d);
  a.set_result(3);
  c.set_exception(std::runtime_error("e"));
  poll();
  BOOST_TEST(b.result() == 3);
  BOOST_CHECK_THROW(d.result(), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(future_add_done_callback_runs_at_once_when_done) {
  Future<int> f;
  f.set_result(1);
  bool ran = false;
  tornado::future_add_done_callback(f, [&](Future<int>&) { ran = true; });
  BOOST_TEST(ran);
  Future<int> g;
  bool ran2 = false;
  tornado::future_add_done_callback(g, [&](Future<int>) { ran2 = true; });
  g.set_result(1);
  BOOST_TEST(!ran2);
  poll();
  BOOST_TEST(ran2);
}

BOOST_AUTO_TEST_CASE(is_future_trait) {
  BOOST_TEST(tornado::is_future_v<Future<int>>);
  BOOST_TEST(tornado::is_future_v<const Future<void>&>);
  BOOST_TEST(!tornado::is_future_v<int>);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(run_on_executor_test, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_call_with_no_args) {
  asio::thread_pool pool(1);
  auto f = tornado::run_on_executor(pool.get_executor(), [] { return 42; });
  int answer = loop.run_sync([&] { return f(); });
  BOOST_TEST(answer == 42);
}

BOOST_AUTO_TEST_CASE(test_call_with_executor) {
  asio::thread_pool pool(1);
  auto f = tornado::run_on_executor(pool.get_executor(), [](int a, int b) { return a * b; });
  BOOST_TEST(loop.run_sync([&] { return f(6, 7); }) == 42);
}

BOOST_AUTO_TEST_CASE(test_async_await) {
  asio::thread_pool pool(1);
  auto f = tornado::run_on_executor(pool.get_executor(), [] { return 42; });
  int answer = loop.run_sync([&]() -> asio::awaitable<int> { co_return co_await f().async_wait(); });
  BOOST_TEST(answer == 42);
}

BOOST_AUTO_TEST_CASE(dummy_executor_runs_inline) {
  std::thread::id ran_on;
  auto fut = loop.run_in_executor(tornado::dummy_executor, [&] {
    ran_on = std::this_thread::get_id();
    return 5;
  });
  BOOST_TEST((ran_on == std::this_thread::get_id()));
  BOOST_TEST(fut.done());
  BOOST_TEST(fut.result() == 5);
}

BOOST_AUTO_TEST_CASE(run_in_executor_exception) {
  asio::thread_pool pool(1);
  auto fut = loop.run_in_executor(pool.get_executor(), []() -> int { throw std::runtime_error("worker"); });
  BOOST_CHECK_THROW(loop.run_sync([&] { return fut; }), std::runtime_error);
}

BOOST_AUTO_TEST_SUITE_END()
