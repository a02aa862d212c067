// Future benchmark: set_result resuming an awaiting coroutine, against an
// asio::experimental::channel handing an item between two coroutines (capacity 0 and 1).
#include <boost/tornado/concurrent.hpp>
#include "bench.hpp"
#include "channel_baseline.hpp"
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;
namespace tornado = boost::tornado;

// Each item: a Future made, settled by a loop callback, and awaited.
static asio::awaitable<void> future_consumer(tornado::IOLoop& loop, int n, long long& sum) {
  for (int i = 0; i < n; ++i) {
    tornado::Future<int> f(loop.get_executor());
    loop.add_callback([f, i]() mutable { f.set_result(i); });
    sum += co_await f.async_wait();
  }
}

int main() {
  const int n = int(1'000'000 * bench::scale());
  long long sum = 0;
  tornado::IOLoop loop;
  // Ours and each baseline alternate, best of 5 each, so a disturbance hits both sides alike.
  for (std::size_t cap : {0, 1}) {
    double ours = 1e300, theirs = 1e300;
    for (int r = 0; r < 5; ++r) {
      ours = std::min(ours, bench::best_seconds(1, [&] {
        asio::co_spawn(loop.context(), future_consumer(loop, n, sum), asio::detached);
        loop.context().restart();
        loop.context().run();
      }));
      theirs = std::min(theirs, bench::best_seconds(1, [&] { bench::channel_handoff(cap, n, sum); }));
    }
    std::string name = "future_set_result_resume_vs_channel_cap" + std::to_string(cap);
    bench::report(name.c_str(), ours / n * 1e9, "asio_channel", theirs / n * 1e9, "ns/item");
  }
  return sum == 0;
}
