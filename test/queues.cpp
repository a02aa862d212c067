// Tests boost/tornado/queues.hpp: Queue, PriorityQueue, LifoQueue and the Concurrent* variants
// (queues_test.py cases that apply, named after the Python ones; then the rules of the C++
// port, a randomized run against a reference model, and a multi-threaded run).
#include <boost/tornado/queues.hpp>

#define BOOST_TEST_MODULE queues
#include "support/test.hpp"
#include <boost/tornado/gen.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using boost::system::error_code;
using tornado::IOLoop;
using tornado::LifoQueue;
using tornado::PriorityQueue;
using tornado::Queue;
using namespace std::chrono_literals;

namespace {

const error_code timeout_ec = tornado::make_error_code(tornado::error::timeout);
const error_code aborted_ec = asio::error::operation_aborted;

constexpr asio::cancellation_type cancellation_types[] = {
    asio::cancellation_type::terminal, asio::cancellation_type::partial, asio::cancellation_type::total};

// What a put (or join) handler received.
struct put_outcome {
  int calls = 0;
  error_code ec;
};

// What a get handler received.
template <class T>
struct get_outcome {
  int calls = 0;
  error_code ec;
  T value{};
};

// Callback handlers bound to the loop: a handler with no associated executor would run on
// asio::system_executor, i.e. on another thread.
inline auto record(IOLoop& loop, put_outcome& o) {
  return asio::bind_executor(loop.get_executor(), [&o](error_code ec) {
    ++o.calls;
    o.ec = ec;
  });
}

template <class T>
auto record(IOLoop& loop, get_outcome<T>& o) {
  return asio::bind_executor(loop.get_executor(), [&o](error_code ec, T v) {
    ++o.calls;
    o.ec = ec;
    o.value = std::move(v);
  });
}

// Runs what is ready now.
inline std::size_t poll_loop(IOLoop& loop) {
  loop.context().restart();
  return loop.context().poll();
}

// Runs the loop one handler at a time until pred() holds (timeouts only need to expire).
template <class Pred>
bool run_until(IOLoop& loop, Pred pred, std::chrono::steady_clock::duration limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    loop.context().restart();
    loop.context().run_one_for(10ms);
  }
  return true;
}

// Tornado's `yield gen.sleep(d)`: runs the loop for d, then what is ready.
inline void sleep_on(IOLoop& loop, std::chrono::steady_clock::duration d) {
  loop.run_sync([d]() -> asio::awaitable<void> { co_await gen::sleep(d); });
  poll_loop(loop);
}

// Counts copies: the queues must only ever move items.
struct counted {
  static inline int copies = 0;
  int v = 0;
  counted() = default;
  explicit counted(int x) noexcept : v(x) {}
  counted(const counted& o) : v(o.v) { ++copies; }
  counted& operator=(const counted& o) {
    v = o.v;
    ++copies;
    return *this;
  }
  counted(counted&& o) noexcept : v(o.v) {}
  counted& operator=(counted&& o) noexcept {
    v = o.v;
    return *this;
  }
  friend bool operator<(const counted& a, const counted& b) noexcept { return a.v < b.v; }
};

struct deref_less {
  bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const { return *a < *b; }
};

} // namespace

// ---------------------------------------------------------------------------------------------
// queues_test.py

BOOST_FIXTURE_TEST_SUITE(QueueBasicTest, test::loop_fixture)

// test_repr_and_str: no repr/str in C++.

BOOST_AUTO_TEST_CASE(test_order) {
  Queue<int> q;
  for (int i : {1, 3, 2}) q.put_nowait(i);
  std::vector<int> items;
  for (int i = 0; i < 3; ++i) items.push_back(q.get_nowait());
  BOOST_TEST((items == std::vector<int>{1, 3, 2}));
}

BOOST_AUTO_TEST_CASE(test_maxsize) {
  // maxsize=None (TypeError) does not compile in C++.
  BOOST_CHECK_THROW(Queue<int>(-1), std::invalid_argument);

  Queue<int> q(2);
  BOOST_TEST(q.empty());
  BOOST_TEST(!q.full());
  BOOST_TEST(q.maxsize() == 2u);
  put_outcome put0, put1, put2;
  q.put(0, {}, record(loop, put0));
  q.put(1, {}, record(loop, put1));
  poll();
  BOOST_TEST(put0.calls == 1);
  BOOST_TEST(!put0.ec);
  BOOST_TEST(put1.calls == 1);
  BOOST_TEST(!put1.ec);
  BOOST_TEST(!q.empty());
  BOOST_TEST(q.full());
  q.put(2, {}, record(loop, put2));
  poll();
  BOOST_TEST(put2.calls == 0);
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 0);  // Make room.
  poll();
  BOOST_TEST(put2.calls == 1);
  BOOST_TEST(!put2.ec);
  BOOST_TEST(!q.empty());
  BOOST_TEST(q.full());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(QueueGetTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_blocking_get) {
  Queue<int> q;
  q.put_nowait(0);
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 0);
}

BOOST_AUTO_TEST_CASE(test_nonblocking_get) {
  Queue<int> q;
  q.put_nowait(0);
  BOOST_TEST(q.get_nowait() == 0);
}

BOOST_AUTO_TEST_CASE(test_nonblocking_get_exception) {
  Queue<int> q;
  BOOST_CHECK_THROW(q.get_nowait(), tornado::QueueEmpty);
}

BOOST_AUTO_TEST_CASE(test_get_with_putters) {
  Queue<int> q(1);
  q.put_nowait(0);
  put_outcome put;
  q.put(1, {}, record(loop, put));
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 0);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(!put.ec);
  BOOST_TEST(q.get_nowait() == 1);
}

BOOST_AUTO_TEST_CASE(test_blocking_get_wait) {
  Queue<int> q;
  put_outcome put;
  q.put(0, {}, record(loop, put));
  loop.call_later(10ms, [&] { q.put_nowait(1); });
  loop.call_later(20ms, [&] { q.put_nowait(2); });
  std::vector<int> got;
  loop.run_sync([&]() -> asio::awaitable<void> {
    got.push_back(co_await q.get(1s));
    got.push_back(co_await q.get(1s));
  });
  BOOST_TEST((got == std::vector<int>{0, 1}));
  BOOST_TEST(run_until(loop, [&] { return q.qsize() == 1; }));  // 2 arrives later
  BOOST_TEST(q.get_nowait() == 2);
}

BOOST_AUTO_TEST_CASE(test_get_timeout) {
  Queue<int> q;
  get_outcome<int> get_timeout, get;
  q.get(10ms, record(loop, get_timeout));
  q.get({}, record(loop, get));
  BOOST_TEST(run_until(loop, [&] { return get_timeout.calls == 1; }));
  BOOST_TEST(get_timeout.ec == timeout_ec);
  BOOST_TEST(get.calls == 0);
  q.put_nowait(0);
  poll();
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(!get.ec);
  BOOST_TEST(get.value == 0);
  // With the default token: TimeoutError.
  BOOST_CHECK_THROW(loop.run_sync([&] { return q.get(10ms); }), tornado::TimeoutError);
}

BOOST_AUTO_TEST_CASE(test_get_timeout_preempted) {
  Queue<int> q;
  get_outcome<int> get;
  put_outcome put;
  q.get(10ms, record(loop, get));
  q.put(0, {}, record(loop, put));
  sleep_on(loop, 20ms);
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(!get.ec);
  BOOST_TEST(get.value == 0);
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(test_get_clears_timed_out_putters) {
  Queue<int> q(1);
  // First putter succeeds, remainder block.
  std::array<put_outcome, 10> putters;
  for (int i = 0; i < 10; ++i) q.put(i, 10ms, record(loop, putters[i]));
  put_outcome put;
  q.put(10, {}, record(loop, put));
  BOOST_TEST(q.qsize() == 1u);
  BOOST_TEST(run_until(loop, [&] {
    for (int i = 1; i < 10; ++i)
      if (putters[i].calls == 0) return false;
    return true;
  }));
  BOOST_TEST(put.calls == 0);  // Final waiter is still active.
  put_outcome put11;
  q.put(11, {}, record(loop, put11));
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 0);
  poll();
  BOOST_TEST(put.calls == 1);  // 10 moved in
  BOOST_TEST(!put.ec);
  BOOST_TEST(put11.calls == 0);
  BOOST_TEST(putters[0].calls == 1);
  BOOST_TEST(!putters[0].ec);
  for (int i = 1; i < 10; ++i) BOOST_TEST(putters[i].ec == timeout_ec);
  // None of the timed-out items was enqueued.
  BOOST_TEST(q.get_nowait() == 10);
  BOOST_TEST(q.get_nowait() == 11);
  BOOST_TEST(q.empty());
  poll();
  BOOST_TEST(put11.calls == 1);
}

