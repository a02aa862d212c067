// Tornado on an io_context the application already owns and runs (AsyncIOMainLoop), Asio
// operations and awaitables turned into Futures (to_tornado_future) and back
// (to_asyncio_future), and an AsyncIOLoop that owns its io_context on another thread.
#include <boost/tornado/platform/asyncio.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

static asio::awaitable<int> compute(int x) {
  asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
  co_await t.async_wait(asio::use_awaitable);
  co_return x * 7;
}

static asio::awaitable<void> app(asio::io_context& io) {
  // Inside the running io_context, current() is the AsyncIOMainLoop attached to it.
  IOLoop& loop = IOLoop::current();
  std::printf("current() is the loop attached to io: %d\n", &loop == IOLoop::from(io));

  // Any Asio operation, started with asio::deferred, becomes a Future.
  asio::steady_timer timer(io, 20ms);
  Future<void> fired = tornado::to_tornado_future(timer.async_wait(asio::deferred));
  fired.add_done_callback([](Future<void>) { std::printf("timer Future done (done callback)\n"); });
  co_await fired.async_wait();

  // An error_code becomes the matching exception: a cancelled wait is a CancelledError.
  asio::steady_timer doomed(io, 10s);
  Future<void> aborted = tornado::to_tornado_future(doomed.async_wait(asio::deferred));
  doomed.cancel();
  try {
    co_await aborted.async_wait();
  } catch (const tornado::CancelledError&) {
    std::printf("cancelled timer -> CancelledError\n");
  }

  // An awaitable is spawned on the loop at once; its Future can be shared and waited on.
  Future<int> answer = tornado::to_tornado_future(compute(6));

  // to_asyncio_future turns a Future back into an Asio operation, usable with any token.
  tornado::to_asyncio_future(answer, [](std::exception_ptr, int v) {
    std::printf("callback token got %d\n", v);
  });
  int v = co_await tornado::to_asyncio_future(answer);
  std::printf("co_await to_asyncio_future(answer) = %d\n", v);

  // Tornado timeouts and plain Asio handlers share the one io_context.
  loop.call_later(5ms, [] { std::printf("IOLoop::call_later ran on the application's io_context\n"); });
  asio::steady_timer pause(io, 20ms);
  co_await pause.async_wait(asio::use_awaitable);
}

int main() try {
  // The application owns the io_context and runs it; Tornado attaches to it.
  asio::io_context io;
  tornado::AsyncIOMainLoop main_loop(io);
  asio::co_spawn(io, app(io), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
    std::printf("app finished\n");
  });
  io.run();  // returns once nothing is left to do
  std::printf("io.run() returned\n");

  // The same loop can also be driven by Tornado's own entry points.
  int r = main_loop.run_sync([] { return compute(3); });
  std::printf("run_sync on the AsyncIOMainLoop: %d\n", r);

  // An AsyncIOLoop owns its io_context; each thread can have its own.
  std::thread other([] {
    tornado::AsyncIOLoop loop;
    asio::steady_timer timer(loop.asio_loop(), 10ms);  // plain Asio objects on the loop's context
    int v = loop.run_sync([&]() -> asio::awaitable<int> {
      // While run_sync runs, this loop is the thread's current() one, so the Future is its.
      Future<void> fired = tornado::to_tornado_future(timer.async_wait(asio::deferred));
      co_await fired.async_wait();
      co_return co_await compute(5);
    });
    std::printf("AsyncIOLoop on another thread computed %d\n", v);
  });
  other.join();
} catch (const std::exception& e) {
  std::fprintf(stderr, "asyncio_bridge: %s\n", e.what());
  return 1;
}
