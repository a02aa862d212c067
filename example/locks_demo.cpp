// tornado.locks in C++: a Lock held by a guard (Tornado's `async with lock:`) and acquired with
// a timeout, a Condition notifying its waiters, an Event, and a Semaphore that lets at most two
// workers run at once.
#include <boost/tornado/gen.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/platform/asyncio.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

// Runs coroutines side by side and waits for all of them, as `await gen.multi([...])`.
static asio::awaitable<void> run_all(std::vector<asio::awaitable<void>> coros) {
  std::vector<Future<void>> running;
  for (auto& c : coros) running.push_back(tornado::to_tornado_future(std::move(c)));
  co_await gen::multi(std::move(running));
}

// ---- Lock ----

// Two writers append two lines each to a shared "file". Each holds the lock across a sleep, so
// without it their halves of a line would interleave.
static asio::awaitable<void> writer(tornado::Lock& lock, std::string& file, std::string who) {
  for (int i = 0; i < 2; ++i) {
    auto guard = co_await lock.acquire();  // async with lock:
    file += "  " + who + " begins,";
    co_await gen::sleep(5ms);              // the other writer queues meanwhile
    file += " " + who + " ends\n";
  }                                        // released here, at the end of the guard's scope
}

static asio::awaitable<void> lock_demo() {
  std::puts("== Lock");
  tornado::Lock lock;
  std::string file;
  std::vector<asio::awaitable<void>> writers;
  writers.push_back(writer(lock, file, "alice"));
  writers.push_back(writer(lock, file, "bob"));
  co_await run_all(std::move(writers));
  std::printf("lines written under the lock:\n%s", file.c_str());

  // A timed acquire: TimeoutError, and the lock is left as it was.
  auto held = co_await lock.acquire();
  try {
    auto second = co_await lock.acquire(20ms);
  } catch (const tornado::TimeoutError& e) {
    std::printf("acquire(20ms) while held: %s; still locked: %d\n", e.what(), lock.locked());
  }
  held.reset();  // releases early
  std::printf("after guard.reset(): locked: %d\n", lock.locked());

  // detach() keeps the lock past the guard's scope, for a manual release().
  (co_await lock.acquire()).detach();
  std::printf("detached guard: locked: %d\n", lock.locked());
  lock.release();
  try {
    lock.release();
  } catch (const std::logic_error& e) {
    std::printf("releasing an unlocked lock: std::logic_error(\"%s\")\n", e.what());
  }

  // Any Asio token: a callback receives the error code and the guard. Bind it to the loop's
  // executor, or it would run on asio::system_executor's threads.
  auto on_acquired = [](boost::system::error_code ec, tornado::Lock::guard guard) {
    std::printf("callback acquire: \"%s\", owns the lock: %d\n", ec.message().c_str(),
                guard.owns());
  };  // the guard releases the lock when the callback returns
  auto ex = co_await asio::this_coro::executor;
  lock.acquire(tornado::Deadline(), asio::bind_executor(ex, on_acquired));
  co_await gen::sleep(1ms);
  std::printf("after the callback: locked: %d\n", lock.locked());
}

// ---- Condition ----

static asio::awaitable<void> waiter(tornado::Condition& condition, int id) {
  std::printf("waiter %d: I'll wait right here\n", id);
  bool notified = co_await condition.wait();
  std::printf("waiter %d: I'm done waiting (notified: %d)\n", id, notified);
}

static asio::awaitable<void> notifier(tornado::Condition& condition) {
  co_await gen::sleep(5ms);
  std::printf("notifier: %zu waiting; notify(1)\n", condition.waiters());
  condition.notify();
  co_await gen::sleep(5ms);
  std::printf("notifier: %zu waiting; notify_all()\n", condition.waiters());
  condition.notify_all();
}

static asio::awaitable<void> condition_demo() {
  std::puts("== Condition");
  tornado::Condition condition;
  std::vector<asio::awaitable<void>> all;
  for (int id = 1; id <= 3; ++id) all.push_back(waiter(condition, id));
  all.push_back(notifier(condition));
  co_await run_all(std::move(all));

  // A timed wait returns false instead of throwing.
  bool notified = co_await condition.wait(10ms);
  std::printf("wait(10ms) with nobody notifying returned %d\n", notified);
}

// ---- Event ----

static asio::awaitable<void> event_waiter(tornado::Event& event) {
  std::puts("event waiter: waiting for the event");
  co_await event.wait();
  std::puts("event waiter: not waiting this time");
  co_await event.wait();  // already set: returns at once
  std::puts("event waiter: done");
}

static asio::awaitable<void> event_setter(tornado::Event& event) {
  co_await gen::sleep(5ms);
  std::puts("event setter: about to set the event");
  event.set();
}

static asio::awaitable<void> event_demo() {
  std::puts("== Event");
  tornado::Event event;
  std::vector<asio::awaitable<void>> both;
  both.push_back(event_waiter(event));
  both.push_back(event_setter(event));
  co_await run_all(std::move(both));

  event.clear();
  try {
    co_await event.wait(10ms);
  } catch (const tornado::TimeoutError&) {
    std::printf("cleared event, wait(10ms): TimeoutError; is_set: %d\n", event.is_set());
  }
}

// ---- Semaphore ----

static asio::awaitable<void> worker(tornado::Semaphore& sem, int id, int& running, int& peak) {
  auto permit = co_await sem.acquire();
  peak = std::max(peak, ++running);
  std::printf("worker %d is working\n", id);
  co_await gen::sleep(10ms);  // use some resource
  --running;
  std::printf("worker %d is done\n", id);
}  // the permit is released here

static asio::awaitable<void> semaphore_demo() {
  std::puts("== Semaphore");
  tornado::Semaphore sem(2);
  int running = 0, peak = 0;
  std::vector<asio::awaitable<void>> workers;
  for (int id = 0; id < 4; ++id) workers.push_back(worker(sem, id, running, peak));
  co_await run_all(std::move(workers));
  std::printf("at most %d workers ran at once; value back to %ld\n", peak, sem.value());

  tornado::BoundedSemaphore bounded(1);
  try {
    bounded.release();
  } catch (const std::invalid_argument& e) {
    std::printf("BoundedSemaphore over-release: std::invalid_argument(\"%s\")\n", e.what());
  }
}

static asio::awaitable<void> demo() {
  co_await lock_demo();
  co_await condition_demo();
  co_await event_demo();
  co_await semaphore_demo();
}

int main() try {
  IOLoop loop;
  loop.run_sync(demo, 5s);
} catch (const std::exception& e) {
  std::fprintf(stderr, "locks_demo: %s\n", e.what());
  return 1;
}
