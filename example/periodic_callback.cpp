// PeriodicCallback: a fixed schedule that does not drift, a coroutine callback that is awaited
// before the next run (and skips the slots it overran), jitter, and stop().
#include <boost/tornado/gen.hpp>
#include <boost/tornado/ioloop.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <exception>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::IOLoop;

int main() try {
  IOLoop loop;
  const double t0 = IOLoop::time();
  auto ms = [t0] { return (IOLoop::time() - t0) * 1000; };

  loop.run_sync([&]() -> asio::awaitable<void> {
    // The period is in milliseconds, as in Tornado; the first run is one period after start().
    int ticks = 0;
    tornado::PeriodicCallback fast([&] { std::printf("%5.0f ms  tick %d\n", ms(), ++ticks); }, 50);
    fast.start();

    // A coroutine callback that takes 70 ms on a 40 ms period: runs never overlap, and the
    // next run waits for the next free slot on the original grid (40, 120, 200 ms).
    tornado::PeriodicCallback slow(
        [&]() -> asio::awaitable<void> {
          std::printf("%5.0f ms  slow callback starts\n", ms());
          co_await gen::sleep(70ms);
        },
        40ms);
    slow.start();

    // jitter = 0.5 spreads each period over 75..125 ms, around the nominal 100 ms.
    tornado::PeriodicCallback jittery([&] { std::printf("%5.0f ms  jittery\n", ms()); }, 100ms, 0.5);
    jittery.start();
    std::printf("periods: %.0f ms, %.0f ms, %.0f ms (jitter %.1f)\n", fast.callback_time(),
                slow.callback_time(), jittery.callback_time(), jittery.jitter());

    co_await gen::sleep(260ms);
    fast.stop();
    slow.stop();
    jittery.stop();
    std::printf("%5.0f ms  stopped: running=%d; no more ticks follow\n", ms(), fast.is_running());
    co_await gen::sleep(100ms);
  });
  std::printf("%5.0f ms  done\n", ms());
} catch (const std::exception& e) {
  std::fprintf(stderr, "periodic_callback: %s\n", e.what());
  return 1;
}
