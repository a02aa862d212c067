// Line echo: the library's echo server (read_until + write, as example/echo_server.cpp) against
// a raw Asio server (async_read_until + async_write) under the same load client: 50
// connections, lines of 100 B, 1 KiB and 16 KiB; server CPU microseconds per round trip. Each
// server runs on its own thread pinned to CPU 0, the client on CPU 1, loading the two servers
// in turns (see measure). Then 10,000 concurrent
// connections echoing, and server memory per idle connection with a read pending.
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/tcpserver.hpp>

#include "bench.hpp"

#include <boost/asio.hpp>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using tcp = asio::ip::tcp;

using bench::pin;

static double thread_cpu_seconds(pthread_t t) {
  clockid_t cid;
  pthread_getcpuclockid(t, &cid);
  timespec ts;
  clock_gettime(cid, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- the raw Asio server ----
struct raw_session : std::enable_shared_from_this<raw_session> {
  tcp::socket socket;
  std::string buf;
  explicit raw_session(tcp::socket s) : socket(std::move(s)) {}
  void read() {
    asio::async_read_until(socket, asio::dynamic_buffer(buf), '\n',
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             if (ec) return;
                             asio::async_write(self->socket, asio::buffer(self->buf.data(), n),
                                               [self, n](boost::system::error_code ec, std::size_t) {
                                                 if (ec) return;
                                                 self->buf.erase(0, n);
                                                 self->read();
                                               });
                           });
  }
};
static void raw_accept(tcp::acceptor& a) {
  a.async_accept([&a](boost::system::error_code ec, tcp::socket s) {
    if (ec) return;
    s.set_option(tcp::no_delay(true));
    std::make_shared<raw_session>(std::move(s))->read();
    raw_accept(a);
  });
}

// ---- ours: the echo example's handler ----
static asio::awaitable<void> echo(tornado::IOStream stream, tcp::endpoint) {
  stream.set_nodelay(true);
  try {
    for (;;) {
      std::string line = co_await stream.read_until("\n", 64 * 1024);
      co_await stream.write(std::move(line));
    }
  } catch (const tornado::StreamClosedError&) {
  }
}

// A server on its own thread; stop() ends it.
class server_thread {
public:
  explicit server_thread(bool ours) {
    std::atomic<unsigned short> port{0};
    thread_ = std::thread([this, ours, &port] {
      pin(0);
      if (ours) {
        tornado::IOLoop loop;
        ctx_ = &loop.context();
        tornado::TCPServer server(loop.get_executor(), echo);
        server.listen(0, "127.0.0.1", AF_INET, 1024);
        port = server.endpoints().front().port();
        auto guard = asio::make_work_guard(loop.context());
        loop.context().run();
      } else {
        asio::io_context ctx(1);
        ctx_ = &ctx;
        tcp::acceptor a(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        a.listen(1024);
        raw_accept(a);
        port = a.local_endpoint().port();
        auto guard = asio::make_work_guard(ctx);
        ctx.run();
      }
    });
    while (!port) std::this_thread::yield();
    port_ = port;
  }
  ~server_thread() {
    ctx_->stop();
    thread_.join();
  }
  unsigned short port() const { return port_; }
  pthread_t handle() { return thread_.native_handle(); }
  // Resident memory of the whole process, bytes.
  static long rss() {
    std::ifstream f("/proc/self/statm");
    long pages = 0, resident = 0;
    f >> pages >> resident;
    return resident * sysconf(_SC_PAGESIZE);
  }

private:
  std::thread thread_;
  asio::io_context* ctx_ = nullptr;
  unsigned short port_ = 0;
};

// The load client: each connection writes a line, waits for its echo, checks it, repeats.
struct load_client {
  struct conn : std::enable_shared_from_this<conn> {
    tcp::socket s;
    std::string out, in;
    load_client* owner;
    conn(asio::io_context& io, load_client* o, std::size_t msg, int id) : s(io), owner(o) {
      out.resize(msg - 1);
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = char('a' + (i * 7 + id) % 26);
      out.push_back('\n');
    }
    void go() {
      if (owner->stopping) return;
      asio::async_write(s, asio::buffer(out), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
        if (ec) return void(++self->owner->errors);
        asio::async_read_until(self->s, asio::dynamic_buffer(self->in), '\n',
                               [self](boost::system::error_code ec, std::size_t n) {
                                 if (ec) return void(++self->owner->errors);
                                 if (n != self->out.size() || self->in.compare(0, n, self->out) != 0) ++self->owner->errors;
                                 self->in.erase(0, n);
                                 ++self->owner->round_trips;
                                 self->go();
                               });
      });
    }
  };
  asio::io_context io{1};
  std::vector<std::shared_ptr<conn>> conns;
  long long round_trips = 0, errors = 0;
  bool stopping = false;

  void connect(unsigned short port, int n, std::size_t msg) {
    for (int i = 0; i < n; ++i) {
      auto c = std::make_shared<conn>(io, this, msg, i);
      c->s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
      c->s.set_option(tcp::no_delay(true));
      conns.push_back(c);
    }
  }
  void run_for(double seconds) {
    io.restart();
    io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds)));
  }
};

// Server CPU per round trip, ours against raw: both servers up at once (each on its own
// thread, both pinned to CPU 0), the client loading one at a time in bursts of 0.1 s that take
// turns, each burst drained before the next starts. On a shared VM the machine's speed drifts
// by several percent over seconds; bursts taking turns meet the same drift, where runs of
// their own would each compare whatever speed the machine had at that moment.
struct echo_result {
  double ours_us_per_rt, raw_us_per_rt;
  long long errors;
};

