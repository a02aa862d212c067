// Queue handoff between a producer and a consumer coroutine, against an
// asio::experimental::channel of the same capacity (64 for the unbounded queue).
#include <boost/tornado/queues.hpp>
#include "bench.hpp"
#include "channel_baseline.hpp"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <string>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
static asio::awaitable<void> produce(tornado::Queue<int>& q, int n) {
  for (int i = 0; i < n; ++i) co_await q.put(i);
}
static asio::awaitable<void> consume(tornado::Queue<int>& q, int n, long long& sum) {
  for (int i = 0; i < n; ++i) sum += co_await q.get();
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
      theirs = std::min(theirs, bench::best_seconds(1, [&] { bench::channel_handoff(cap, n, sum); }));
    }
    std::string name = "queue_handoff_maxsize_" + (maxsize ? std::to_string(maxsize) : std::string("unbounded"));
    std::string base = "asio_channel_cap" + std::to_string(cap);
    bench::report(name.c_str(), ours / n * 1e9, base.c_str(), theirs / n * 1e9, "ns/item");
  }
  return sum == 0;
}
