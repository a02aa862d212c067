// The baseline of the handoff benchmarks: a producer and a consumer coroutine exchanging ints
// through asio::experimental::channel (as ../shared/anchors/asio_channel_bench.cpp does).
#ifndef BOOST_TORNADO_BENCH_CHANNEL_BASELINE_HPP
#define BOOST_TORNADO_BENCH_CHANNEL_BASELINE_HPP

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace bench {

using int_channel =
    boost::asio::experimental::channel<void(boost::system::error_code, int)>;

inline boost::asio::awaitable<void> channel_producer(int_channel& ch, int n) {
  for (int i = 0; i < n; ++i)
    co_await ch.async_send(boost::system::error_code{}, i, boost::asio::use_awaitable);
  ch.close();
}

inline boost::asio::awaitable<void> channel_consumer(int_channel& ch, long long& sum) {
  for (;;) {
    auto [ec, v] = co_await ch.async_receive(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) break;
    sum += v;
  }
}

// One run of n items through a channel of the given capacity on a fresh io_context.
inline void channel_handoff(std::size_t capacity, int n, long long& sum) {
  boost::asio::io_context ctx(1);
  int_channel ch(ctx, capacity);
  boost::asio::co_spawn(ctx, channel_producer(ch, n), boost::asio::detached);
  boost::asio::co_spawn(ctx, channel_consumer(ch, sum), boost::asio::detached);
  ctx.run();
}

} // namespace bench

#endif