static echo_result measure(int conns, std::size_t msg, double seconds) {
  server_thread ours(true), raw(false);
  echo_result r{};
  std::thread client([&] {
    pin(1);
    load_client lc[2];
    server_thread* server[2] = {&ours, &raw};
    double cpu[2] = {0, 0};
    long long rts[2] = {0, 0};
    for (int k = 0; k < 2; ++k) lc[k].connect(server[k]->port(), conns, msg);
    const double burst = 0.1;
    const int bursts = std::max(3, int(seconds / burst));
    for (int b = -1; b < bursts; ++b) {  // b == -1: warm-up, not counted
      for (int k = 0; k < 2; ++k) {
        long long rt0 = lc[k].round_trips;
        double cpu0 = thread_cpu_seconds(server[k]->handle());
        lc[k].stopping = false;
        for (auto& c : lc[k].conns) c->go();
        lc[k].run_for(burst);
        lc[k].stopping = true;
        lc[k].io.restart();
        lc[k].io.run();  // the round trips in flight finish; then every connection is idle
        if (b < 0) continue;
        cpu[k] += thread_cpu_seconds(server[k]->handle()) - cpu0;
        rts[k] += lc[k].round_trips - rt0;
      }
    }
    r.ours_us_per_rt = rts[0] ? cpu[0] * 1e6 / double(rts[0]) : 1e9;
    r.raw_us_per_rt = rts[1] ? cpu[1] * 1e6 / double(rts[1]) : 1e9;
    r.errors = lc[0].errors + lc[1].errors;
  });
  client.join();
  return r;
}

// `n` connections that each echo `rounds` lines; returns errors, and the server's memory growth
// per connection once every connection is idle with a read pending. The client is a process of
// its own (each side needs a descriptor per connection).
static std::pair<long long, double> many_connections(bool ours, int n, int rounds) {
  server_thread server(ours);
  long before = server_thread::rss();
  int to_server[2], to_client[2];
  if (pipe(to_server) != 0 || pipe(to_client) != 0) return {-1, 0};
  pid_t pid = fork();
  if (pid == 0) {
    pin(1);
    long long errors = 0;
    asio::io_context io(1);
    std::vector<tcp::socket> socks;
    socks.reserve(n);
    for (int i = 0; i < n; ++i) {
      socks.emplace_back(io);
      boost::system::error_code ec;
      socks.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()), ec);
      if (ec) ++errors;
    }
    std::vector<std::string> in(n);
    int pending = 0;
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < n; ++i) {
        ++pending;
        asio::async_write(socks[i], asio::buffer("x\n", 2), [&, i](boost::system::error_code ec, std::size_t) {
          if (ec) {
            ++errors;
            --pending;
            return;
          }
          asio::async_read_until(socks[i], asio::dynamic_buffer(in[i]), '\n', [&, i](boost::system::error_code ec, std::size_t k) {
            if (ec || k != 2) ++errors;
            if (!ec) in[i].erase(0, k);
            --pending;
          });
        });
      }
      io.restart();  // the previous round ran it out of work
      while (pending) io.run_one();
    }
    if (write(to_server[1], &errors, sizeof errors) != sizeof errors) _exit(1);
    char c;
    if (read(to_client[0], &c, 1) != 1) _exit(1);  // keep the connections until measured
    _exit(0);
  }
  long long errors = -1;
  if (read(to_server[0], &errors, sizeof errors) != sizeof errors) errors = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double per_conn = double(server_thread::rss() - before) / n;
  if (write(to_client[1], "x", 1) != 1) errors = -1;
  waitpid(pid, nullptr, 0);
  for (int fd : {to_server[0], to_server[1], to_client[0], to_client[1]}) close(fd);
  return {errors, per_conn};
}

// Runs fn in a fresh child process (so one server's freed memory cannot flatter the other's).
template <class F>
static std::pair<long long, double> in_child(F fn) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, 0};
  pid_t pid = fork();
  if (pid == 0) {
    auto r = fn();
    if (write(fds[1], &r, sizeof r) != sizeof r) _exit(1);
    _exit(0);
  }
  std::pair<long long, double> r{-1, 0};
  close(fds[1]);
  if (read(fds[0], &r, sizeof r) != sizeof r) r = {-1, 0};
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return r;
}

int main() {
  const double secs = std::max(0.3, 6.0 * bench::scale());
  for (std::size_t msg : {100, 1024, 16384}) {
    if (std::getenv("BENCH_CONNECTIONS")) break;
    auto e = measure(50, msg, secs);
    std::string name = "echo_50conns_" + std::to_string(msg) + "B_server_cpu";
    bench::report(name.c_str(), e.ours_us_per_rt, "raw_asio", e.raw_us_per_rt, "us/roundtrip");
    if (e.errors) std::printf("echo errors: %lld\n", e.errors);
  }

  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  int n = lim.rlim_cur >= 10'000 + 100 ? 10'000 : int(lim.rlim_cur - 100);
  if (const char* c = std::getenv("BENCH_CONNECTIONS")) n = std::atoi(c);
  auto [ours_errors, ours_mem] = in_child([&] { return many_connections(true, n, 3); });
  auto [raw_errors, raw_mem] = in_child([&] { return many_connections(false, n, 3); });
  std::printf("bench echo_%d_connections: errors ours %lld, raw_asio %lld\n", n, ours_errors, raw_errors);
  bench::report("idle_connection_memory", ours_mem, "raw_asio", raw_mem, "bytes/connection");
  return ours_errors + raw_errors != 0;
}
