// Tornado's web spider demo (demos/webspider) with tornado.queues in C++: a Queue of URLs,
// a fixed number of worker coroutines, and join() to learn when the crawl is over. Fetching is
// simulated with gen::sleep over a made-up link graph, so the program needs no network.
#include <boost/tornado/gen.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/platform/asyncio.hpp>
#include <boost/tornado/queues.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace gen = boost::tornado::gen;
using namespace std::chrono_literals;
using tornado::Future;
using tornado::IOLoop;

static const std::string base_url = "http://docs.example/";
static const int concurrency = 4;

// The made-up web: each page and the links on it. Pages missing here answer 404.
static const std::map<std::string, std::vector<std::string>> web = {
    {"http://docs.example/", {"http://docs.example/guide", "http://docs.example/reference",
                              "http://elsewhere.example/"}},
    {"http://docs.example/guide", {"http://docs.example/", "http://docs.example/guide/locks",
                                   "http://docs.example/guide/queues"}},
    {"http://docs.example/guide/locks", {"http://docs.example/reference/locks",
                                         "http://docs.example/guide"}},
    {"http://docs.example/guide/queues", {"http://docs.example/reference/queues",
                                          "http://docs.example/missing"}},
    {"http://docs.example/reference", {"http://docs.example/reference/locks",
                                       "http://docs.example/reference/queues",
                                       "http://docs.example/reference/ioloop"}},
    {"http://docs.example/reference/locks", {"http://docs.example/reference"}},
    {"http://docs.example/reference/queues", {"http://docs.example/reference",
                                              "http://docs.example/guide/queues"}},
    {"http://docs.example/reference/ioloop", {"http://docs.example/reference",
                                              "http://docs.example/gone"}},
};

// Stands for an HTTP fetch plus link extraction: takes a little while, may fail.
static asio::awaitable<std::vector<std::string>> get_links_from_url(std::string url) {
  co_await gen::sleep(20ms);
  auto page = web.find(url);
  if (page == web.end()) throw std::runtime_error("HTTP 404");
  std::printf("fetched %s\n", url.c_str());
  co_return page->second;
}

// What the workers share; it lives in crawl()'s frame, which outlives them.
struct Crawl {
  tornado::Queue<std::string> q;  // an empty string tells a worker to stop (Python's None)
  std::set<std::string> fetching, fetched, dead;
};

static asio::awaitable<void> fetch_url(Crawl& c, std::string current_url) {
  if (c.fetching.count(current_url)) co_return;
  std::printf("fetching %s\n", current_url.c_str());
  c.fetching.insert(current_url);
  std::vector<std::string> urls = co_await get_links_from_url(current_url);
  c.fetched.insert(current_url);
  for (std::string& new_url : urls) {
    // Only follow links beneath the base URL.
    if (new_url.starts_with(base_url)) co_await c.q.put(std::move(new_url));
  }
}

// Python's `async for url in q:`, a loop around get().
static asio::awaitable<void> worker(Crawl& c) {
  for (;;) {
    std::string url = co_await c.q.get();
    if (url.empty()) co_return;
    try {
      co_await fetch_url(c, url);
    } catch (const tornado::CancelledError&) {
      throw;  // as Python's `except Exception`, which does not catch cancellation
    } catch (const std::exception& e) {
      std::printf("Exception: %s %s\n", e.what(), url.c_str());
      c.dead.insert(url);
    }
    c.q.task_done();
  }
}

static asio::awaitable<void> crawl() {
  const double start = IOLoop::time();
  Crawl c;
  co_await c.q.put(base_url);

  // Start workers, then wait for the work queue to be empty.
  std::vector<Future<void>> running;
  for (int i = 0; i < concurrency; ++i) running.push_back(tornado::to_tornado_future(worker(c)));
  co_await c.q.join(300s);

  std::set<std::string> done = c.fetched;
  done.insert(c.dead.begin(), c.dead.end());
  std::printf("Done in %.0f ms, fetched %zu URLs.\n", (IOLoop::time() - start) * 1000,
              c.fetched.size());
  std::printf("Unable to crawl %zu URLs; every URL accounted for: %s\n", c.dead.size(),
              done == c.fetching ? "yes" : "no");

  // Signal all the workers to exit, and wait for them.
  for (int i = 0; i < concurrency; ++i) co_await c.q.put("");
  co_await gen::multi(std::move(running));
}

int main() try {
  IOLoop loop;
  loop.run_sync(crawl, 5s);
} catch (const std::exception& e) {
  std::fprintf(stderr, "queue_crawler: %s\n", e.what());
  return 1;
}
