// Tests boost/tornado/platform/asyncio.hpp (asyncio_test.py cases that apply).
#include <boost/tornado/platform/asyncio.hpp>

#define BOOST_TEST_MODULE platform_asyncio
#include "support/test.hpp"
#include <boost/tornado/gen.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sys/resource.h>
#include <unistd.h>
#include <memory>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using tornado::Future;
using tornado::IOLoop;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(test_asyncio_callback) {
  // Plain Asio work posted to the io_context interleaves with the IOLoop's callbacks.
  tornado::AsyncIOLoop loop;
  bool posted = false;
  asio::post(loop.asio_loop(), [&] {
    posted = true;
    loop.stop();
  });
  loop.start();
  BOOST_TEST(posted);
}

BOOST_AUTO_TEST_CASE(main_loop_driven_by_the_application) {
  // The application owns and runs its io_context; the IOLoop rides along.
  asio::io_context ctx;
  tornado::AsyncIOMainLoop loop(ctx);
  BOOST_TEST(&loop.asio_loop() == &ctx);
  std::vector<int> seq;
  loop.add_callback([&] {
    seq.push_back(1);
    BOOST_TEST(&IOLoop::current() == &loop);
  });
  loop.call_later(1ms, [&] { seq.push_back(2); });
  ctx.run();
  BOOST_TEST((seq == std::vector<int>{1, 2}));
}

BOOST_AUTO_TEST_CASE(stop_inside_the_applications_run) {
  // stop() from a callback run by the application's io_context::run() ends that run, and
  // leaves no stop pending for a later start()/run_sync().
  asio::io_context ctx;
  tornado::AsyncIOMainLoop loop(ctx);
  bool after = false;
  loop.add_callback([&] { loop.stop(); });
  loop.add_callback([&] { after = true; });
  ctx.run();
  BOOST_TEST(!after);  // queued work stays for the next run
  int r = loop.run_sync([]() -> asio::awaitable<int> {
    co_await tornado::gen::sleep(1ms);
    co_return 3;
  });
  BOOST_TEST(r == 3);
  BOOST_TEST(after);
}

BOOST_AUTO_TEST_CASE(test_asyncio_future) {
  // An Asio operation and an awaitable as Futures; a Future as an Asio operation.
  tornado::AsyncIOLoop loop;
  loop.make_current();
  int r = loop.run_sync([&]() -> asio::awaitable<int> {
    asio::steady_timer timer(loop.asio_loop(), 1ms);
    Future<void> waited = tornado::to_tornado_future(timer.async_wait(asio::deferred));
    co_await waited.async_wait();
    Future<int> x = tornado::to_tornado_future([]() -> asio::awaitable<int> { co_return 42; }());
    co_return co_await tornado::to_asyncio_future(x);
  });
  BOOST_TEST(r == 42);
  IOLoop::clear_current();
}

BOOST_AUTO_TEST_CASE(to_tornado_future_maps_errors) {
  tornado::AsyncIOLoop loop;
  loop.make_current();
  asio::steady_timer timer(loop.asio_loop(), 1h);
  Future<void> f = tornado::to_tornado_future(timer.async_wait(asio::deferred));
  timer.cancel();
  BOOST_CHECK_THROW(loop.run_sync([&] { return f; }), tornado::CancelledError);
  IOLoop::clear_current();
}

BOOST_AUTO_TEST_CASE(test_asyncio_adapter) {
  // Asio code awaits a Tornado Future through to_asyncio_future with any token.
  tornado::AsyncIOLoop loop;
  Future<int> f(loop.get_executor());
  int got = 0;
  tornado::to_asyncio_future(f, [&](std::exception_ptr e, int v) {
    BOOST_TEST(!e);
    got = v;
    loop.stop();
  });
  loop.add_callback([&] { f.set_result(7); });
  loop.start();
  BOOST_TEST(got == 7);
}

BOOST_AUTO_TEST_CASE(test_ioloop_close_leak) {
  // Many loops made and closed leak nothing (ASan checks).
  for (int i = 0; i < 10; ++i) {
    tornado::AsyncIOLoop loop;
    loop.add_callback([] {});
    loop.call_later(1h, [] {});
    loop.close();
  }
}

