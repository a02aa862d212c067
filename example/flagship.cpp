// Boost.Tornado in one program: an IOLoop with timeouts, a PeriodicCallback heartbeat, a
// Future settled by a worker thread, a producer/consumer stage built from a Queue and a
// Condition, a TCP server and client talking to each other over loopback, and run_sync to
// drive it all from main().
#include <boost/tornado.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

static const double start_time = IOLoop::time();

static void say(const std::string& what) {
  std::printf("[%4.0f ms] %s\n", (IOLoop::time() - start_time) * 1000, what.c_str());
}

// Blocking work that must stay off the loop's thread.
static std::string build_report() {
  std::this_thread::sleep_for(100ms);
  return "42 widgets counted";
}

// A consumer of the packing stage: waits on the Condition for the start signal, then takes
// words from the queue until it gets the empty stop word.
static asio::awaitable<void> packer(int id, tornado::Condition& go,
                                    tornado::Queue<std::string>& words) {
  co_await go.wait();
  say("packer " + std::to_string(id) + " starts");
  for (;;) {
    std::string word = co_await words.get();
    if (word.empty()) co_return;
    co_await gen::sleep(10ms);  // packing takes a while
    say("packer " + std::to_string(id) + " packed \"" + word + "\"");
    words.task_done();
  }
}

// The producer side: starts two packers, feeds them the report's words through a queue with
// room for two (a third put waits for a packer to take one), and waits until all are packed.
static asio::awaitable<void> pack(std::string text) {
  tornado::Condition go;
  tornado::Queue<std::string> words(2);
  std::vector<Future<void>> packers;
  for (int id = 1; id <= 2; ++id)
    packers.push_back(tornado::to_tornado_future(packer(id, go, words)));

  // A notification reaches only coroutines already waiting: let the packers get there first.
  co_await gen::moment();
  say(std::to_string(go.waiters()) + " packers wait on the Condition; notify_all()");
  go.notify_all();

  std::istringstream in(text);
  for (std::string word; in >> word;) co_await words.put(word);
  co_await words.join();  // every word put has been matched by a task_done()
  say("all words packed");
  for (std::size_t i = 0; i < packers.size(); ++i) co_await words.put("");
  co_await gen::multi(std::move(packers));
}

// The shipping desk: a TCP server that answers each line with a label for it.
static asio::awaitable<void> shipping_desk(tornado::IOStream stream, asio::ip::tcp::endpoint) {
  try {
    for (int n = 1;; ++n) {
      std::string line = co_await stream.read_until("\n");
      line.pop_back();
      co_await stream.write("parcel " + std::to_string(n) + ": " + line + "\n");
    }
  } catch (const tornado::StreamClosedError&) {
    say("desk: the client hung up");
  }
}

// The client side: connects with TCPClient, sends every word as a line, reads the labels.
static asio::awaitable<void> ship(std::string text) {
  tornado::TCPServer desk(co_await asio::this_coro::executor, shipping_desk);
  desk.listen(0, "127.0.0.1");
  unsigned short port = desk.endpoints().front().port();
  say("shipping desk listens on 127.0.0.1:" + std::to_string(port));

  tornado::TCPClient client(co_await asio::this_coro::executor);
  tornado::IOStream stream = co_await client.connect("127.0.0.1", port);
  std::istringstream in(text);
  for (std::string word; in >> word;) {
    co_await stream.write(word + "\n");
    std::string label = co_await stream.read_until("\n");
    label.pop_back();
    say("desk says \"" + label + "\"");
  }
  stream.close();
  co_await gen::sleep(10ms);  // the desk sees the close
  desk.stop();
}

static asio::awaitable<std::string> main_task() {
  IOLoop& loop = IOLoop::current();  // the loop run_sync is running
  say("main_task starts on the loop");

  // Timeouts: relative seconds, an absolute IOLoop::time(), a duration; one withdrawn.
  loop.call_later(0.05, [] { say("call_later(0.05) fired"); });
  tornado::TimeoutHandle reminder =
      loop.add_timeout(IOLoop::time() + 0.08, [] { say("this reminder was withdrawn"); });
  loop.add_timeout(30ms, [&] {
    say("add_timeout(30ms) fired and withdraws the 80 ms reminder");
    loop.remove_timeout(reminder);
  });

  // A heartbeat every 40 ms while the report is being built.
  int beats = 0;
  tornado::PeriodicCallback heartbeat([&] { say("heartbeat " + std::to_string(++beats)); }, 40ms);
  heartbeat.start();

  // The report is built on the loop's default thread pool; the Future is settled there and
  // the coroutine resumes here, on the loop.
  Future<std::string> report = loop.run_in_executor(nullptr, build_report);
  say("waiting for the worker thread");
  std::string text = co_await report.async_wait();
  heartbeat.stop();
  say("worker delivered: " + text);

  co_await pack(text);
  co_await ship(text);
  co_return text;
}

int main() try {
  IOLoop loop;

  std::string result = loop.run_sync(main_task, 2s);
  say("run_sync returned \"" + result + "\"");

  // run_sync's timeout is relative, in seconds; the unfinished work is cancelled.
  try {
    loop.run_sync([]() -> asio::awaitable<void> { co_await gen::sleep(10s); }, 0.05);
  } catch (const tornado::TimeoutError&) {
    say("run_sync(..., 0.05) gave up with TimeoutError");
  }

  loop.close();
  say("loop closed");
} catch (const std::exception& e) {
  std::fprintf(stderr, "flagship: %s\n", e.what());
  return 1;
}
