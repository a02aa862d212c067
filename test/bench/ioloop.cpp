// IOLoop benchmarks: add_callback against asio::post, and call_later + remove_timeout against
// one asio::steady_timer per call.
#include <boost/tornado/ioloop.hpp>
#include "bench.hpp"
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using namespace std::chrono_literals;

int main() {
  const int n_callbacks = int(2'000'000 * bench::scale());
  const int n_timers = int(1'000'000 * bench::scale());
  const int runs = 3;

  // add_callback vs asio::post, in steady state: 16 chains of callbacks, each re-posting itself
  // from the loop thread until n callbacks have run. Baseline and ours alternate, best of 5.
  {
    constexpr int chains = 16;
    tornado::IOLoop loop;
    asio::io_context ctx(1);  // the loop's own setting: one thread runs it
    long remaining = 0;
    struct our_chain {
      tornado::IOLoop* loop;
      long* remaining;
      void operator()() const {
        if (--*remaining > 0) loop->add_callback(*this);
      }
    };
    struct asio_chain {
      asio::io_context* ctx;
      long* remaining;
      void operator()() const {
        if (--*remaining > 0) asio::post(*ctx, *this);
      }
    };
    double ours = 1e300, theirs = 1e300;
    for (int r = 0; r < 5; ++r) {
      theirs = std::min(theirs, bench::best_seconds(1, [&] {
        remaining = n_callbacks;
        for (int c = 0; c < chains; ++c) asio::post(ctx, asio_chain{&ctx, &remaining});
        ctx.restart();
        ctx.run();
      }));
      ours = std::min(ours, bench::best_seconds(1, [&] {
        remaining = n_callbacks;
        for (int c = 0; c < chains; ++c) loop.add_callback(our_chain{&loop, &remaining});
        loop.context().restart();
        loop.context().run();
      }));
    }
    // Higher is better here: ratio is ours/baseline in ops/s.
    bench::report("add_callback_ops", n_callbacks / ours, "asio_post", n_callbacks / theirs, "ops/s");
  }

  // call_later + remove_timeout, half removed, deadlines spread over 1 ms.
  {
    tornado::IOLoop loop;
    long fired = 0;
    std::vector<tornado::TimeoutHandle> handles(n_timers);
    double ours = bench::best_seconds(runs, [&] {
      for (int i = 0; i < n_timers; ++i)
        handles[i] = loop.call_later(std::chrono::microseconds(i % 1000), [&fired] { ++fired; });
      for (int i = 0; i < n_timers; i += 2) loop.remove_timeout(handles[i]);
      loop.context().restart();
      loop.context().run();
    });
    asio::io_context ctx(1);
    double theirs = bench::best_seconds(runs, [&] {
      std::vector<std::unique_ptr<asio::steady_timer>> timers;
      timers.reserve(n_timers);
      for (int i = 0; i < n_timers; ++i) {
        timers.push_back(std::make_unique<asio::steady_timer>(ctx, std::chrono::microseconds(i % 1000)));
        timers.back()->async_wait([&fired](boost::system::error_code ec) {
          if (!ec) ++fired;
        });
      }
      for (int i = 0; i < n_timers; i += 2) timers[i]->cancel();
      ctx.restart();
      ctx.run();
    });
    bench::report("call_later_remove_timeout_1M", ours * 1e3, "asio_steady_timer", theirs * 1e3, "ms");
  }
}
