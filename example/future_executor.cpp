// Futures settled from other threads: a std::thread calling set_result, run_in_executor on the
// loop's default pool and on an application pool, run_on_executor, DummyExecutor, exceptions,
// cancellation, done callbacks and chain_future.
#include <boost/tornado/concurrent.hpp>
#include <boost/tornado/gen.hpp>
#include <boost/tornado/ioloop.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

static long slow_square(long x) {
  std::this_thread::sleep_for(20ms);  // stands in for blocking work
  return x * x;
}

static asio::awaitable<std::string> demo(asio::thread_pool& pool) {
  IOLoop& loop = IOLoop::current();

  // 1. A Future settled by a plain thread. set_result is thread-safe; the waiting coroutine
  //    resumes on the loop's thread.
  Future<int> answer;
  std::thread worker([answer]() mutable {
    std::this_thread::sleep_for(30ms);
    answer.set_result(42);
  });
  // A kept Future is waited on through async_wait().
  int v = co_await answer.async_wait();
  worker.join();
  std::printf("1. a std::thread settled the future with %d\n", v);

  // 2. run_in_executor: nullptr picks the loop's default thread pool.
  long sq = co_await loop.run_in_executor(nullptr, slow_square, 12).async_wait();
  std::printf("2. run_in_executor(nullptr, slow_square, 12) = %ld\n", sq);

  // 3. Any Asio executor works, here an application-owned pool; several run side by side.
  Future<long> a = loop.run_in_executor(pool.get_executor(), slow_square, 3);
  Future<long> b = loop.run_in_executor(pool.get_executor(), slow_square, 4);
  long sum = co_await a.async_wait() + co_await b.async_wait();
  std::printf("3. two jobs on an application pool: 9 + 16 = %ld\n", sum);

  // 4. run_on_executor makes a function that always runs on the given executor.
  auto remote_square = tornado::run_on_executor(pool.get_executor(), slow_square);
  std::printf("4. run_on_executor wrapper: %ld\n", co_await remote_square(7).async_wait());

  // 5. DummyExecutor runs the work inline, before run_in_executor returns: handy to make
  //    "executor" code synchronous in tests.
  Future<long> inline_result = loop.run_in_executor(tornado::dummy_executor, slow_square, 5);
  std::printf("5. DummyExecutor: done before any wait = %d, result %ld\n", inline_result.done(),
              inline_result.result());

  // 6. An exception thrown by the work is the exception the waiter sees.
  try {
    co_await loop.run_in_executor(nullptr, [] { throw std::runtime_error("disk on fire"); return 0; })
        .async_wait();
  } catch (const std::runtime_error& e) {
    std::printf("6. exception from the executor: %s\n", e.what());
  }

  // 7. Cancelling a Future completes its waiters with CancelledError; a late setter that uses
  //    future_set_result_unless_cancelled is then ignored.
  Future<int> abandoned;
  loop.call_later(10ms, [abandoned]() mutable { abandoned.cancel(); });
  try {
    co_await abandoned.async_wait();
  } catch (const tornado::CancelledError&) {
    tornado::future_set_result_unless_cancelled(abandoned, 1);
    std::printf("7. cancelled: cancelled()=%d, a late result is ignored\n", abandoned.cancelled());
  }

  // 8. Done callbacks run on the loop, never inside set_result: the line after set_result
  //    prints first. Waiters and done callbacks run in registration order, so the callback,
  //    added before the wait, prints before the coroutine resumes; the moment() after the wait
  //    only yields one more loop iteration. future_add_done_callback on a done Future calls
  //    back at once instead.
  Future<int> source, copy;
  tornado::chain_future(source, copy);
  copy.add_done_callback([](Future<int> f) { std::printf("   done callback: copy = %d\n", f.result()); });
  source.set_result(8);
  std::printf("8. set_result(8) returned; callbacks come later\n");
  co_await copy.async_wait();
  co_await gen::moment();
  tornado::future_add_done_callback(source, [](const Future<int>& f) {
    std::printf("   future_add_done_callback on a done future: %d, called inline\n", f.result());
  });

  static_assert(tornado::is_future_v<Future<int>> && !tornado::is_future_v<int>);
  co_return "all done";
}

int main() try {
  asio::thread_pool pool(2);
  IOLoop loop;
  std::string outcome = loop.run_sync([&] { return demo(pool); }, 5s);
  std::printf("run_sync returned \"%s\"\n", outcome.c_str());
  loop.close();  // also joins the default executor's threads
  pool.join();
} catch (const std::exception& e) {
  std::fprintf(stderr, "future_executor: %s\n", e.what());
  return 1;
}
