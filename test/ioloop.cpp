// Tests boost/tornado/ioloop.hpp: IOLoop and PeriodicCallback (ioloop_test.py cases that
// apply, named after the Python ones).
#include <boost/tornado/ioloop.hpp>

#define BOOST_TEST_MODULE ioloop
#include "support/test.hpp"
#include <boost/tornado/gen.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/platform/asyncio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>
#include <csignal>
#include <future>
#include <thread>
#include <fcntl.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using tornado::IOLoop;
using namespace std::chrono_literals;

namespace {
struct socket_pair {
  int fds[2];
  socket_pair() { BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0); }
  ~socket_pair() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  void hang_up() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

// Registers fd for `requested`, runs the loop until the handler's first call, and returns the
// events it was given.
int first_events(IOLoop& loop, int fd, int requested) {
  int got = 0;
  loop.add_handler(fd, [&](int f, int ev) {
    got = ev;
    loop.remove_handler(f);
    loop.stop();
  }, requested);
  loop.start();
  return got;
}
} // namespace

BOOST_FIXTURE_TEST_SUITE(TestIOLoop, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_add_callback_return_sequence) {
  // Callbacks added from a callback run in FIFO order, after those already queued.
  std::vector<int> seq;
  loop.add_callback([&] {
    seq.push_back(1);
    loop.add_callback([&] { seq.push_back(3); });
  });
  loop.add_callback([&] { seq.push_back(2); });
  poll();
  BOOST_TEST((seq == std::vector<int>{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(test_add_callback_wakeup) {
  // A callback added from a timeout wakes the loop, which then stops.
  loop.call_later(1ms, [&] { loop.add_callback([&] { loop.stop(); }); });
  loop.start();
}

BOOST_AUTO_TEST_CASE(test_add_callback_wakeup_other_thread) {
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    loop.add_callback([&] { loop.stop(); });
  });
  loop.start();
  t.join();
}

BOOST_AUTO_TEST_CASE(test_add_timeout_timedelta) {
  loop.add_timeout(1ms, [&] { loop.stop(); });
  loop.start();
}

BOOST_AUTO_TEST_CASE(test_multiple_add) {
  socket_pair sp;
  loop.add_handler(sp.fds[0], [](int, int) {}, IOLoop::READ);
  BOOST_CHECK_THROW(loop.add_handler(sp.fds[0], [](int, int) {}, IOLoop::READ), std::invalid_argument);
  loop.remove_handler(sp.fds[0]);
  loop.add_handler(sp.fds[0], [](int, int) {}, IOLoop::READ);  // allowed again
  loop.remove_handler(sp.fds[0]);
}

BOOST_AUTO_TEST_CASE(test_remove_without_add) {
  socket_pair sp;
  loop.remove_handler(sp.fds[0]);  // no-op
}

BOOST_AUTO_TEST_CASE(test_add_callback_from_signal) {
  // Simulate a signal arriving: the call is async-signal-safe and delivered by start().
  bool ran = false;
  loop.add_callback_from_signal([&] {
    ran = true;
    loop.stop();
  });
  loop.start();
  BOOST_TEST(ran);
}

BOOST_AUTO_TEST_CASE(test_add_callback_from_signal_in_a_later_start) {
  // Each start() waits for signal callbacks again, not only the first one.
  loop.run_sync([] {});
  bool ran = false;
  loop.call_later(10ms, [&] {
    loop.add_callback_from_signal([&] {
      ran = true;
      loop.stop();
    });
  });
  const auto limit = loop.call_later(5s, [&] { loop.stop(); });
  loop.start();
  loop.remove_timeout(limit);
  BOOST_TEST(ran);
}

namespace {
IOLoop* signal_loop = nullptr;
volatile std::sig_atomic_t signal_seen = 0;
extern "C" void on_sigusr1(int) {
  signal_seen = 1;
  signal_loop->add_callback_from_signal([] { signal_loop->stop(); });
}
} // namespace

BOOST_AUTO_TEST_CASE(add_callback_from_real_signal_handler) {
  signal_loop = &loop;
  struct sigaction sa {}, old{};
  sa.sa_handler = on_sigusr1;
  ::sigaction(SIGUSR1, &sa, &old);
  loop.call_later(1ms, [] { ::raise(SIGUSR1); });
  loop.start();
  ::sigaction(SIGUSR1, &old, nullptr);
  BOOST_TEST(signal_seen == 1);
}

BOOST_AUTO_TEST_CASE(test_add_callback_from_signal_other_thread) {
  std::thread t([&] { loop.add_callback_from_signal([&] { loop.stop(); }); });
  loop.start();
  t.join();
}

BOOST_AUTO_TEST_CASE(test_add_callback_while_closing) {
  // Callbacks added during or after close are dropped silently.
  bool ran = false;
  loop.close();
  loop.add_callback([&] { ran = true; });
  BOOST_TEST(!ran);
  BOOST_CHECK_THROW(loop.start(), std::logic_error);
}

BOOST_AUTO_TEST_CASE(test_read_while_writeable) {
  // A socket that is both readable and writable, watched for READ, reports READ only.
  socket_pair sp;
  BOOST_REQUIRE(::write(sp.fds[1], "a", 1) == 1);
  int got = -1;
  loop.add_handler(sp.fds[0], [&](int fd, int events) {
    got = events;
    BOOST_TEST(fd == sp.fds[0]);
    loop.remove_handler(fd);
    loop.stop();
  }, IOLoop::READ);
  loop.start();
  BOOST_TEST(got == IOLoop::READ);
}

BOOST_AUTO_TEST_CASE(handler_runs_again_while_fd_stays_ready) {
  socket_pair sp;
  BOOST_REQUIRE(::write(sp.fds[1], "ab", 2) == 2);
  int calls = 0;
  loop.add_handler(sp.fds[0], [&](int fd, int) {
    if (++calls == 3) {
      loop.remove_handler(fd);
      loop.stop();
    }
  }, IOLoop::READ);
  loop.start();
  BOOST_TEST(calls == 3);
}

BOOST_AUTO_TEST_CASE(update_handler_and_write_events) {
  socket_pair sp;
  std::vector<int> events;
  loop.add_handler(sp.fds[0], [&](int fd, int ev) {
    events.push_back(ev);
    if (ev & IOLoop::WRITE) loop.update_handler(fd, IOLoop::READ);
    if (ev & IOLoop::READ) {
      loop.remove_handler(fd);
      loop.stop();
    }
  }, IOLoop::WRITE);
  loop.call_later(5ms, [&] { BOOST_REQUIRE(::write(sp.fds[1], "x", 1) == 1); });
  loop.start();
  BOOST_TEST(events.size() >= 2u);
  BOOST_TEST(events.front() == IOLoop::WRITE);
  BOOST_TEST(events.back() == IOLoop::READ);
}

BOOST_AUTO_TEST_CASE(error_reported_on_hangup_when_requested) {
  socket_pair sp;
  sp.hang_up();
  int got = first_events(loop, sp.fds[0], IOLoop::READ | IOLoop::ERROR);
  BOOST_TEST((got & IOLoop::READ));
  BOOST_TEST((got & IOLoop::ERROR));
}

BOOST_AUTO_TEST_CASE(none_on_a_hung_up_fd_does_not_spin) {
  // epoll reports the hang-up though nothing was asked for: the loop must go idle (a poll()
  // that runs nothing) instead of re-polling the descriptor forever.
  socket_pair sp;
  sp.hang_up();
  int calls = 0, got = 0;
  loop.add_handler(sp.fds[0], [&](int fd, int ev) {
    ++calls;
    got = ev;
    loop.remove_handler(fd);
    loop.stop();
  }, IOLoop::NONE);
  int passes = 0;
  while (poll() != 0 && passes < 100) ++passes;
  BOOST_TEST(passes < 100);
  BOOST_TEST(calls == 0);
  // Asking for READ (level-triggered again) reports the hang-up as readable.
  loop.update_handler(sp.fds[0], IOLoop::READ);
  loop.start();
  BOOST_TEST(calls == 1);
  BOOST_TEST(got == IOLoop::READ);
}

BOOST_AUTO_TEST_CASE(legacy_error_bit_is_accepted) {
  socket_pair sp;
  sp.hang_up();
  BOOST_TEST(first_events(loop, sp.fds[0], 0x008) == IOLoop::ERROR);
}

BOOST_AUTO_TEST_CASE(test_remove_timeout_after_fire) {
  // Removing a timeout that already ran is harmless.
  auto h = loop.add_timeout(IOLoop::time(), [&] { loop.stop(); });
  loop.start();
  loop.remove_timeout(h);
  loop.remove_timeout(tornado::TimeoutHandle());
}

BOOST_AUTO_TEST_CASE(test_remove_timeout_cleanup) {
  // Many timeouts added and removed leave nothing to run; the loop then returns from run().
  for (int i = 0; i < 2000; ++i) {
    auto h = loop.add_timeout(1h, [] { BOOST_FAIL("removed timeout ran"); });
    loop.remove_timeout(h);
  }
  loop.context().run();  // returns: nothing pending
}

BOOST_AUTO_TEST_CASE(test_remove_timeout_from_timeout) {
  // A timeout removed by another due in the same iteration does not run.
  bool calls[2] = {false, false};
  auto now = IOLoop::time();
  tornado::TimeoutHandle t2;
  loop.add_timeout(now + 0.01, [&] {
    calls[0] = true;
    loop.remove_timeout(t2);
  });
  t2 = loop.add_timeout(now + 0.01, [&] { calls[1] = true; });
  loop.add_timeout(now + 0.02, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(calls[0]);
  BOOST_TEST(!calls[1]);
}

BOOST_AUTO_TEST_CASE(test_timeout_with_arguments) {
  std::vector<int> results;
  loop.add_timeout(IOLoop::time(), [&](int x) { results.push_back(x); }, 1);
  loop.add_timeout(1ms, [&](int x) { results.push_back(x); }, 2);
  loop.call_at(IOLoop::time() + 0.002, [&](int x) { results.push_back(x); }, 3);
  loop.call_later(0.003, [&](int x) {
    results.push_back(x);
    loop.stop();
  }, 4);
  loop.start();
  BOOST_TEST((results == std::vector<int>{1, 2, 3, 4}));
}

BOOST_AUTO_TEST_CASE(test_add_timeout_return) {
  auto h = loop.add_timeout(IOLoop::time(), [] {});
  BOOST_TEST(static_cast<bool>(h));
  loop.remove_timeout(h);
}

BOOST_AUTO_TEST_CASE(test_call_at_return) {
  auto h = loop.call_at(IOLoop::time(), [] {});
  BOOST_TEST(static_cast<bool>(h));
  loop.remove_timeout(h);
}

BOOST_AUTO_TEST_CASE(test_call_later_return) {
  auto h = loop.call_later(0.0, [] {});
  BOOST_TEST(static_cast<bool>(h));
  loop.remove_timeout(h);
}

BOOST_AUTO_TEST_CASE(timeouts_run_in_deadline_then_insertion_order) {
  std::vector<int> seq;
  auto base = std::chrono::steady_clock::now() + 2ms;
  loop.add_timeout(base + 1ms, [&] { seq.push_back(3); });
  loop.add_timeout(base, [&] { seq.push_back(1); });
  loop.add_timeout(base, [&] { seq.push_back(2); });
  loop.add_timeout(base + 2ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST((seq == std::vector<int>{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(test_close_file_object) {
  // close(all_fds=true) closes registered descriptors; close() alone leaves them open.
  socket_pair a, b;
  {
    IOLoop other;
    other.add_handler(a.fds[0], [](int, int) {}, IOLoop::READ);
    other.close(true);
  }
  BOOST_TEST(::fcntl(a.fds[0], F_GETFD) == -1);
  a.fds[0] = -1;
  {
    IOLoop other;
    other.add_handler(b.fds[0], [](int, int) {}, IOLoop::READ);
    other.close();
  }
  BOOST_TEST(::fcntl(b.fds[0], F_GETFD) != -1);
}

BOOST_AUTO_TEST_CASE(test_reentrant) {
  // start() inside a running loop is an error.
  bool threw = false;
  loop.add_callback([&] {
    try {
      loop.start();
    } catch (const std::logic_error&) {
      threw = true;
    }
    loop.stop();
  });
  loop.start();
  BOOST_TEST(threw);
}

BOOST_AUTO_TEST_CASE(test_exception_logging) {
  // An exception escaping a callback is logged and the loop goes on.
  test::log_capture logs;
  loop.add_callback([] { throw std::runtime_error("oops"); });
  loop.add_callback([&] { loop.stop(); });
  loop.start();
  BOOST_TEST(logs.contains("tornado.application: Exception in callback: oops"));
}

BOOST_AUTO_TEST_CASE(test_exception_logging_future) {
  test::log_capture logs;
  loop.add_callback([&] {
    tornado::Future<int> f;
    f.set_exception(std::runtime_error("future failed"));
    return f;
  });
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(logs.contains("Exception in callback: future failed"));
}

BOOST_AUTO_TEST_CASE(test_exception_logging_native_coro) {
  test::log_capture logs;
  loop.add_callback([]() -> asio::awaitable<void> {
    co_await tornado::gen::moment();
    throw std::runtime_error("coro failed");
  });
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(logs.contains("Exception in callback: coro failed"));
}

BOOST_AUTO_TEST_CASE(test_spawn_callback) {
  // A callable, an awaitable-returning callable and an awaitable itself.
  std::vector<int> seq;
  loop.spawn_callback([&](int x) { seq.push_back(x); }, 1);
  loop.spawn_callback([&]() -> asio::awaitable<void> {
    seq.push_back(2);
    co_return;
  });
  auto aw = [](std::vector<int>& s) -> asio::awaitable<void> {
    s.push_back(3);
    co_return;
  };
  loop.spawn_callback(aw(seq));
  poll();
  BOOST_TEST((seq == std::vector<int>{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(coroutine_callbacks_keep_their_captures) {
  // A coroutine lambda's captures live in the lambda, not in the coroutine's frame. Tornado
  // keeps a callback alive while the coroutine it returned runs; so must the loop, for every
  // way a callback is given: add_callback, spawn_callback, call_later, add_future.
  std::vector<std::string> seen;
  auto make = [&seen](std::string tag) {
    return [&seen, tag = std::string(100, 'x') + tag]() -> asio::awaitable<void> {
      co_await tornado::gen::moment();  // the loop is done with the callback by now
      seen.push_back(tag);
    };
  };
  loop.add_callback(make("a"));
  loop.spawn_callback(make("b"));
  loop.call_later(0ms, make("c"));
  tornado::Future<int> f(loop.get_executor());
  loop.add_future(f, [&seen, tag = std::string(100, 'x') + "d"](tornado::Future<int>) -> asio::awaitable<void> {
    co_await tornado::gen::moment();
    seen.push_back(tag);
  });
  f.set_result(1);
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.start();
  std::sort(seen.begin(), seen.end());
  const std::string x(100, 'x');
  BOOST_TEST((seen == std::vector<std::string>{x + "a", x + "b", x + "c", x + "d"}));
}

BOOST_AUTO_TEST_CASE(test_remove_handler_from_handler) {
  // Two ready descriptors: the first handler to run removes the other, which must not run.
  socket_pair a, b;
  BOOST_REQUIRE(::write(a.fds[1], "x", 1) == 1);
  BOOST_REQUIRE(::write(b.fds[1], "x", 1) == 1);
  int calls = 0;
  auto handler = [&](int fd, int) {
    ++calls;
    loop.remove_handler(a.fds[0]);
    loop.remove_handler(b.fds[0]);
    (void)fd;
  };
  loop.add_handler(a.fds[0], handler, IOLoop::READ);
  loop.add_handler(b.fds[0], handler, IOLoop::READ);
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(test_explicit_asyncio_loop) {
  // An IOLoop over an io_context that already has one is refused.
  asio::io_context ctx;
  tornado::AsyncIOMainLoop first(ctx);
  BOOST_CHECK_THROW(IOLoop second(ctx), std::logic_error);
  BOOST_TEST(IOLoop::from(ctx) == &first);
}

BOOST_AUTO_TEST_CASE(constructor_makes_the_loop_current) {
  IOLoop other;
  BOOST_TEST(&IOLoop::current() == &other);
  IOLoop quiet(false);
  BOOST_TEST(&IOLoop::current() == &other);
}

BOOST_AUTO_TEST_CASE(stop_before_start_runs_one_pass) {
  bool ran = false;
  loop.add_callback([&] { ran = true; });
  loop.stop();
  loop.start();  // returns after one pass
  BOOST_TEST(ran);
}

BOOST_AUTO_TEST_CASE(stop_from_another_thread_as_start_begins) {
  // A stop() from another thread that sees the loop running must end that run, however early
  // in start() it lands (it used to be undone by start()'s restart of the io_context).
  for (int i = 0; i < 200; ++i) {
    IOLoop racing(false);
    std::thread stopper([&] {
      while (!racing.running()) std::this_thread::yield();
      racing.stop();
    });
    auto run = std::async(std::launch::async, [&] { racing.start(); });
    const bool hung = run.wait_for(5s) == std::future_status::timeout;
    BOOST_TEST(!hung, "start() missed a stop() at iteration " << i);
    if (hung) racing.add_callback([&] { racing.stop(); });
    run.get();
    stopper.join();
  }
}

BOOST_AUTO_TEST_CASE(stop_before_start_one_pass_ends) {
  // What the pass adds waits for the next start(): a callback that adds itself again runs
  // once per pass instead of holding start() forever.
  int runs = 0;
  std::function<void()> again = [&] {
    ++runs;
    loop.add_callback(again);
  };
  loop.add_callback(again);
  loop.stop();
  loop.start();
  BOOST_TEST(runs == 1);
  loop.stop();
  loop.start();
  BOOST_TEST(runs == 2);
}

BOOST_AUTO_TEST_CASE(cancellation_in_a_callback_is_not_logged) {
  // As Tornado's _run_callback: a CancelledError from a callback, from the coroutine it
  // spawns or from the Future it returns is passed over; another error is logged.
  test::log_capture logs;
  tornado::Future<void> f;
  loop.spawn_callback([f]() -> asio::awaitable<void> { co_await f.async_wait(); });
  loop.add_callback([] { throw tornado::CancelledError(); });
  loop.add_callback([f]() mutable {
    f.cancel();
    return f;
  });
  poll();
  poll();
  BOOST_TEST(logs.size() == 0u);
  loop.add_callback([] { throw std::runtime_error("boom"); });
  poll();
  BOOST_TEST(logs.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(TestIOLoopCurrent)

BOOST_AUTO_TEST_CASE(test_default_current) {
  IOLoop::clear_current();
  std::thread([] {
    IOLoop& a = IOLoop::current();
    BOOST_TEST(&IOLoop::current() == &a);
    BOOST_TEST(&IOLoop::instance() == &a);
    BOOST_TEST(IOLoop::current(false) == &a);
  }).join();
}

BOOST_AUTO_TEST_CASE(test_non_current) {
  IOLoop::clear_current();
  IOLoop loop(false);
  BOOST_TEST(IOLoop::current(false) == nullptr);
  IOLoop* seen = nullptr;
  loop.add_callback([&] {
    seen = IOLoop::current(false);
    loop.stop();
  });
  loop.start();
  BOOST_TEST(seen == &loop);
  BOOST_TEST(IOLoop::current(false) == nullptr);
  // While its io_context runs on this thread (not through start()), it is current too.
  loop.add_callback([&] { seen = IOLoop::current(false); });
  seen = nullptr;
  loop.context().restart();
  loop.context().poll();
  BOOST_TEST(seen == &loop);
}

BOOST_AUTO_TEST_CASE(test_force_current) {
  IOLoop::clear_current();
  IOLoop loop(false);
  BOOST_TEST(IOLoop::current(false) == nullptr);
  loop.make_current();
  BOOST_TEST(&IOLoop::current() == &loop);
  IOLoop::clear_current();
  BOOST_TEST(IOLoop::current(false) == nullptr);
}

BOOST_AUTO_TEST_CASE(test_clear_without_current) {
  IOLoop::clear_current();
  IOLoop::clear_current();
  BOOST_TEST(IOLoop::current(false) == nullptr);
}

BOOST_AUTO_TEST_CASE(configure_chooses_what_current_creates) {
  IOLoop::configure([] { return std::unique_ptr<IOLoop>(new tornado::AsyncIOLoop()); });
  std::thread([] {
    BOOST_TEST(dynamic_cast<tornado::AsyncIOLoop*>(&IOLoop::current()) != nullptr);
  }).join();
  IOLoop::configure({});
  std::thread([] {
    BOOST_TEST(dynamic_cast<tornado::AsyncIOLoop*>(&IOLoop::current()) == nullptr);
  }).join();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(TestIOLoopFutures, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_add_future_threads) {
  // Futures set from other threads; add_future callbacks run on the loop thread.
  std::vector<tornado::Future<int>> futures;
  for (int i = 0; i < 2; ++i) futures.emplace_back();
  int done = 0;
  for (auto& f : futures)
    loop.add_future(f, [&](tornado::Future<int> r) {
      BOOST_TEST(r.done());
      if (++done == 2) loop.stop();
    });
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([f = futures[i], i]() mutable { f.set_result(i); });
  loop.start();
  for (auto& t : threads) t.join();
  BOOST_TEST(done == 2);
}

BOOST_AUTO_TEST_CASE(test_run_in_executor_native) {
  // Two tasks run in the default pool at once and meet on events.
  std::atomic<int> step{0};
  auto sync_func = [&](int wait_for, int set) {
    while (step.load() < wait_for) std::this_thread::sleep_for(1ms);
    step.store(set);
    return set;
  };
  auto res = loop.run_sync([&]() -> asio::awaitable<int> {
    auto a = loop.run_in_executor(nullptr, sync_func, 1, 2);
    auto b = loop.run_in_executor(nullptr, sync_func, 0, 1);
    int x = co_await a.async_wait();
    int y = co_await b.async_wait();
    co_return x * 10 + y;
  });
  BOOST_TEST(res == 21);
}

BOOST_AUTO_TEST_CASE(test_set_default_executor) {
  asio::thread_pool pool(1);
  std::thread::id pool_thread;
  asio::post(pool, [&] { pool_thread = std::this_thread::get_id(); });
  pool.wait();
  asio::thread_pool other(1);
  loop.set_default_executor(other.get_executor());
  std::thread::id ran_on;
  loop.run_sync([&] { return loop.run_in_executor(nullptr, [&] { ran_on = std::this_thread::get_id(); }); });
  BOOST_TEST((ran_on != std::this_thread::get_id()));
  loop.set_default_executor(tornado::dummy_executor);
  loop.run_sync([&] { return loop.run_in_executor(nullptr, [&] { ran_on = std::this_thread::get_id(); }); });
  BOOST_TEST((ran_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(TestIOLoopRunSync, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_sync_result) {
  BOOST_TEST(loop.run_sync([] { return 42; }) == 42);
}

BOOST_AUTO_TEST_CASE(test_sync_exception) {
  BOOST_CHECK_THROW(loop.run_sync([]() -> int { throw std::domain_error("x"); }), std::domain_error);
}

BOOST_AUTO_TEST_CASE(test_async_result) {
  int r = loop.run_sync([]() -> asio::awaitable<int> {
    co_await tornado::gen::moment();
    co_return 42;
  });
  BOOST_TEST(r == 42);
}

BOOST_AUTO_TEST_CASE(test_async_exception) {
  BOOST_CHECK_THROW(loop.run_sync([]() -> asio::awaitable<void> {
    co_await tornado::gen::moment();
    throw std::domain_error("x");
  }), std::domain_error);
}

BOOST_AUTO_TEST_CASE(test_work_started_after_run_sync_returned) {
  // A stop already queued ends run_sync before its work starts (loop_stopped). The work runs
  // at the next start(), when run_sync's frame is gone: it must use nothing from there.
  tornado::Future<int> f;
  bool called = false;
  loop.add_callback([&] { loop.stop(); });
  BOOST_CHECK_THROW(loop.run_sync([&] {
    called = true;
    return f;
  }),
                    boost::system::system_error);
  BOOST_TEST(!called);
  loop.add_callback([&] { loop.stop(); });
  loop.start();
  BOOST_TEST(called);
  f.set_result(1);  // the work waits for it: let it finish
  poll();
}

BOOST_AUTO_TEST_CASE(test_current) {
  IOLoop::clear_current();
  IOLoop* seen = nullptr;
  loop.run_sync([&] { seen = &IOLoop::current(); });
  BOOST_TEST(seen == &loop);
}

BOOST_AUTO_TEST_CASE(test_timeout) {
  bool cancelled = false;
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<void> {
    try {
      co_await tornado::gen::sleep(1s);
    } catch (const tornado::CancelledError&) {
      cancelled = true;
      throw;
    }
  }, 0.01), tornado::TimeoutError);
  BOOST_TEST(cancelled);
}

BOOST_AUTO_TEST_CASE(timeout_on_future_cancels_it) {
  tornado::Future<int> f;
  BOOST_CHECK_THROW(loop.run_sync([&] { return f; }, 10ms), tornado::TimeoutError);
  BOOST_TEST(f.cancelled());
}

BOOST_AUTO_TEST_CASE(test_native_coroutine) {
  auto f2 = []() -> asio::awaitable<int> { co_return 7; };
  auto f1 = [&]() -> asio::awaitable<int> { co_return co_await f2() * 6; };
  BOOST_TEST(loop.run_sync(f1) == 42);
}

BOOST_AUTO_TEST_CASE(loop_stopped_first_is_a_clear_error) {
  try {
    loop.run_sync([&]() -> asio::awaitable<void> {
      loop.stop();
      co_await tornado::gen::sleep(1s);
    });
    BOOST_FAIL("no throw");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(e.code() == boost::system::error_code(tornado::error::loop_stopped));
  }
  loop.close();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(TestPeriodicCallbackMath)

namespace {
std::vector<double> simulate_calls(tornado::detail::periodic_schedule& pc,
                                   const std::vector<double>& durations,
                                   std::vector<double> randoms = {}) {
  std::vector<double> calls;
  double now = 1000;
  pc.next_timeout = now;
  for (std::size_t i = 0; i < durations.size(); ++i) {
    pc.update_next(now, randoms.empty() ? 0.5 : randoms[i]);
    calls.push_back(pc.next_timeout);
    now = pc.next_timeout + durations[i];
  }
  return calls;
}
} // namespace

BOOST_AUTO_TEST_CASE(test_basic) {
  tornado::detail::periodic_schedule pc{10000};
  BOOST_TEST(simulate_calls(pc, {0, 0, 0, 0, 0}) == (std::vector<double>{1010, 1020, 1030, 1040, 1050}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(test_overrun) {
  tornado::detail::periodic_schedule pc{10000};
  std::vector<double> expected{1010, 1020, 1030, 1050, 1070, 1100, 1130, 1170, 1210, 1220, 1230};
  BOOST_TEST(simulate_calls(pc, {9, 9, 10, 11, 20, 20, 35, 35, 0, 0, 0}) == expected,
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(test_clock_backwards) {
  tornado::detail::periodic_schedule pc{10000};
  BOOST_TEST(simulate_calls(pc, {-2, -1, -3, -2, 0}) == (std::vector<double>{1010, 1020, 1030, 1040, 1050}),
             boost::test_tools::per_element());
  BOOST_TEST(simulate_calls(pc, {-100, 0, 0}) == (std::vector<double>{1010, 1020, 1030}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(test_jitter) {
  tornado::detail::periodic_schedule pc{10000, 0.5};
  std::vector<double> expected{1010, 1022.5, 1030, 1041.25};
  BOOST_TEST(simulate_calls(pc, {0, 0, 0, 0}, {0.5, 1, 0, 0.75}) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(test_timedelta) {
  tornado::PeriodicCallback pc([] {}, std::chrono::minutes(1) + std::chrono::seconds(23));
  BOOST_TEST(pc.callback_time() == 83000);
}

BOOST_AUTO_TEST_CASE(non_positive_callback_time_is_an_error) {
  BOOST_CHECK_THROW(tornado::PeriodicCallback([] {}, 0.0), std::invalid_argument);
  BOOST_CHECK_THROW(tornado::PeriodicCallback([] {}, -5.0), std::invalid_argument);
  BOOST_CHECK_THROW(tornado::PeriodicCallback([] {}, std::chrono::milliseconds(0)), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(TestPeriodicCallbackAsync, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_periodic_plain) {
  int count = 0;
  tornado::PeriodicCallback pc([&] {
    if (++count == 3) loop.stop();
  }, 10.0);
  BOOST_TEST(!pc.is_running());
  pc.start();
  BOOST_TEST(pc.is_running());
  double t0 = IOLoop::time();
  loop.start();
  pc.stop();
  BOOST_TEST(!pc.is_running());
  BOOST_TEST(count == 3);
  BOOST_TEST(IOLoop::time() - t0 >= 0.029);  // first run at start + period
}

BOOST_AUTO_TEST_CASE(test_periodic_outlives_its_loop) {
  // A PeriodicCallback started on a loop that is destroyed first (a thread's current loop, with
  // the callback a global, say) stops and is destroyed without touching the dead loop.
  int calls = 0;
  auto pc = std::make_unique<tornado::PeriodicCallback>([&] { ++calls; }, 1.0);
  {
    IOLoop inner;
    pc->start();
  }
  pc->stop();
  BOOST_TEST(!pc->is_running());
  loop.make_current();
  pc->start();  // on the fixture's loop
  pc.reset();   // stops it, removing its timeout from that loop
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(test_periodic_coro) {
  // An awaitable callback is awaited before the next run is scheduled: runs never overlap.
  std::vector<double> calls;
  bool running = false;
  bool overlapped = false;
  tornado::PeriodicCallback pc([&]() -> asio::awaitable<void> {
    if (running) overlapped = true;
    running = true;
    calls.push_back(IOLoop::time());
    co_await tornado::gen::sleep(15ms);  // longer than the period
    running = false;
    if (calls.size() == 3) loop.stop();
  }, 10.0);
  pc.start();
  loop.start();
  pc.stop();
  BOOST_TEST(calls.size() == 3u);
  BOOST_TEST(!overlapped);
}

BOOST_AUTO_TEST_CASE(periodic_coro_outlives_its_periodic_callback) {
  // Destroyed while a run is suspended: the run is left to finish (see the reference), and
  // the lambda it came from, with its captures, lives until then.
  tornado::Event go;
  std::string seen;
  auto pc = std::make_unique<tornado::PeriodicCallback>(
      [&go, &seen, tag = std::string(100, 'x')]() -> asio::awaitable<void> {
        co_await go.wait();
        seen = tag;
      },
      1.0);
  pc->start();
  loop.call_later(5ms, [&] {
    pc.reset();
    go.set();
  });
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(seen == std::string(100, 'x'));
}

BOOST_AUTO_TEST_CASE(periodic_coro_ending_after_its_loop) {
  // The application's io_context outlives the loop, and a coroutine run ends after the loop
  // is gone: no next run is scheduled on the dead loop.
  asio::io_context ctx;
  auto main_loop = std::make_unique<tornado::AsyncIOMainLoop>(ctx);
  tornado::Event go;
  int runs = 0;
  tornado::PeriodicCallback pc([&]() -> asio::awaitable<void> {
    ++runs;
    co_await go.wait();
  }, 1.0);
  pc.start();
  while (runs == 0) ctx.run_one();
  main_loop.reset();
  go.set();
  ctx.restart();
  ctx.run();
  BOOST_TEST(runs == 1);
  BOOST_TEST(pc.is_running());  // nobody stopped it; it has no loop left to run on
  loop.make_current();
}

BOOST_AUTO_TEST_CASE(stop_inside_callback_prevents_next_run) {
  int count = 0;
  tornado::PeriodicCallback* self = nullptr;
  tornado::PeriodicCallback pc([&] {
    ++count;
    self->stop();
  }, 1.0);
  self = &pc;
  pc.start();
  loop.call_later(30ms, [&] { loop.stop(); });
  loop.start();
  BOOST_TEST(count == 1);
}

BOOST_AUTO_TEST_CASE(exception_in_periodic_callback_is_logged_and_it_goes_on) {
  test::log_capture logs;
  int count = 0;
  tornado::PeriodicCallback pc([&] {
    if (++count == 2) loop.stop();
    throw std::runtime_error("periodic");
  }, 1.0);
  pc.start();
  loop.start();
  BOOST_TEST(count == 2);
  BOOST_TEST(logs.contains("Exception in callback: periodic"));
}

BOOST_AUTO_TEST_SUITE_END()
