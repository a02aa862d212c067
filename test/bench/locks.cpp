// Lock, Event, Condition and Semaphore benchmarks, each against the Asio tool an Asio user
// would otherwise reach for: a capacity-1 channel as a mutex, a steady_timer cancelled to wake
// its waiters (an "event"), a channel handing out permits.
#include <boost/tornado/locks.hpp>
#include "bench.hpp"
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using channel = asio::experimental::channel<void(boost::system::error_code)>;

static asio::awaitable<void> yield() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

// Two coroutines contend: the first holds the lock across one yield so that the other
// queues; from then on every release hands the lock to the waiting coroutine (no barging) and
// the releaser's next acquire must wait, so every acquire is contended.
static asio::awaitable<void> lock_user(tornado::Lock& lock, int n, long& counter) {
  for (int i = 0; i < n; ++i) {
    auto g = co_await lock.acquire();
    ++counter;
    if (i == 0) co_await yield();
  }
}
static asio::awaitable<void> channel_mutex_user(channel& ch, int n, long& counter) {
  for (int i = 0; i < n; ++i) {
    co_await ch.async_send(boost::system::error_code{}, asio::use_awaitable);  // acquire
    ++counter;
    if (i == 0) co_await yield();
    ch.try_receive([](boost::system::error_code) {});  // release
  }
}

static asio::awaitable<void> lock_uncontended(tornado::Lock& lock, int n, long& counter) {
  for (int i = 0; i < n; ++i) {
    auto g = co_await lock.acquire();
    ++counter;
  }
}
static asio::awaitable<void> channel_uncontended(channel& ch, int n, long& counter) {
  for (int i = 0; i < n; ++i) {
    co_await ch.async_send(boost::system::error_code{}, asio::use_awaitable);
    ++counter;
    ch.try_receive([](boost::system::error_code) {});
  }
}

template <class Waiter, class Wake>
static double wake_all_seconds(int waiters, int rounds, Waiter wait_one, Wake wake) {
  return bench::best_seconds(1, [&] {
    asio::io_context ctx(1);
    for (int r = 0; r < rounds; ++r) {
      for (int w = 0; w < waiters; ++w) asio::co_spawn(ctx, wait_one(ctx), asio::detached);
      ctx.restart();
      ctx.poll();  // everyone waiting
      wake(ctx);
      ctx.restart();
      ctx.run();
    }
  });
}

int main() {
  const int n = int(1'000'000 * bench::scale());
  long counter = 0;

  // Ours and each baseline alternate, best of 5 each, so a disturbance hits both sides alike.
  {  // contended Lock
    double ours = 1e300, theirs = 1e300;
    for (int r = 0; r < 5; ++r) {
      ours = std::min(ours, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        tornado::Lock lock;
        asio::co_spawn(ctx, lock_user(lock, n / 2, counter), asio::detached);
        asio::co_spawn(ctx, lock_user(lock, n / 2, counter), asio::detached);
        ctx.run();
      }));
      theirs = std::min(theirs, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        channel ch(ctx, 1);
        asio::co_spawn(ctx, channel_mutex_user(ch, n / 2, counter), asio::detached);
        asio::co_spawn(ctx, channel_mutex_user(ch, n / 2, counter), asio::detached);
        ctx.run();
      }));
    }
    bench::report("lock_contended_two_coroutines", ours / n * 1e9, "asio_channel_cap1_mutex", theirs / n * 1e9, "ns/acquire");
  }

  {  // uncontended acquire + release
    double ours = 1e300, theirs = 1e300;
    for (int r = 0; r < 3; ++r) {
      ours = std::min(ours, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        tornado::Lock lock;
        asio::co_spawn(ctx, lock_uncontended(lock, n, counter), asio::detached);
        ctx.run();
      }));
      theirs = std::min(theirs, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        channel ch(ctx, 1);
        asio::co_spawn(ctx, channel_uncontended(ch, n, counter), asio::detached);
        ctx.run();
      }));
    }
    bench::report("lock_uncontended_acquire_release", ours / n * 1e9, "asio_channel_cap1_mutex", theirs / n * 1e9, "ns/op");
  }

  const int waiters = 1000, rounds = std::max(1, int(200 * bench::scale()));
  const double per = 1e9 / (double(waiters) * rounds);
  {
    asio::steady_timer* timer = nullptr;
    auto timer_wait = [&](asio::io_context& ctx) -> asio::awaitable<void> {
      if (!timer) timer = new asio::steady_timer(ctx, std::chrono::steady_clock::time_point::max());
      co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    };
    auto timer_wake = [&](asio::io_context&) {
      timer->cancel();
    };
    auto timer_round = [&] {
      double s = wake_all_seconds(waiters, rounds, timer_wait, timer_wake);
      delete timer;
      timer = nullptr;
      return s;
    };

    tornado::Event ev;
    double event_s = wake_all_seconds(waiters, rounds,
        [&](asio::io_context&) -> asio::awaitable<void> { co_await ev.wait(); },
        [&](asio::io_context&) { ev.set(); ev.clear(); });
    double timer_s = timer_round();
    bench::report("event_set_wakes_1000", event_s * per, "asio_steady_timer_cancel", timer_s * per, "ns/waiter");

    tornado::Condition cond;
    double cond_s = wake_all_seconds(waiters, rounds,
        [&](asio::io_context&) -> asio::awaitable<void> { co_await cond.wait(); },
        [&](asio::io_context&) { cond.notify_all(); });
    timer_s = timer_round();
    bench::report("condition_notify_all_1000", cond_s * per, "asio_steady_timer_cancel", timer_s * per, "ns/waiter");

    tornado::Semaphore sem(0);
    double sem_s = wake_all_seconds(waiters, rounds,
        [&](asio::io_context&) -> asio::awaitable<void> { auto g = co_await sem.acquire(); g.detach(); },
        [&](asio::io_context&) { for (int i = 0; i < waiters; ++i) sem.release(); });
    channel* ch = nullptr;
    double ch_s = wake_all_seconds(waiters, rounds,
        [&](asio::io_context& ctx) -> asio::awaitable<void> {
          if (!ch) ch = new channel(ctx, 0);
          co_await ch->async_receive(asio::as_tuple(asio::use_awaitable));
        },
        [&](asio::io_context&) { for (int i = 0; i < waiters; ++i) ch->try_send(boost::system::error_code{}); });
    delete ch;
    bench::report("semaphore_release_wakes_1000", sem_s * per, "asio_channel_try_send", ch_s * per, "ns/waiter");
  }
  return counter == 0;
}