BOOST_AUTO_TEST_CASE(one_ioloop_per_io_context) {
  asio::io_context ctx;
  tornado::AsyncIOMainLoop a(ctx);
  BOOST_CHECK_THROW(tornado::AsyncIOMainLoop b(ctx), std::logic_error);
}

BOOST_AUTO_TEST_CASE(stop_during_the_one_pass_leaves_no_stop_behind) {
  // A stop before start() gives one pass; a stop() inside that pass ends it early. The pass's
  // end marker, still queued, must not end a later run (asyncio's stop flag is consumed by
  // that one iteration).
  asio::io_context ctx;
  tornado::AsyncIOMainLoop loop(ctx, false);
  loop.stop();
  loop.add_callback([&] { loop.stop(); });
  loop.start();
  int r = loop.run_sync([]() -> asio::awaitable<int> {
    co_await tornado::gen::sleep(1ms);
    co_return 3;
  });
  BOOST_TEST(r == 3);
}

BOOST_AUTO_TEST_CASE(start_inside_the_applications_run_throws) {
  // The application's io_context::run() is going on: start() or run_sync() from one of its
  // handlers is refused (Tornado: "This event loop is already running"), and the
  // application's run goes on.
  asio::io_context ctx;
  tornado::AsyncIOMainLoop loop(ctx, false);
  bool threw = false, after = false;
  asio::post(ctx, [&] {
    try {
      loop.run_sync([] { return 1; });
    } catch (const std::logic_error&) {
      threw = true;
    }
    asio::post(ctx, [&] { after = true; });
  });
  ctx.run();
  BOOST_TEST(threw);
  BOOST_TEST(after);
}

BOOST_AUTO_TEST_CASE(failed_construction_leaves_no_registration) {
  // The loop's own descriptor cannot be made (no descriptors left): the constructor throws,
  // and nothing is left pointing at the object that was never built.
  asio::io_context ctx;
  rlimit old{};
  ::getrlimit(RLIMIT_NOFILE, &old);
  std::vector<int> fds;
  fds.reserve(64);
  bool threw = false;
  {
    // Nothing of the test framework's while no descriptor is left (UBSan's checks need one).
    rlimit low = old;
    low.rlim_cur = 64;
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::dup(0)) >= 0;) fds.push_back(fd);
    try {
      tornado::AsyncIOMainLoop failed(ctx, false);
    } catch (const boost::system::system_error&) {
      threw = true;
    }
    for (int fd : fds) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
  }
  BOOST_TEST(threw);
  BOOST_TEST(IOLoop::from(ctx) == nullptr);
  tornado::AsyncIOMainLoop ok(ctx, false);
  BOOST_TEST(IOLoop::from(ctx) == &ok);
}

namespace {
asio::awaitable<void> count_up(int& n) {
  ++n;
  co_return;
}
} // namespace

BOOST_AUTO_TEST_CASE(work_left_by_a_destroyed_main_loop_does_nothing) {
  // The application's io_context outlives the IOLoop that rode on it. What the loop left
  // queued there -- callbacks, a spawned coroutine, a timeout that had fired, a descriptor
  // watch, a Future's callback -- runs when the application runs its io_context again, and
  // must then find no loop and do nothing (as Tornado's callbacks after close() never run).
  asio::io_context ctx;
  int ran = 0;
  int fds[2];
  BOOST_TEST_REQUIRE(::pipe(fds) == 0);
  BOOST_TEST_REQUIRE(::write(fds[1], "x", 1) == 1);
  auto loop = std::make_unique<tornado::AsyncIOMainLoop>(ctx, false);
  loop->call_later(0ms, [&] { ++ran; });
  Future<int> settled_later(ctx.get_executor());
  loop->add_future(settled_later, [&](Future<int>) { ++ran; });
  asio::post(ctx, [&] { loop.reset(); });  // the application's own handler, ahead of the rest
  loop->add_callback([&] { ++ran; });
  loop->spawn_callback(count_up(ran));
  loop->add_handler(fds[0], [&](int, int) { ++ran; }, IOLoop::READ);
  std::this_thread::sleep_for(2ms);  // the timeout is due when the reactor first looks
  ctx.run();
  BOOST_TEST(!loop);
  settled_later.set_result(1);
  ctx.restart();
  ctx.run();
  BOOST_TEST(ran == 0);
  ::close(fds[0]);
  ::close(fds[1]);
}
