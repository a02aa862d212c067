// Timeouts on an IOLoop: the three ways to give a deadline, callbacks with arguments,
// removing a timeout before it fires, and stopping the loop from a timeout.
#include <boost/tornado/ioloop.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace tornado = boost::tornado;
using namespace std::chrono_literals;
using tornado::IOLoop;

int main() try {
  IOLoop loop;
  const double t0 = IOLoop::time();
  auto say = [t0](const char* what) {
    std::printf("%5.0f ms  %s\n", (IOLoop::time() - t0) * 1000, what);
  };

  // A relative delay in seconds, as Tornado's call_later(0.05, ...).
  loop.call_later(0.05, say, "call_later(0.05): a relative delay in seconds");

  // A double passed as a Deadline is an absolute time on IOLoop::time(), as Tornado's
  // add_timeout(io_loop.time() + 0.1, ...). Passing a bare 0.1 would mean "long ago".
  loop.add_timeout(IOLoop::time() + 0.1, say, "add_timeout(time() + 0.1): absolute seconds");

  // A std::chrono duration is relative to now, as Tornado's timedelta.
  loop.add_timeout(150ms, say, "add_timeout(150ms): a relative duration");

  // An absolute steady_clock time point.
  loop.call_at(IOLoop::clock::now() + 200ms, say, "call_at(now + 200ms): a time point");

  // Removed before it is due: it never runs. Removing it again later is harmless.
  tornado::TimeoutHandle never = loop.call_later(0.12, say, "this line must not appear");
  loop.call_later(0.03, [&] {
    say("remove_timeout: the 120 ms timeout is withdrawn");
    loop.remove_timeout(never);
  });

  // A callback that throws is logged (tornado.application) and the loop carries on.
  loop.call_later(0.07, [] { throw std::runtime_error("a failing timeout"); });

  loop.call_later(0.25, [&] {
    say("stop(): start() returns after this callback");
    loop.stop();
  });

  say("start()");
  loop.start();
  loop.remove_timeout(never);
  say("start() returned");
  loop.close();
} catch (const std::exception& e) {
  std::fprintf(stderr, "ioloop_timeouts: %s\n", e.what());
  return 1;
}
