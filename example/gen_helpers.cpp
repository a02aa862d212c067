// tornado.gen in C++: sleep, moment, with_timeout (on a Future and on an Asio operation),
// multi over a vector and a map, and WaitIterator.
#include <boost/tornado/gen.hpp>
#include <boost/tornado/log.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

// A Future that some other part of the program settles later; here a timeout does it.
static Future<int> value_after(std::chrono::milliseconds delay, int value) {
  Future<int> f;
  IOLoop::current().call_later(delay, [f, value]() mutable { f.set_result(value); });
  return f;
}

static asio::awaitable<void> demo() {
  IOLoop& loop = IOLoop::current();
  const double t0 = IOLoop::time();
  auto ms = [t0] { return (IOLoop::time() - t0) * 1000; };

  // sleep takes a duration or seconds.
  co_await gen::sleep(20ms);
  co_await gen::sleep(0.02);
  std::printf("sleep: %.0f ms after two 20 ms sleeps\n", ms());

  // moment yields one loop iteration, so callbacks queued before it get to run.
  bool other_ran = false;
  loop.add_callback([&] { other_ran = true; });
  co_await gen::moment();
  std::printf("moment: the queued callback ran meanwhile: %d\n", other_ran);

  // with_timeout on a Future gives up waiting but leaves the Future alone: it may still
  // finish, and if it then fails, the failure is logged (see the log hook in main).
  Future<int> slow;
  loop.call_later(60ms, [slow]() mutable { slow.set_exception(std::runtime_error("late failure")); });
  try {
    co_await gen::with_timeout(30ms, slow);
  } catch (const tornado::TimeoutError& e) {
    std::printf("with_timeout(Future): %s; the Future is still pending: %d\n",
                e.code().message().c_str(), !slow.done());
  }

  // with_timeout on an Asio operation cancels the operation and reports the timeout once it
  // has finished. Any other token than the default gets an error_code instead of an exception.
  asio::steady_timer timer(co_await asio::this_coro::executor, 10s);
  auto [ec] = co_await gen::with_timeout(30ms, timer.async_wait(asio::deferred),
                                         asio::as_tuple(asio::use_awaitable));
  std::printf("with_timeout(Asio op): \"%s\" (== error::timeout: %d) at %.0f ms\n",
              ec.message().c_str(), ec == tornado::error::timeout, ms());

  // multi waits for all and keeps the input order, not the completion order.
  std::vector<Future<int>> three{value_after(30ms, 1), value_after(10ms, 2), value_after(20ms, 3)};
  std::vector<int> all = co_await gen::multi(three);
  std::printf("multi(vector): %d %d %d\n", all[0], all[1], all[2]);

  std::map<std::string, Future<int>> named{{"alpha", value_after(10ms, 10)},
                                           {"beta", value_after(5ms, 20)}};
  std::map<std::string, int> by_name = co_await gen::multi(named);
  std::printf("multi(map): alpha=%d beta=%d\n", by_name["alpha"], by_name["beta"]);

  // The first failure in input order is raised; later ones are logged.
  Future<int> bad1, bad2;
  bad1.set_exception(std::runtime_error("first failure"));
  bad2.set_exception(std::runtime_error("second failure"));
  std::vector<Future<int>> mixed{value_after(5ms, 0), bad1, bad2};
  try {
    co_await gen::multi(mixed);
  } catch (const std::runtime_error& e) {
    std::printf("multi with failures raised: %s\n", e.what());
  }

  // WaitIterator hands results over as they finish and says which input each came from.
  std::vector<Future<int>> racing{value_after(60ms, 100), value_after(20ms, 200), value_after(40ms, 300)};
  gen::WaitIterator<int> it(racing);
  while (!it.done()) {
    int result = co_await it.next();
    std::printf("WaitIterator: input #%zu gave %d at %.0f ms\n", *it.current_index(), result, ms());
  }

  // Give the Future abandoned by with_timeout time to fail, so its log line shows.
  co_await gen::sleep(20ms);
}

int main() try {
  // Messages the library logs go through one hook; here they are printed to stdout.
  tornado::set_log_hook([](const tornado::log_record& r) {
    std::printf("log hook [%.*s]: %.*s\n", int(r.logger.size()), r.logger.data(),
                int(r.message.size()), r.message.data());
  });
  IOLoop loop;
  loop.run_sync(demo, 2s);
  tornado::set_log_hook(nullptr);
} catch (const std::exception& e) {
  std::fprintf(stderr, "gen_helpers: %s\n", e.what());
  return 1;
}
