// Queue handoff between a producer and a consumer coroutine, against an
// asio::experimental::channel of the same capacity (64 for the unbounded queue).
#include <boost/tornado/queues.hpp>
#include "bench.hpp"
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <string>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using channel = asio::experimental::channel<void(boost::system::error_code, int)>;

static asio::awaitable<void> produce(tornado::Queue<int>& q, int n) {
  for (int i = 0; i < n; ++i) co_await q.put(i);
}
static asio::awaitable<void> consume(tornado::Queue<int>& q, int n, long long& sum) {
  for (int i = 0; i < n; ++i) sum += co_await q.get();
}
static asio::awaitable<void> produce(channel& ch, int n) {
  for (int i = 0; i < n; ++i) co_await ch.async_send(boost::system::error_code{}, i, asio::use_awaitable);
  ch.close();
}
static asio::awaitable<void> consume(channel& ch, long long& sum) {
  for (;;) {
    auto [ec, v] = co_await ch.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    sum += v;
  }
}

int main() {
  const int n = int(1'000'000 * bench::scale());
  long long sum = 0;
  for (long maxsize : {64L, 0L, 1L}) {
    std::size_t cap = maxsize == 0 ? 64 : std::size_t(maxsize);
    double ours = 1e300, theirs = 1e300;
    for (int r = 0; r < 3; ++r) {
      ours = std::min(ours, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        tornado::Queue<int> q(maxsize);
        asio::co_spawn(ctx, produce(q, n), asio::detached);
        asio::co_spawn(ctx, consume(q, n, sum), asio::detached);
        ctx.run();
      }));
      theirs = std::min(theirs, bench::best_seconds(1, [&] {
        asio::io_context ctx(1);
        channel ch(ctx, cap);
        asio::co_spawn(ctx, produce(ch, n), asio::detached);
        asio::co_spawn(ctx, consume(ch, sum), asio::detached);
        ctx.run();
      }));
    }
    std::string name = "queue_handoff_maxsize_" + (maxsize ? std::to_string(maxsize) : std::string("unbounded"));
    std::string base = "asio_channel_cap" + std::to_string(cap);
    bench::report(name.c_str(), ours / n * 1e9, base.c_str(), theirs / n * 1e9, "ns/item");
  }
  return sum == 0;
}