BOOST_AUTO_TEST_CASE(test_get_clears_timed_out_getters) {
  Queue<int> q;
  std::array<get_outcome<int>, 10> getters;
  for (auto& g : getters) q.get(10ms, record(loop, g));
  get_outcome<int> get, get2;
  q.get({}, record(loop, get));
  BOOST_TEST(run_until(loop, [&] {
    for (auto& g : getters)
      if (g.calls == 0) return false;
    return true;
  }));
  BOOST_TEST(get.calls == 0);  // Final waiter is still active.
  q.get({}, record(loop, get2));
  for (auto& g : getters) BOOST_TEST(g.ec == timeout_ec);
  q.put_nowait(0);
  q.put_nowait(1);
  poll();
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(get.value == 0);
  BOOST_TEST(get2.calls == 1);
  BOOST_TEST(get2.value == 1);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(test_async_for) {
  // No `async for` in C++: the equivalent loop of gets.
  Queue<int> q;
  for (int i = 0; i < 5; ++i) q.put_nowait(i);
  std::vector<int> results;
  loop.run_sync([&]() -> asio::awaitable<void> {
    for (;;) {
      int i = co_await q.get();
      results.push_back(i);
      if (i == 4) co_return;
    }
  });
  BOOST_TEST((results == std::vector<int>{0, 1, 2, 3, 4}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(QueuePutTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_blocking_put) {
  Queue<int> q;
  loop.run_sync([&] { return q.put(0); });
  BOOST_TEST(q.get_nowait() == 0);
}

BOOST_AUTO_TEST_CASE(test_nonblocking_put_exception) {
  Queue<int> q(1);
  put_outcome put;
  q.put(0, {}, record(loop, put));
  BOOST_CHECK_THROW(q.put_nowait(1), tornado::QueueFull);
  poll();
  BOOST_TEST(put.calls == 1);
}

BOOST_AUTO_TEST_CASE(test_put_with_getters) {
  Queue<int> q;
  get_outcome<int> get0, get1;
  q.get({}, record(loop, get0));
  q.get({}, record(loop, get1));
  loop.run_sync([&] { return q.put(0); });
  poll();
  BOOST_TEST(get0.calls == 1);
  BOOST_TEST(get0.value == 0);
  BOOST_TEST(get1.calls == 0);
  loop.run_sync([&] { return q.put(1); });
  poll();
  BOOST_TEST(get1.calls == 1);
  BOOST_TEST(get1.value == 1);
}

BOOST_AUTO_TEST_CASE(test_nonblocking_put_with_getters) {
  Queue<int> q;
  get_outcome<int> get0, get1;
  q.get({}, record(loop, get0));
  q.get({}, record(loop, get1));
  q.put_nowait(0);
  // put_nowait does *not* immediately unblock getters.
  BOOST_TEST(get0.calls == 0);
  poll();
  BOOST_TEST(get0.calls == 1);
  BOOST_TEST(get0.value == 0);
  q.put_nowait(1);
  BOOST_TEST(get1.calls == 0);
  poll();
  BOOST_TEST(get1.calls == 1);
  BOOST_TEST(get1.value == 1);
}

BOOST_AUTO_TEST_CASE(test_blocking_put_wait) {
  Queue<int> q(1);
  q.put_nowait(0);
  std::vector<int> discarded;
  auto get_and_discard = [&] { discarded.push_back(q.get_nowait()); };
  loop.call_later(10ms, get_and_discard);
  loop.call_later(20ms, get_and_discard);
  put_outcome f0, f1;
  q.put(0, {}, record(loop, f0));
  q.put(1, {}, record(loop, f1));
  poll();
  BOOST_TEST(f0.calls == 0);
  BOOST_TEST(f1.calls == 0);
  BOOST_TEST(run_until(loop, [&] { return f0.calls == 1 && f1.calls == 1; }));
  BOOST_TEST(!f0.ec);
  BOOST_TEST(!f1.ec);
  BOOST_TEST((discarded == std::vector<int>{0, 0}));
  BOOST_TEST(q.get_nowait() == 1);
}

BOOST_AUTO_TEST_CASE(test_put_timeout) {
  Queue<int> q(1);
  q.put_nowait(0);  // Now it's full.
  put_outcome put_timeout, put;
  q.put(1, 10ms, record(loop, put_timeout));
  q.put(2, {}, record(loop, put));
  BOOST_TEST(run_until(loop, [&] { return put_timeout.calls == 1; }));
  BOOST_TEST(put_timeout.ec == timeout_ec);
  BOOST_TEST(q.get_nowait() == 0);
  // 1 was never put in the queue.
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 2);
  // Final get() unblocked this putter.
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(!put.ec);
  // With the default token: TimeoutError, and the item is not enqueued.
  q.put_nowait(3);
  BOOST_CHECK_THROW(loop.run_sync([&] { return q.put(4, 10ms); }), tornado::TimeoutError);
  BOOST_TEST(q.get_nowait() == 3);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(test_put_timeout_preempted) {
  Queue<int> q(1);
  q.put_nowait(0);
  put_outcome put;
  q.put(1, 10ms, record(loop, put));
  BOOST_TEST(q.get_nowait() == 0);
  sleep_on(loop, 20ms);
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(!put.ec);  // No TimeoutError.
  BOOST_TEST(q.get_nowait() == 1);
}

BOOST_AUTO_TEST_CASE(test_put_clears_timed_out_putters) {
  Queue<int> q(1);
  // First putter succeeds, remainder block.
  std::array<put_outcome, 10> putters;
  for (int i = 0; i < 10; ++i) q.put(i, 10ms, record(loop, putters[i]));
  put_outcome put, put11;
  q.put(10, {}, record(loop, put));
  BOOST_TEST(run_until(loop, [&] {
    for (int i = 1; i < 10; ++i)
      if (putters[i].calls == 0) return false;
    return true;
  }));
  BOOST_TEST(put.calls == 0);  // Final waiter is still active.
  q.put(11, {}, record(loop, put11));
  poll();
  BOOST_TEST(put11.calls == 0);
  for (int i = 1; i < 10; ++i) BOOST_TEST(putters[i].ec == timeout_ec);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.get_nowait() == 10);
  BOOST_TEST(q.get_nowait() == 11);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(put11.calls == 1);
}

BOOST_AUTO_TEST_CASE(test_put_clears_timed_out_getters) {
  Queue<int> q;
  std::array<get_outcome<int>, 10> getters;
  for (auto& g : getters) q.get(10ms, record(loop, g));
  get_outcome<int> get, get2;
  q.get({}, record(loop, get));
  q.get({}, record(loop, get2));
  BOOST_TEST(run_until(loop, [&] {
    for (auto& g : getters)
      if (g.calls == 0) return false;
    return true;
  }));
  BOOST_TEST(get.calls == 0);  // Final waiters still active.
  put_outcome put;
  q.put(0, {}, record(loop, put));
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(get.value == 0);
  BOOST_TEST(get2.calls == 0);
  for (auto& g : getters) BOOST_TEST(g.ec == timeout_ec);
  q.put_nowait(1);
  poll();
  BOOST_TEST(get2.value == 1);
}

// test_float_maxsize does not apply: maxsize is an integer (long) in C++, and a double
// argument is converted (truncated) by the language, not by the queue.

BOOST_AUTO_TEST_SUITE_END()

// QueueJoinTest, run for each queue class as in Python (PriorityQueueJoinTest and
// LifoQueueJoinTest inherit these cases).
namespace {

template <class Q>
struct join_tests {
  static void test_task_done_underflow() {
    Q q;
    BOOST_CHECK_THROW(q.task_done(), std::invalid_argument);
  }

  static void test_task_done(IOLoop& loop) {
    int exited = 0, in_get = 0;
    long accumulator = 0;
    // A coroutine lambda's captures live in the lambda, not in the coroutine's frame: this one
    // outlives the coroutines, which still count after the queue is gone.
    auto worker = [&](Q& q) -> asio::awaitable<void> {
      try {
        for (;;) {
          ++in_get;
          int item = co_await q.get();
          --in_get;
          accumulator += item;
          q.task_done();
          co_await gen::sleep(std::chrono::microseconds((item * 37) % 500));
        }
      } catch (const tornado::CancelledError&) {
        ++exited;  // the queue went away
      }
    };
    {
      Q q;
      for (int i = 0; i < 100; ++i) q.put_nowait(i);
      // Two coroutines share work.
      asio::co_spawn(loop.context(), worker(q), asio::detached);
      asio::co_spawn(loop.context(), worker(q), asio::detached);
      loop.run_sync([&] { return q.join(); });
      BOOST_TEST(accumulator == 99 * 100 / 2);
      BOOST_TEST(run_until(loop, [&] { return in_get == 2; }));  // both back in get()
    }
    poll_loop(loop);
    BOOST_TEST(exited == 2);
  }

  static void test_task_done_delay(IOLoop& loop) {
    // Verify it is task_done(), not get(), that unblocks join().
    Q q;
    q.put_nowait(0);
    put_outcome join;
    q.join({}, record(loop, join));
    poll_loop(loop);
    BOOST_TEST(join.calls == 0);
    BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 0);
    poll_loop(loop);
    BOOST_TEST(join.calls == 0);
    q.task_done();
    BOOST_TEST(join.calls == 0);  // posted, not called inside task_done()
    poll_loop(loop);
    BOOST_TEST(join.calls == 1);
    BOOST_TEST(!join.ec);
  }

  static void test_join_empty_queue(IOLoop& loop) {
    Q q;
    loop.run_sync([&] { return q.join(); });
    loop.run_sync([&] { return q.join(); });
  }

  static void test_join_timeout(IOLoop& loop) {
    Q q;
    put_outcome put;
    q.put(0, {}, record(loop, put));
    BOOST_CHECK_THROW(loop.run_sync([&] { return q.join(10ms); }), tornado::TimeoutError);
    put_outcome join;
    q.join(1ms, record(loop, join));
    BOOST_TEST(run_until(loop, [&] { return join.calls == 1; }));
    BOOST_TEST(join.ec == timeout_ec);
  }
};

} // namespace

#define QUEUE_JOIN_TESTS(QueueType)                                                             \
  BOOST_AUTO_TEST_CASE(test_task_done_underflow) { join_tests<QueueType>::test_task_done_underflow(); } \
  BOOST_AUTO_TEST_CASE(test_task_done) { join_tests<QueueType>::test_task_done(loop); }         \
  BOOST_AUTO_TEST_CASE(test_task_done_delay) { join_tests<QueueType>::test_task_done_delay(loop); } \
  BOOST_AUTO_TEST_CASE(test_join_empty_queue) { join_tests<QueueType>::test_join_empty_queue(loop); } \
  BOOST_AUTO_TEST_CASE(test_join_timeout) { join_tests<QueueType>::test_join_timeout(loop); }

BOOST_FIXTURE_TEST_SUITE(QueueJoinTest, test::loop_fixture)
QUEUE_JOIN_TESTS(Queue<int>)
BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(PriorityQueueJoinTest, test::loop_fixture)
QUEUE_JOIN_TESTS(PriorityQueue<int>)

BOOST_AUTO_TEST_CASE(test_order) {
  using item = std::pair<int, std::string>;
  PriorityQueue<item> q(2);
  q.put_nowait({1, "a"});
  q.put_nowait({0, "b"});
  BOOST_TEST(q.full());
  put_outcome put_c, put_d;
  q.put({3, "c"}, {}, record(loop, put_c));
  q.put({2, "d"}, {}, record(loop, put_d));
  BOOST_TEST((q.get_nowait() == item{0, "b"}));
  BOOST_TEST((loop.run_sync([&] { return q.get(); }) == item{1, "a"}));
  BOOST_TEST((q.get_nowait() == item{2, "d"}));
  BOOST_TEST((loop.run_sync([&] { return q.get(); }) == item{3, "c"}));
  BOOST_TEST(q.empty());
  poll();
  BOOST_TEST(put_c.calls == 1);
  BOOST_TEST(put_d.calls == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(LifoQueueJoinTest, test::loop_fixture)
QUEUE_JOIN_TESTS(LifoQueue<int>)

BOOST_AUTO_TEST_CASE(test_order) {
  LifoQueue<int> q(2);
  q.put_nowait(1);
  q.put_nowait(0);
  BOOST_TEST(q.full());
  put_outcome put3, put2;
  q.put(3, {}, record(loop, put3));
  q.put(2, {}, record(loop, put2));
  BOOST_TEST(q.get_nowait() == 3);
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 2);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(loop.run_sync([&] { return q.get(); }) == 1);
  BOOST_TEST(q.empty());
  poll();
  BOOST_TEST(put3.calls == 1);
  BOOST_TEST(put2.calls == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(ProducerConsumerTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(test_producer_consumer) {
  std::vector<int> history;
  bool consumer_exited = false;
  // Outlives the consumer coroutine, which uses its captures after the queue is gone.
  auto consumer = [&](Queue<int>& q) -> asio::awaitable<void> {
    try {
      for (;;) {
        history.push_back(co_await q.get());
        q.task_done();
      }
    } catch (const tornado::CancelledError&) {
      consumer_exited = true;
    }
  };
  {
    Queue<int> q(3);
    auto producer = [&]() -> asio::awaitable<void> {
      for (int item = 0; item < 10; ++item) co_await q.put(item);
    };
    loop.run_sync([&]() -> asio::awaitable<void> {
      asio::co_spawn(co_await asio::this_coro::executor, consumer(q), asio::detached);
      co_await producer();
      co_await q.join();
    });
    BOOST_TEST((history == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    poll();
  }
  poll();
  BOOST_TEST(consumer_exited);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
// Rules of the C++ port.

BOOST_FIXTURE_TEST_SUITE(QueueRulesTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(negative_maxsize_throws) {
  BOOST_CHECK_THROW(Queue<int>(-1), std::invalid_argument);
  BOOST_CHECK_THROW(PriorityQueue<int>(-5), std::invalid_argument);
  BOOST_CHECK_THROW(LifoQueue<int>(-1), std::invalid_argument);
  BOOST_CHECK_THROW(tornado::ConcurrentQueue<int>(-1), std::invalid_argument);
  Queue<int> unbounded(0);
  BOOST_TEST(unbounded.maxsize() == 0u);
  for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
  BOOST_TEST(!unbounded.full());
  BOOST_TEST(unbounded.qsize() == 1000u);
}

BOOST_AUTO_TEST_CASE(blocked_put_keeps_its_item_outside_the_queue) {
  Queue<int> q(1);
  q.put_nowait(0);
  put_outcome put;
  q.put(1, {}, record(loop, put));
  poll();
  BOOST_TEST(q.qsize() == 1u);
  BOOST_TEST(q.full());
  BOOST_TEST(put.calls == 0);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.qsize() == 1u);  // 1 moved in during the get
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(q.get_nowait() == 1);
}

BOOST_AUTO_TEST_CASE(timed_out_put_item_is_never_enqueued) {
  Queue<int> q(1);
  q.put_nowait(0);
  put_outcome put;
  q.put(1, std::chrono::steady_clock::time_point{}, record(loop, put));  // already expired
  BOOST_TEST(q.qsize() == 1u);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(put.ec == timeout_ec);
  BOOST_TEST(q.qsize() == 1u);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.empty());
  BOOST_CHECK_THROW(q.get_nowait(), tornado::QueueEmpty);
}

BOOST_AUTO_TEST_CASE(cancelled_put_item_is_never_enqueued) {
  Queue<int> q(1);
  q.put_nowait(0);
  asio::cancellation_signal sig;
  put_outcome put;
  q.put(1, {}, asio::bind_cancellation_slot(sig.slot(), record(loop, put)));
  sig.emit(asio::cancellation_type::terminal);
  BOOST_TEST(put.calls == 0);
  BOOST_TEST(q.qsize() == 1u);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(put.ec == aborted_ec);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(put_nowait_hands_item_to_oldest_live_getter) {
  Queue<int> q;
  asio::cancellation_signal sig;
  get_outcome<int> timed_out, cancelled, live1, live2;
  q.get(std::chrono::steady_clock::time_point{}, record(loop, timed_out));
  q.get({}, asio::bind_cancellation_slot(sig.slot(), record(loop, cancelled)));
  q.get({}, record(loop, live1));
  q.get(1h, record(loop, live2));
  poll();  // the expired deadline fires
  sig.emit(asio::cancellation_type::terminal);
  q.put_nowait(7);
  BOOST_TEST(q.qsize() == 0u);  // handed over, not enqueued
  q.put_nowait(8);
  BOOST_TEST(q.qsize() == 0u);
  q.put_nowait(9);
  BOOST_TEST(q.qsize() == 1u);
  poll();
  BOOST_TEST(timed_out.ec == timeout_ec);
  BOOST_TEST(cancelled.ec == aborted_ec);
  BOOST_TEST(live1.calls == 1);
  BOOST_TEST(!live1.ec);
  BOOST_TEST(live1.value == 7);
  BOOST_TEST(live2.calls == 1);
  BOOST_TEST(!live2.ec);
  BOOST_TEST(live2.value == 8);
  BOOST_TEST(q.get_nowait() == 9);
  // A handed-over item counts for join().
  put_outcome join;
  q.join({}, record(loop, join));
  poll();
  BOOST_TEST(join.calls == 0);
  q.task_done();
  q.task_done();
  q.task_done();
  poll();
  BOOST_TEST(join.calls == 1);
}

BOOST_AUTO_TEST_CASE(get_nowait_with_putters_moves_oldest_putters_item_first) {
  Queue<int> q(2);
  q.put_nowait(1);
  q.put_nowait(2);
  put_outcome put3, put4;
  q.put(3, {}, record(loop, put3));
  q.put(4, {}, record(loop, put4));
  BOOST_TEST(q.get_nowait() == 1);
  BOOST_TEST(q.qsize() == 2u);  // 3 moved in
  poll();
  BOOST_TEST(put3.calls == 1);
  BOOST_TEST(put4.calls == 0);
  BOOST_TEST(q.get_nowait() == 2);
  poll();
  BOOST_TEST(put4.calls == 1);
  BOOST_TEST(q.get_nowait() == 3);
  BOOST_TEST(q.get_nowait() == 4);

  // In a PriorityQueue the putter's item moves in before the smallest is taken, as Tornado.
  PriorityQueue<int> pq(1);
  pq.put_nowait(5);
  put_outcome put1;
  pq.put(1, {}, record(loop, put1));
  BOOST_TEST(pq.get_nowait() == 1);
  BOOST_TEST(pq.get_nowait() == 5);
  poll();
  BOOST_TEST(put1.calls == 1);
}

BOOST_AUTO_TEST_CASE(join_is_released_by_task_done_not_by_get) {
  Queue<int> q;
  put_outcome join0;
  q.join({}, record(loop, join0));  // nothing put yet: done at once (posted)
  BOOST_TEST(join0.calls == 0);
  poll();
  BOOST_TEST(join0.calls == 1);
  BOOST_TEST(!join0.ec);

  q.put_nowait(1);
  q.put_nowait(2);
  put_outcome join;
  q.join({}, record(loop, join));
  BOOST_TEST(q.get_nowait() == 1);
  BOOST_TEST(q.get_nowait() == 2);
  poll();
  BOOST_TEST(join.calls == 0);  // every item taken, none done
  q.task_done();
  poll();
  BOOST_TEST(join.calls == 0);
  q.task_done();
  BOOST_TEST(join.calls == 0);
  poll();
  BOOST_TEST(join.calls == 1);
  BOOST_CHECK_THROW(q.task_done(), std::invalid_argument);

  // A new item makes join() wait again.
  q.put_nowait(3);
  put_outcome join2;
  q.join({}, record(loop, join2));
  poll();
  BOOST_TEST(join2.calls == 0);
  q.get_nowait();
  q.task_done();
  poll();
  BOOST_TEST(join2.calls == 1);
}

BOOST_AUTO_TEST_CASE(move_only_items) {
  using ptr = std::unique_ptr<int>;
  Queue<ptr> q(1);
  q.put_nowait(std::make_unique<int>(1));
  BOOST_CHECK_THROW(q.put_nowait(std::make_unique<int>(99)), tornado::QueueFull);
  // Blocked put.
  put_outcome put2;
  q.put(std::make_unique<int>(2), {}, record(loop, put2));
  BOOST_TEST(*q.get_nowait() == 1);
  poll();
  BOOST_TEST(put2.calls == 1);
  BOOST_TEST(*loop.run_sync([&] { return q.get(); }) == 2);
  // Handoff to a waiting getter.
  get_outcome<ptr> get3;
  q.get({}, record(loop, get3));
  q.put_nowait(std::make_unique<int>(3));
  poll();
  BOOST_TEST(get3.calls == 1);
  BOOST_TEST((get3.value && *get3.value == 3));
  // put with the default token, get with a callback (immediate).
  loop.run_sync([&] { return q.put(std::make_unique<int>(4)); });
  get_outcome<ptr> get4;
  q.get({}, record(loop, get4));
  poll();
  BOOST_TEST((get4.value && *get4.value == 4));
  // Coroutines: a blocked put resumed by a get in another coroutine, and a waiting get.
  loop.run_sync([&]() -> asio::awaitable<void> {
    co_await q.put(std::make_unique<int>(5));
    asio::co_spawn(co_await asio::this_coro::executor, q.put(std::make_unique<int>(6)), asio::detached);
    co_await gen::moment();
    BOOST_TEST(q.qsize() == 1u);
    ptr a = co_await q.get();
    ptr b = co_await q.get();
    BOOST_TEST(*a == 5);
    BOOST_TEST(*b == 6);
    asio::co_spawn(co_await asio::this_coro::executor,
                   [&]() -> asio::awaitable<void> { co_await q.put(std::make_unique<int>(7)); },
                   asio::detached);
    ptr c = co_await q.get();
    BOOST_TEST(*c == 7);
  });
  BOOST_TEST(q.empty());

  PriorityQueue<ptr, deref_less> pq(2);
  pq.put_nowait(std::make_unique<int>(3));
  pq.put_nowait(std::make_unique<int>(1));
  put_outcome pput;
  pq.put(std::make_unique<int>(2), {}, record(loop, pput));
  BOOST_TEST(*pq.get_nowait() == 1);
  BOOST_TEST(*loop.run_sync([&] { return pq.get(); }) == 2);
  BOOST_TEST(*pq.get_nowait() == 3);

  LifoQueue<ptr> lq;
  lq.put_nowait(std::make_unique<int>(1));
  loop.run_sync([&] { return lq.put(std::make_unique<int>(2)); });
  BOOST_TEST(*lq.get_nowait() == 2);
  BOOST_TEST(*loop.run_sync([&] { return lq.get(); }) == 1);
  poll();
}

BOOST_AUTO_TEST_CASE(items_are_never_copied) {
  counted::copies = 0;
  put_outcome pending;
  {
    Queue<counted> q(1);
    // put fast path (callback and coroutine), get_nowait.
    put_outcome p;
    q.put(counted(1), {}, record(loop, p));
    BOOST_TEST(q.get_nowait().v == 1);
    loop.run_sync([&] { return q.put(counted(2)); });
    BOOST_TEST(loop.run_sync([&] { return q.get(); }).v == 2);
    // put_nowait, get with a callback (immediate).
    q.put_nowait(counted(3));
    get_outcome<counted> g3;
    q.get({}, record(loop, g3));
    poll();
    BOOST_TEST(g3.value.v == 3);
    // Blocked put, then get (callback, get_nowait and coroutine).
    q.put_nowait(counted(4));
    put_outcome p5, p6;
    q.put(counted(5), {}, record(loop, p5));
    q.put(counted(6), {}, record(loop, p6));
    get_outcome<counted> g4;
    q.get({}, record(loop, g4));
    BOOST_TEST(q.get_nowait().v == 5);
    BOOST_TEST(loop.run_sync([&] { return q.get(); }).v == 6);
    poll();
    BOOST_TEST(g4.value.v == 4);
    // Get waiting, then put (put_nowait, callback put, coroutine put).
    get_outcome<counted> g7, g8, g9;
    q.get({}, record(loop, g7));
    q.get({}, record(loop, g8));
    q.get(1h, record(loop, g9));
    q.put_nowait(counted(7));
    q.put(counted(8), {}, record(loop, p));
    loop.run_sync([&] { return q.put(counted(9)); });
    poll();
    BOOST_TEST(g7.value.v == 7);
    BOOST_TEST(g8.value.v == 8);
    BOOST_TEST(g9.value.v == 9);
    // Coroutine waiting in get, coroutine blocked in put.
    loop.run_sync([&]() -> asio::awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      asio::co_spawn(ex, [&]() -> asio::awaitable<void> { co_await q.put(counted(10)); }, asio::detached);
      counted c10 = co_await q.get();
      BOOST_TEST(c10.v == 10);
      q.put_nowait(counted(11));
      asio::co_spawn(ex, [&]() -> asio::awaitable<void> { co_await q.put(counted(12)); }, asio::detached);
      co_await gen::moment();
      counted c11 = co_await q.get();
      counted c12 = co_await q.get();
      BOOST_TEST(c11.v == 11);
      BOOST_TEST(c12.v == 12);
    });
    // Timed-out and cancelled putters, and pending ones destroyed with the queue.
    q.put_nowait(counted(13));
    put_outcome pt;
    q.put(counted(14), std::chrono::steady_clock::time_point{}, record(loop, pt));
    poll();
    BOOST_TEST(pt.ec == timeout_ec);
    q.put(counted(15), 1h, record(loop, pending));
  }
  poll();
  BOOST_TEST(pending.ec == aborted_ec);
  {
    PriorityQueue<counted> pq(2);
    pq.put_nowait(counted(3));
    pq.put_nowait(counted(1));
    put_outcome p;
    pq.put(counted(2), {}, record(loop, p));
    BOOST_TEST(pq.get_nowait().v == 1);
    BOOST_TEST(loop.run_sync([&] { return pq.get(); }).v == 2);
    get_outcome<counted> g;
    pq.get({}, record(loop, g));
    poll();
    BOOST_TEST(g.value.v == 3);
    pq.get({}, record(loop, g));
    pq.put_nowait(counted(4));
    poll();
    BOOST_TEST(g.value.v == 4);

    LifoQueue<counted> lq(1);
    lq.put_nowait(counted(1));
    lq.put(counted(2), {}, record(loop, p));
    BOOST_TEST(lq.get_nowait().v == 2);  // the putter's item moves in first, then the last is taken
    BOOST_TEST(loop.run_sync([&] { return lq.get(); }).v == 1);
    poll();
  }
  BOOST_TEST(counted::copies == 0);
}

BOOST_AUTO_TEST_CASE(immediate_completion_is_posted_not_inline) {
  Queue<int> q(1);
  put_outcome put;
  q.put(1, {}, record(loop, put));
  BOOST_TEST(put.calls == 0);
  BOOST_TEST(q.qsize() == 1u);  // the item is in already
  get_outcome<int> get;
  q.get({}, record(loop, get));
  BOOST_TEST(get.calls == 0);
  BOOST_TEST(q.empty());  // and out already
  put_outcome join;
  q.task_done();
  q.join({}, record(loop, join));
  BOOST_TEST(join.calls == 0);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(!put.ec);
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(!get.ec);
  BOOST_TEST(get.value == 1);
  BOOST_TEST(join.calls == 1);
  BOOST_TEST(!join.ec);
}

// With the default token, room or an item ready resumes the coroutine inside the step that
// awaited it (posting would take a handler per operation).
BOOST_AUTO_TEST_CASE(default_token_immediate_completion_stays_in_the_same_step) {
  Queue<int> q(2);
  bool done = false;
  asio::co_spawn(loop.context(), [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 1000; ++i) {
      co_await q.put(i);
      BOOST_TEST(co_await q.get() == i);
      q.task_done();
    }
    co_await q.join();
    done = true;
  }, asio::detached);
  std::size_t handlers = 0;
  while (!done && loop.context().run_one()) ++handlers;
  BOOST_TEST(done);
  BOOST_TEST(handlers <= 2u);
}

BOOST_AUTO_TEST_CASE(later_completion_is_posted) {
  Queue<int> q(1);
  get_outcome<int> get;
  q.get({}, record(loop, get));
  poll();
  BOOST_TEST(get.calls == 0);
  q.put_nowait(5);
  BOOST_TEST(get.calls == 0);
  poll();
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(get.value == 5);

  q.put_nowait(6);
  put_outcome put;
  q.put(7, {}, record(loop, put));
  poll();
  BOOST_TEST(put.calls == 0);
  BOOST_TEST(q.get_nowait() == 6);
  BOOST_TEST(put.calls == 0);
  poll();
  BOOST_TEST(put.calls == 1);
  BOOST_TEST(!put.ec);
}

BOOST_AUTO_TEST_CASE(completion_runs_on_the_handlers_executor) {
  // The loop's io_context runs here; the handler must run inside it, never elsewhere.
  Queue<int> q;
  bool inside = false;
  q.get({}, asio::bind_executor(loop.get_executor(), [&](error_code, int) {
    inside = loop.get_executor().running_in_this_thread();
  }));
  q.put_nowait(1);
  poll();
  BOOST_TEST(inside);
}

BOOST_AUTO_TEST_CASE(timeout_forms) {
  // A duration is relative; a double is an absolute time on IOLoop::time(); a time_point is
  // absolute on the steady clock.
  Queue<int> q(1);
  get_outcome<int> g1, g2, g3, g4;
  q.get(2ms, record(loop, g1));
  q.get(IOLoop::time() + 0.002, record(loop, g2));
  q.get(std::chrono::steady_clock::now() + 2ms, record(loop, g3));
  q.get(0.0, record(loop, g4));  // long past on IOLoop::time()
  BOOST_TEST(run_until(loop, [&] { return g1.calls + g2.calls + g3.calls + g4.calls == 4; }));
  for (auto* g : {&g1, &g2, &g3, &g4}) {
    BOOST_TEST(g->ec == timeout_ec);
    BOOST_TEST(g->value == 0);
  }
  q.put_nowait(0);
  put_outcome p1, p2, p3, p4;
  q.put(1, 2ms, record(loop, p1));
  q.put(2, IOLoop::time() + 0.002, record(loop, p2));
  q.put(3, std::chrono::steady_clock::now() + 2ms, record(loop, p3));
  q.put(4, -1ms, record(loop, p4));
  BOOST_TEST(run_until(loop, [&] { return p1.calls + p2.calls + p3.calls + p4.calls == 4; }));
  for (auto* p : {&p1, &p2, &p3, &p4}) BOOST_TEST(p->ec == timeout_ec);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.empty());

  // Default token: TimeoutError, also catchable as system_error with the code.
  try {
    loop.run_sync([&] { return q.get(IOLoop::time() + 0.002); });
    BOOST_FAIL("no timeout");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(e.code() == timeout_ec);
    BOOST_TEST(dynamic_cast<const tornado::TimeoutError*>(&e) != nullptr);
  }
  q.put_nowait(0);
  BOOST_CHECK_THROW(loop.run_sync([&] { return q.put(1, std::chrono::steady_clock::now() + 2ms); }),
                    tornado::TimeoutError);
}

BOOST_AUTO_TEST_CASE(get_cancelled_by_each_cancellation_type) {
  for (auto type : cancellation_types) {
    BOOST_TEST_CONTEXT("type " << static_cast<int>(type)) {
      Queue<int> q;
      asio::cancellation_signal sig, sig_timed;
      get_outcome<int> get, get_timed;
      q.get({}, asio::bind_cancellation_slot(sig.slot(), record(loop, get)));
      q.get(1h, asio::bind_cancellation_slot(sig_timed.slot(), record(loop, get_timed)));
      poll();
      BOOST_TEST(get.calls == 0);
      sig.emit(type);
      sig_timed.emit(type);
      BOOST_TEST(get.calls == 0);  // posted
      BOOST_TEST(get_timed.calls == 0);
      poll();
      BOOST_TEST(get.calls == 1);
      BOOST_TEST(get.ec == aborted_ec);
      BOOST_TEST(get_timed.calls == 1);
      BOOST_TEST(get_timed.ec == aborted_ec);
      // Nobody waits any more: the item stays in the queue.
      q.put_nowait(5);
      BOOST_TEST(q.qsize() == 1u);
      sig.emit(type);  // after completion: nothing happens
      poll();
      BOOST_TEST(get.calls == 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(put_cancelled_by_each_cancellation_type) {
  for (auto type : cancellation_types) {
    BOOST_TEST_CONTEXT("type " << static_cast<int>(type)) {
      Queue<int> q(1);
      q.put_nowait(0);
      asio::cancellation_signal sig, sig_timed;
      put_outcome put, put_timed;
      q.put(1, {}, asio::bind_cancellation_slot(sig.slot(), record(loop, put)));
      q.put(2, 1h, asio::bind_cancellation_slot(sig_timed.slot(), record(loop, put_timed)));
      poll();
      sig.emit(type);
      sig_timed.emit(type);
      BOOST_TEST(put.calls == 0);
      poll();
      BOOST_TEST(put.calls == 1);
      BOOST_TEST(put.ec == aborted_ec);
      BOOST_TEST(put_timed.calls == 1);
      BOOST_TEST(put_timed.ec == aborted_ec);
      BOOST_TEST(q.get_nowait() == 0);
      BOOST_TEST(q.empty());  // neither 1 nor 2 was enqueued
      sig.emit(type);
      poll();
      BOOST_TEST(put.calls == 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(cancel_after_handoff_is_harmless) {
  Queue<int> q;
  asio::cancellation_signal sig;
  get_outcome<int> get;
  q.get({}, asio::bind_cancellation_slot(sig.slot(), record(loop, get)));
  q.put_nowait(3);  // the getter is completed now (its handler posted)
  sig.emit(asio::cancellation_type::terminal);
  poll();
  BOOST_TEST(get.calls == 1);
  BOOST_TEST(!get.ec);
  BOOST_TEST(get.value == 3);
}

BOOST_AUTO_TEST_CASE(coroutine_cancellation_throws_cancelled_error) {
  Queue<int> q(1);
  asio::cancellation_signal gsig;
  std::exception_ptr gerr;
  bool gdone = false;
  asio::co_spawn(loop.context(), q.get(),
                 asio::bind_cancellation_slot(gsig.slot(), [&](std::exception_ptr e, int) {
                   gdone = true;
                   gerr = e;
                 }));
  poll();
  BOOST_TEST(!gdone);
  gsig.emit(asio::cancellation_type::terminal);
  poll();
  BOOST_TEST(gdone);
  BOOST_CHECK_THROW(std::rethrow_exception(gerr), tornado::CancelledError);

  q.put_nowait(0);
  asio::cancellation_signal psig;
  std::exception_ptr perr;
  bool pdone = false;
  asio::co_spawn(loop.context(), q.put(1), asio::bind_cancellation_slot(psig.slot(), [&](std::exception_ptr e) {
                   pdone = true;
                   perr = e;
                 }));
  poll();
  BOOST_TEST(!pdone);
  psig.emit(asio::cancellation_type::terminal);
  poll();
  BOOST_TEST(pdone);
  BOOST_CHECK_THROW(std::rethrow_exception(perr), tornado::CancelledError);
  BOOST_TEST(q.get_nowait() == 0);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_CASE(destroying_the_queue_aborts_pending_getters_and_putters) {
  using ptr = std::unique_ptr<int>;
  get_outcome<ptr> g0, g1, g2;
  put_outcome p0, p1, p2, join;
  asio::cancellation_signal gsig, psig;
  std::exception_ptr coro_get_err, coro_put_err;
  int coro_done = 0;
  {
    Queue<ptr> q;
    q.get({}, record(loop, g0));
    q.get(1h, record(loop, g1));
    q.get({}, asio::bind_cancellation_slot(gsig.slot(), record(loop, g2)));
    asio::co_spawn(loop.context(), q.get(), [&](std::exception_ptr e, ptr) {
      ++coro_done;
      coro_get_err = e;
    });
    // A queue cannot have getters and putters waiting at once: a second queue for putters.
    Queue<ptr> pq(1);
    pq.put_nowait(std::make_unique<int>(0));  // stays in the queue: destroyed with it
    pq.put(std::make_unique<int>(1), {}, record(loop, p0));
    pq.put(std::make_unique<int>(2), 1h, record(loop, p1));
    pq.put(std::make_unique<int>(3), {}, asio::bind_cancellation_slot(psig.slot(), record(loop, p2)));
    asio::co_spawn(loop.context(), pq.put(std::make_unique<int>(4)), [&](std::exception_ptr e) {
      ++coro_done;
      coro_put_err = e;
    });
    pq.join({}, record(loop, join));
    poll();
    BOOST_TEST(coro_done == 0);
  }
  BOOST_TEST(g0.calls + g1.calls + g2.calls + p0.calls + p1.calls + p2.calls + join.calls + coro_done == 0);  // posted
  gsig.emit(asio::cancellation_type::terminal);  // the slots were cleared: nothing happens
  psig.emit(asio::cancellation_type::terminal);
  poll();
  for (auto* g : {&g0, &g1, &g2}) {
    BOOST_TEST(g->calls == 1);
    BOOST_TEST(g->ec == aborted_ec);
    BOOST_TEST(!g->value);
  }
  for (auto* p : {&p0, &p1, &p2, &join}) {
    BOOST_TEST(p->calls == 1);
    BOOST_TEST(p->ec == aborted_ec);
  }
  BOOST_TEST(coro_done == 2);
  BOOST_CHECK_THROW(std::rethrow_exception(coro_get_err), tornado::CancelledError);
  BOOST_CHECK_THROW(std::rethrow_exception(coro_put_err), tornado::CancelledError);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
// Randomized: a Queue<int>(3) against a reference model that predicts every handler's result,
// the order in which posted handlers run, and qsize. One thread; the loop only runs in poll()
// and run_one(), so every run is the same.

namespace {

class queue_model {
public:
  queue_model(IOLoop& loop, unsigned seed) : loop_(loop), rng_(seed) { q_.emplace(maxsize); }
  queue_model(const queue_model&) = delete;
  queue_model& operator=(const queue_model&) = delete;
  // After a failure the queue may still have waiters: their handlers refer to this model.
  ~queue_model() {
    q_.reset();
    poll_loop(loop_);
  }

  bool run(int steps) {
    poll_loop(loop_);
    for (step_ = 0; step_ < steps && ok_; ++step_) {
      int r = static_cast<int>(rng_() % 100);
      if (r < 12) put_nowait();
      else if (r < 24) get_nowait();
      else if (r < 46) put();
      else if (r < 68) get();
      else if (r < 80) emit();
      else drain();
      if (r < 80) check_nothing_ran();
      check_size();
    }
    if (!ok_) return false;
    // Destroying the queue aborts every waiter: getters first, then putters.
    for (int id : getters_) complete_waiter(id, aborted_ec, 0);
    for (int id : putters_) complete_waiter(id, aborted_ec, 0);
    getters_.clear();
    putters_.clear();
    q_.reset();
    check_nothing_ran();
    poll_loop(loop_);
    delivery_.clear();
    check_all();
    return ok_;
  }

  int ops() const { return static_cast<int>(ops_.size()); }
  int timeouts() const { return timeouts_; }
  int cancels() const { return cancels_; }
  int run_ones() const { return run_ones_; }

private:
  static constexpr std::size_t maxsize = 3;
  enum class timer_kind { none, expired, far };

  struct op {
    bool is_get = false;
    int item = 0;  // a putter's item
    timer_kind timer = timer_kind::none;
    // What the handler received.
    int calls = 0;
    error_code ec;
    int value = 0;
    // What the model predicts.
    bool expect_done = false;
    error_code expect_ec;
    int expect_value = 0;
  };

  void fail(const std::string& what) {
    BOOST_ERROR("step " << step_ << ": " << what);
    ok_ = false;
  }

  int new_op(bool is_get, timer_kind t) {
    ops_.emplace_back();
    sigs_.emplace_back();
    ops_.back().is_get = is_get;
    ops_.back().timer = t;
    return static_cast<int>(ops_.size()) - 1;
  }

  auto handler(int id) {
    return asio::bind_cancellation_slot(
        sigs_[id].slot(), asio::bind_executor(loop_.get_executor(), [this, id](error_code ec, auto... v) {
          op& o = ops_[id];
          ++o.calls;
          ++total_calls_;
          o.ec = ec;
          if constexpr (sizeof...(v) == 1) o.value = (v, ...);
        }));
  }

  timer_kind pick_timer() {
    int r = static_cast<int>(rng_() % 4);
    return r < 2 ? timer_kind::none : r == 2 ? timer_kind::expired : timer_kind::far;
  }

  tornado::Deadline deadline(timer_kind t) {
    switch (t) {
      case timer_kind::none: return {};
      case timer_kind::expired:
        switch (rng_() % 3) {
          case 0: return std::chrono::steady_clock::time_point{};
          case 1: return 0.0;
          default: return -1ms;
        }
      case timer_kind::far: return rng_() % 2 ? tornado::Deadline(1h) : tornado::Deadline(IOLoop::time() + 3600.0);
    }
    return {};
  }

  // A waiter's handler is posted; a waiter with a timer first has its timer cancelled, which
  // posts the timer's own (aborted) handler ahead of it.
  void complete_waiter(int id, error_code ec, int value) {
    if (ops_[id].timer != timer_kind::none) delivery_.push_back(-1);
    expect(id, ec, value);
  }

  void expect(int id, error_code ec, int value) {
    op& o = ops_[id];
    o.expect_done = true;
    o.expect_ec = ec;
    o.expect_value = value;
    delivery_.push_back(id);
  }

  // An item arrives: the oldest getter takes it, else it is stored. False when full.
  bool model_put(int item) {
    if (!getters_.empty()) {
      int g = getters_.front();
      getters_.pop_front();
      complete_waiter(g, {}, item);
      return true;
    }
    if (items_.size() >= maxsize) return false;
    items_.push_back(item);
    return true;
  }

  // The oldest putter's item moves in first, then the front is taken.
  std::optional<int> model_get() {
    if (!putters_.empty()) {
      int p = putters_.front();
      putters_.pop_front();
      items_.push_back(ops_[p].item);
      complete_waiter(p, {}, 0);
    }
    if (items_.empty()) return std::nullopt;
    int v = items_.front();
    items_.pop_front();
    return v;
  }

  void put_nowait() {
    int item = next_item_++;
    bool expect_full = !model_put(item);
    bool full = false;
    try {
      q_->put_nowait(item);
    } catch (const tornado::QueueFull&) {
      full = true;
    }
    if (full != expect_full) fail("put_nowait: QueueFull mismatch");
  }

  void get_nowait() {
    auto expected = model_get();
    std::optional<int> got;
    try {
      got = q_->get_nowait();
    } catch (const tornado::QueueEmpty&) {
    }
    if (got != expected) fail("get_nowait: got " + (got ? std::to_string(*got) : "QueueEmpty"));
  }

  void put() {
    timer_kind t = pick_timer();
    int id = new_op(false, t);
    int item = next_item_++;
    ops_[id].item = item;
    if (model_put(item)) {
      expect(id, {}, 0);  // immediate: no timer was made
    } else {
      putters_.push_back(id);
    }
    q_->put(item, deadline(t), handler(id));
  }

  void get() {
    timer_kind t = pick_timer();
    int id = new_op(true, t);
    if (auto v = model_get()) {
      expect(id, {}, *v);
    } else {
      getters_.push_back(id);
    }
    q_->get(deadline(t), handler(id));
  }

  static bool remove(std::deque<int>& list, int id) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (*it == id) {
        list.erase(it);
        return true;
      }
    }
    return false;
  }

  void emit() {
    if (ops_.empty()) return;
    int id;
    std::size_t waiting = getters_.size() + putters_.size();
    if (waiting && rng_() % 4 != 0) {
      std::size_t k = rng_() % waiting;
      id = k < getters_.size() ? getters_[k] : putters_[k - getters_.size()];
    } else {
      id = static_cast<int>(rng_() % ops_.size());  // often done already: no effect
    }
    if (remove(getters_, id) || remove(putters_, id)) {
      ++cancels_;
      complete_waiter(id, aborted_ec, 0);
    }
    sigs_[id].emit(cancellation_types[rng_() % 3]);
  }

  bool expiring_waiters() const {
    for (int id : getters_)
      if (ops_[id].timer == timer_kind::expired) return true;
    for (int id : putters_)
      if (ops_[id].timer == timer_kind::expired) return true;
    return false;
  }

  void drain() {
    if (!delivery_.empty() && !expiring_waiters() && rng_() % 2) {
      // One handler: the first posted one.
      int front = delivery_.front();
      delivery_.pop_front();
      int before = total_calls_;
      ++run_ones_;
      loop_.context().restart();
      std::size_t n = loop_.context().run_one_for(1s);
      if (n != 1) return fail("run_one ran nothing");
      if (front < 0) {
        if (total_calls_ != before) fail("run_one: a handler ran instead of a cancelled timer");
      } else {
        if (total_calls_ != before + 1 || ops_[front].calls != 1)
          return fail("run_one: op " + std::to_string(front) + " did not run first");
        check_op(front);
      }
      return;
    }
    // Every waiter whose deadline has passed times out.
    for (auto* list : {&getters_, &putters_}) {
      for (auto it = list->begin(); it != list->end();) {
        if (ops_[*it].timer == timer_kind::expired) {
          ++timeouts_;
          expect(*it, timeout_ec, 0);
          it = list->erase(it);
        } else {
          ++it;
        }
      }
    }
    delivery_.clear();
    poll_loop(loop_);
    // An expired timer fires at the first epoll pass; allow a few more if the kernel's timerfd
    // is late.
    run_until(loop_, [&] {
      for (const op& o : ops_)
        if (o.expect_done && o.calls == 0) return false;
      return true;
    });
    check_all();
  }

  void check_op(int id) {
    const op& o = ops_[id];
    int expect_calls = o.expect_done ? 1 : 0;
    if (o.calls != expect_calls) {
      return fail("op " + std::to_string(id) + (o.is_get ? " (get)" : " (put)") + ": " +
                  std::to_string(o.calls) + " calls, expected " + std::to_string(expect_calls));
    }
    if (!o.calls) return;
    if (o.ec != o.expect_ec)
      fail("op " + std::to_string(id) + ": " + o.ec.message() + ", expected " + o.expect_ec.message());
    if (o.is_get && o.value != o.expect_value)
      fail("op " + std::to_string(id) + ": got " + std::to_string(o.value) + ", expected " +
           std::to_string(o.expect_value));
  }

  void check_all() {
    for (int id = 0; id < static_cast<int>(ops_.size()) && ok_; ++id) check_op(id);
  }

  void check_nothing_ran() {
    if (total_calls_ != last_total_) fail("a handler ran inline");
    last_total_ = total_calls_;
  }

  void check_size() {
    last_total_ = total_calls_;
    if (!q_) return;
    if (q_->qsize() != items_.size())
      fail("qsize " + std::to_string(q_->qsize()) + ", expected " + std::to_string(items_.size()));
    if (q_->full() != (items_.size() >= maxsize)) fail("full() mismatch");
    if (q_->empty() != items_.empty()) fail("empty() mismatch");
  }

  IOLoop& loop_;
  std::mt19937 rng_;
  std::deque<op> ops_;
  std::deque<asio::cancellation_signal> sigs_;  // outlive the queue
  std::optional<Queue<int>> q_;
  std::deque<int> items_;
  std::deque<int> getters_, putters_;  // op ids, oldest first
  std::deque<int> delivery_;           // posted handlers in order; -1: a cancelled timer's
  int next_item_ = 1;
  int total_calls_ = 0;
  int last_total_ = 0;
  int step_ = 0;
  int timeouts_ = 0;
  int cancels_ = 0;
  int run_ones_ = 0;
  bool ok_ = true;
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(QueueRandomTest, test::loop_fixture)

BOOST_AUTO_TEST_CASE(random_operations_match_a_model) {
  for (unsigned seed : {20240601u, 1u, 2u, 3u}) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      queue_model m(loop, seed);
      BOOST_TEST(m.run(2000));
      BOOST_TEST_MESSAGE("seed " << seed << ": " << m.ops() << " put/get, " << m.timeouts() << " timeouts, "
                                 << m.cancels() << " cancellations, " << m.run_ones() << " run_one");
      BOOST_TEST(m.timeouts() > 0);
      BOOST_TEST(m.cancels() > 0);
      BOOST_TEST(m.run_ones() > 0);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------
// ConcurrentQueue on an io_context run by 4 threads (run under ThreadSanitizer too).

BOOST_AUTO_TEST_SUITE(ConcurrentQueueTest)

BOOST_AUTO_TEST_CASE(concurrent_variants_keep_their_order) {
  tornado::ConcurrentPriorityQueue<int> pq;
  tornado::ConcurrentLifoQueue<int> lq(3);
  tornado::ConcurrentQueue<int> fq(3);
  for (int i : {2, 0, 1}) {
    pq.put_nowait(i);
    lq.put_nowait(i);
    fq.put_nowait(i);
  }
  BOOST_TEST(lq.full());
  BOOST_CHECK_THROW(fq.put_nowait(9), tornado::QueueFull);
  std::vector<int> p, l, f;
  for (int i = 0; i < 3; ++i) {
    p.push_back(pq.get_nowait());
    l.push_back(lq.get_nowait());
    f.push_back(fq.get_nowait());
  }
  BOOST_TEST((p == std::vector<int>{0, 1, 2}));
  BOOST_TEST((l == std::vector<int>{1, 0, 2}));
  BOOST_TEST((f == std::vector<int>{2, 0, 1}));
  BOOST_CHECK_THROW(pq.get_nowait(), tornado::QueueEmpty);
}

BOOST_AUTO_TEST_CASE(producers_and_consumers_on_four_threads) {
  constexpr int threads = 4, producers = 4, consumers = 4, per_producer = 5000;
  constexpr int total = producers * per_producer, per_consumer = total / consumers;
  asio::io_context ctx(threads);
  tornado::ConcurrentQueue<int> q(64);
  std::atomic<long long> sum{0};
  std::atomic<int> got{0}, order_errors{0}, failures{0}, finished{0};
  auto on_done = [&](std::exception_ptr e) {
    if (e) ++failures;
    ++finished;
  };
  for (int p = 0; p < producers; ++p) {
    asio::co_spawn(ctx, [&q, p]() -> asio::awaitable<void> {
      for (int i = 0; i < per_producer; ++i) co_await q.put(p * per_producer + i + 1);
    }, on_done);
  }
  for (int c = 0; c < consumers; ++c) {
    asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
      std::array<int, producers> last{};  // each producer's items arrive in order
      for (int k = 0; k < per_consumer; ++k) {
        int v = co_await q.get();
        int p = (v - 1) / per_producer;
        if (p < 0 || p >= producers || v <= last[p]) ++order_errors;
        else last[p] = v;
        sum += v;
        ++got;
        q.task_done();
      }
    }, on_done);
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&] { ctx.run(); });
  for (auto& th : pool) th.join();
  BOOST_TEST(failures.load() == 0);
  BOOST_TEST(finished.load() == producers + consumers);
  BOOST_TEST(got.load() == total);
  BOOST_TEST(sum.load() == static_cast<long long>(total) * (total + 1) / 2);
  BOOST_TEST(order_errors.load() == 0);
  BOOST_TEST(q.empty());
  bool joined = false;
  q.join({}, asio::bind_executor(ctx.get_executor(), [&](error_code ec) { joined = !ec; }));
  ctx.restart();
  ctx.run();
  BOOST_TEST(joined);
}

namespace {

// Callback-driven actors, each on its own strand, with short timeouts that race with
// completions from the other threads; a timed-out operation is retried (its item was not
// enqueued, or it got none).
struct cb_producer {
  tornado::ConcurrentQueue<int>& q;
  asio::strand<asio::io_context::executor_type> strand;
  int next, end;
  std::atomic<int>& timeouts;
  std::atomic<int>& failures;
  void step() {
    q.put(next, std::chrono::microseconds(next % 50), asio::bind_executor(strand, [this](error_code ec) {
      if (ec == timeout_ec) {
        ++timeouts;
        return step();
      }
      if (ec) {
        ++failures;
        return;
      }
      if (++next < end) step();
    }));
  }
};

struct cb_consumer {
  tornado::ConcurrentQueue<int>& q;
  asio::strand<asio::io_context::executor_type> strand;
  int remaining;
  std::atomic<long long>& sum;
  std::atomic<int>& got;
  std::atomic<int>& timeouts;
  std::atomic<int>& failures;
  void step() {
    q.get(std::chrono::microseconds(remaining % 50), asio::bind_executor(strand, [this](error_code ec, int v) {
      if (ec == timeout_ec) {
        ++timeouts;
        return step();
      }
      if (ec) {
        ++failures;
        return;
      }
      sum += v;
      ++got;
      q.task_done();
      if (--remaining > 0) step();
    }));
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(callbacks_with_racing_timeouts_on_four_threads) {
  constexpr int threads = 4, producers = 4, consumers = 4, per_producer = 5000;
  constexpr int total = producers * per_producer, per_consumer = total / consumers;
  asio::io_context ctx(threads);
  tornado::ConcurrentQueue<int> q(64);
  std::atomic<long long> sum{0};
  std::atomic<int> got{0}, timeouts{0}, failures{0};
  std::deque<cb_producer> ps;
  std::deque<cb_consumer> cs;
  for (int p = 0; p < producers; ++p)
    ps.push_back({q, asio::make_strand(ctx.get_executor()), p * per_producer + 1, (p + 1) * per_producer + 1,
                  timeouts, failures});
  for (int c = 0; c < consumers; ++c)
    cs.push_back({q, asio::make_strand(ctx.get_executor()), per_consumer, sum, got, timeouts, failures});
  for (auto& c : cs) asio::post(c.strand, [&c] { c.step(); });
  for (auto& p : ps) asio::post(p.strand, [&p] { p.step(); });
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&] { ctx.run(); });
  for (auto& th : pool) th.join();
  BOOST_TEST_MESSAGE("timeouts: " << timeouts.load());
  BOOST_TEST(failures.load() == 0);
  BOOST_TEST(got.load() == total);
  BOOST_TEST(sum.load() == static_cast<long long>(total) * (total + 1) / 2);
  BOOST_TEST(q.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(QueueLifetimeTest)

BOOST_AUTO_TEST_CASE(timer_handler_queued_when_everything_is_destroyed) {
  // A waiter's expired timer handler is queued but never runs: the io_context is destroyed
  // after the queue. The node is freed by the handler's destruction (LeakSanitizer checks).
  asio::io_context ctx;
  {
    tornado::Queue<int> q;
    q.get(std::chrono::steady_clock::time_point{},
          asio::bind_executor(ctx.get_executor(), [](boost::system::error_code, int) {}));
    asio::post(ctx, [] {});
    ctx.run_one();
  }
}

BOOST_AUTO_TEST_SUITE_END()
