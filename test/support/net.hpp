// Shared by the network tests (iostream, tcpserver, tcpclient): a bounded loop driver, TLS material made
// with the openssl command at test time, and peer processes (Python Tornado scripts, openssl
// s_server and s_client) that are always killed and always waited for with a limit.
#ifndef BOOST_TORNADO_TEST_SUPPORT_NET_HPP
#define BOOST_TORNADO_TEST_SUPPORT_NET_HPP

#include "test.hpp"
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/netutil.hpp>
#include <boost/tornado/queues.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

extern char** environ;

namespace test {

namespace asio = boost::asio;
namespace tornado = boost::tornado;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

// ---- driving the loop ----

// Runs `body` as a coroutine on `ctx` until it finishes and rethrows what it threw. A hang
// fails the test after `limit` instead of blocking the run.
template <class F>
void run(asio::io_context& ctx, F&& body, std::chrono::steady_clock::duration limit = 60s) {
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(ctx, std::forward<F>(body), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && ctx.run_one_until(deadline)) {
  }
  BOOST_REQUIRE_MESSAGE(done, "the test's coroutine did not finish in time (hang)");
  ctx.restart();
  ctx.poll();
  if (error) std::rethrow_exception(error);
}

// Runs `session` (a function returning an awaitable) to its end, counting the loop's steps;
// then, for every k up to that count, runs it again on a fresh loop and destroys the loop after
// k steps. Whatever is pending at that point (operations, timers, coroutine frames holding
// streams and servers) must go away without a crash or a leak (the sanitizer build checks the
// latter).
template <class Session>
void teardown_at_every_step(Session session) {
  std::size_t steps = 0;
  {
    asio::io_context ctx(1);
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(ctx, session, [&](std::exception_ptr e) {
      done = true;
      error = e;
    });
    while (!done && ctx.run_one_for(5s)) ++steps;
    BOOST_REQUIRE(done);
    if (error) std::rethrow_exception(error);
  }
  BOOST_TEST_MESSAGE("session steps: " << steps);
  for (std::size_t k = 0; k <= steps; ++k) {
    asio::io_context ctx(1);
    asio::co_spawn(ctx, session, asio::detached);
    for (std::size_t i = 0; i < k; ++i)
      if (!ctx.run_one_for(5s)) break;
  }
}

inline asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

namespace detail {
// An operation's outcome, its failure included: `||` waits for a branch that succeeds, so a
// failing operation must not count as one that has not finished.
template <class T>
struct outcome {
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
};

template <class T>
asio::awaitable<outcome<T>> catch_all(asio::awaitable<T> op) {
  outcome<T> r;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      r.value.emplace();
    } else {
      r.value.emplace(co_await std::move(op));
    }
  } catch (...) {
    r.error = std::current_exception();
  }
  co_return r;
}
} // namespace detail

// `op`, or an exception once `limit` has passed: an operation that would hang fails instead.
// What `op` throws is rethrown.
template <class T>
asio::awaitable<T> within(asio::awaitable<T> op, std::chrono::steady_clock::duration limit = 5s) {
  using namespace asio::experimental::awaitable_operators;
  auto r = co_await (detail::catch_all(std::move(op)) || sleep_for(limit));
  if (r.index() == 1) throw std::runtime_error("operation did not complete in time");
  auto& o = std::get<0>(r);
  if (o.error) std::rethrow_exception(o.error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*o.value);
}

template <tornado::awaited_operation Op>
auto within(Op op, std::chrono::steady_clock::duration limit = 5s) {
  return within(std::move(op).as_awaitable(), limit);
}

// Waits until `pred` holds, polling the loop; fails after `limit`.
template <class Pred>
asio::awaitable<void> eventually(Pred pred, std::chrono::steady_clock::duration limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("condition not met in time");
    co_await sleep_for(2ms);
  }
}

// The exception `op` fails with; an exception of its own if `op` succeeds or throws another.
template <class E, class T>
asio::awaitable<E> expect_throw(asio::awaitable<T> op) {
  try {
    co_await std::move(op);
  } catch (const E& e) {
    co_return e;
  }
  throw std::runtime_error("expected an exception, the operation succeeded");
}

template <class E, tornado::awaited_operation Op>
auto expect_throw(Op op) {
  return expect_throw<E>(std::move(op).as_awaitable());
}

template <class E>
error_code code(E e) {
  return error_code(e);
}

// ---- log records with their level ----

// As log_capture, keeping each record's level (test::log_capture keeps logger and message).
class level_log {
public:
  struct entry {
    tornado::log_level level;
    std::string logger, message;
  };
  level_log() {
    prev_ = tornado::set_log_hook([this](const tornado::log_record& r) {
      std::lock_guard lock(mutex_);
      entries_.push_back({r.level, std::string(r.logger), std::string(r.message)});
    });
  }
  ~level_log() { tornado::set_log_hook(prev_); }
  level_log(const level_log&) = delete;
  level_log& operator=(const level_log&) = delete;

  std::vector<entry> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  // The records at `level` or above, one a line, for messages.
  std::string at_least(tornado::log_level level) const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (auto& e : entries_)
      if (e.level >= level) out += e.logger + ": " + e.message + "\n";
    return out;
  }
  bool contains(std::string_view needle) const {
    std::lock_guard lock(mutex_);
    for (auto& e : entries_)
      if ((e.logger + ": " + e.message).find(needle) != std::string::npos) return true;
    return false;
  }

private:
  mutable std::mutex mutex_;
  std::vector<entry> entries_;
  tornado::log_hook prev_;
};

// ---- addresses ----

inline const asio::ip::address loopback_v4 = asio::ip::make_address("127.0.0.1");
inline const asio::ip::address loopback_v6 = asio::ip::make_address("::1");

inline bool ipv6_loopback_available() {
  asio::io_context ctx;
  tcp::acceptor a(ctx);
  error_code ec;
  a.open(tcp::v6(), ec);
  if (!ec) a.bind(tcp::endpoint(loopback_v6, 0), ec);
  return !ec;
}

// The addresses `host` resolves to (empty when it does not resolve), in the resolver's order.
inline std::vector<tcp::endpoint> resolve_now(const std::string& host) {
  asio::io_context ctx;
  tcp::resolver r(ctx);
  error_code ec;
  auto results = r.resolve(host, "80", ec);
  std::vector<tcp::endpoint> out;
  if (!ec)
    for (auto& e : results) out.push_back(e.endpoint());
  return out;
}

inline bool resolves_to_family(const std::string& host, bool v6) {
  for (auto& ep : resolve_now(host))
    if (ep.address().is_v6() == v6) return true;
  return false;
}

// Tornado's refusing_port(): a loopback port nothing listens on, held by a connected client
// socket so that nothing else takes it while the test runs.
struct refusing_port {
  tcp::socket holder;
  tcp::endpoint endpoint;
};

inline refusing_port make_refusing_port(const asio::any_io_executor& ex, asio::ip::address addr = loopback_v4) {
  tcp::acceptor acceptor(ex, tcp::endpoint(addr, 0));
  tcp::socket client(ex);
  client.connect(acceptor.local_endpoint());
  tcp::socket conn = acceptor.accept();
  conn.close();
  acceptor.close();
  const tcp::endpoint ep(addr, client.local_endpoint().port());
  return {std::move(client), ep};
}

// A port free at the moment of the call (bound to port 0, then released).
inline unsigned short free_port(const asio::any_io_executor& ex, asio::ip::address addr = loopback_v4) {
  tcp::acceptor a(ex, tcp::endpoint(addr, 0));
  return a.local_endpoint().port();
}

// ---- TLS material, made per run in a private temporary directory ----

struct tls_files {
  std::filesystem::path dir;
  std::filesystem::path cert, key;              // CN=localhost, SAN localhost, 127.0.0.1, ::1
  std::filesystem::path other_cert, other_key;  // names example.com only

  tls_files() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tornado-net-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    other_cert = dir / "other-cert.pem";
    other_key = dir / "other-key.pem";
    make(cert, key, "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1");
    make(other_cert, other_key, "example.com", "DNS:example.com");
  }
  ~tls_files() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

private:
  static void make(const std::filesystem::path& c, const std::filesystem::path& k, const std::string& cn,
                   const std::string& san) {
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=" + cn + " -addext subjectAltName=" + san + " -keyout '" + k.string() + "' -out '" +
        c.string() + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl could not make a test certificate");
  }
};

inline const tls_files& tls() {
  static const tls_files files;
  return files;
}

inline asio::ssl::context make_server_tls(const std::filesystem::path& cert, const std::filesystem::path& key) {
  asio::ssl::context c(asio::ssl::context::tls_server);
  c.use_certificate_chain_file(cert.string());
  c.use_private_key_file(key.string(), asio::ssl::context::pem);
  return c;
}

// Serves the localhost certificate.
inline asio::ssl::context& server_tls() {
  static asio::ssl::context ctx = make_server_tls(tls().cert, tls().key);
  return ctx;
}

// Serves the example.com certificate.
inline asio::ssl::context& other_server_tls() {
  static asio::ssl::context ctx = make_server_tls(tls().other_cert, tls().other_key);
  return ctx;
}

// Trusts both test certificates: a failure against the example.com one is its name's.
inline asio::ssl::context& client_tls() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.load_verify_file(tls().cert.string());
    c.load_verify_file(tls().other_cert.string());
    return c;
  }();
  return ctx;
}

// The system's authorities: trusts neither test certificate.
inline asio::ssl::context& default_client_tls() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_default_verify_paths();
    return c;
  }();
  return ctx;
}

inline bool is_ssl_error(const error_code& ec) {
  return ec && ec.category() == asio::error::get_ssl_category();
}

// The peer's certificate was refused for `reason` (an X509_V_ERR_* value).
inline bool is_verify_error(const error_code& ec, long reason) {
  return ec == error_code(static_cast<int>(reason), tornado::certificate_category());
}

// ---- servers' handlers and clients ----

// What a plain-callback handler hands over (Tornado's TestTCPServer.queue).
template <class S>
struct accepted {
  S stream;
  tcp::endpoint peer;
};
template <class S>
using accept_queue = tornado::Queue<std::optional<accepted<S>>>;

template <class S>
auto enqueue_to(std::shared_ptr<accept_queue<S>> q) {
  return [q](S stream, tcp::endpoint peer) { q->put_nowait(accepted<S>{std::move(stream), peer}); };
}

template <class S>
asio::awaitable<accepted<S>> next_accepted(accept_queue<S>& q, std::chrono::seconds limit = 10s) {
  auto item = co_await q.get(limit);
  co_return std::move(*item);
}

// Answers each line with "echo: " + line until the peer goes.
template <class S>
asio::awaitable<void> echo(S stream, tcp::endpoint) {
  try {
    for (;;) {
      std::string line = co_await stream.read_until("\n");
      co_await stream.write("echo: " + line);
    }
  } catch (const tornado::StreamClosedError&) {
  }
}

// The same, but the stream's failure escapes (the peer closing included).
template <class S>
asio::awaitable<void> echo_until_error(S stream, tcp::endpoint) {
  for (;;) {
    std::string line = co_await stream.read_until("\n");
    co_await stream.write("echo: " + line);
  }
}

template <class S>
asio::awaitable<void> drain(S stream) {
  try {
    co_await stream.read_until_close();
  } catch (const tornado::StreamClosedError&) {
  }
}

// ---- clients ----

inline asio::awaitable<tornado::IOStream> connect_tcp(tcp::endpoint ep) {
  tornado::IOStream s(co_await asio::this_coro::executor);
  co_await s.connect(ep);
  co_return s;
}

inline asio::awaitable<tornado::SSLIOStream> connect_tls(tcp::endpoint ep, std::string name = "localhost") {
  tornado::SSLIOStream s(tcp::socket(co_await asio::this_coro::executor), client_tls());
  co_await s.connect(ep, name);
  co_return s;
}

template <class S>
asio::awaitable<void> expect_echo(S& client, std::string line) {
  co_await client.write(line);
  BOOST_TEST(co_await within(client.read_until("\n")) == "echo: " + line);
}

// ---- peer processes ----

inline const char* const python = "/usr/bin/python3";

// A Tornado echo server: prints its port, answers each line with "echo: " + line; TLS when
// given a certificate and key. Exits when its stdin closes.
inline constexpr std::string_view echo_server_py = R"py(
import asyncio, ssl, sys
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

class EchoServer(TCPServer):
    async def handle_stream(self, stream, address):
        try:
            while True:
                line = await stream.read_until(b"\n")
                await stream.write(b"echo: " + line)
        except StreamClosedError:
            pass

async def main():
    ssl_ctx = None
    if len(sys.argv) > 2:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    server = EchoServer(ssl_options=ssl_ctx)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await asyncio.wait_for(reader.read(), 120)
    except asyncio.TimeoutError:
        pass

asyncio.run(main())
)py";

// A Tornado client: connects to argv[1]:argv[2] (TLS, verifying the server as argv[1], when
// given a CA file), sends "line 0".."line 2", prints each reply line, exits 0.
inline constexpr std::string_view echo_client_py = R"py(
import asyncio, ssl, sys
from tornado.tcpclient import TCPClient

async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    ssl_ctx = None
    if len(sys.argv) > 3:
        ssl_ctx = ssl.create_default_context(cafile=sys.argv[3])
    stream = await TCPClient().connect(host, port, ssl_options=ssl_ctx, timeout=10)
    for i in range(3):
        await stream.write(f"line {i}\n".encode())
        reply = await asyncio.wait_for(stream.read_until(b"\n"), 10)
        sys.stdout.write(reply.decode())
        sys.stdout.flush()
    stream.close()

asyncio.run(main())
)py";

// Writes `text` to `name` in the run's temporary directory (once) and returns its path.
inline std::string script(const std::string& name, std::string_view text) {
  static std::mutex m;
  std::lock_guard lock(m);
  auto path = tls().dir / name;
  if (!std::filesystem::exists(path)) {
    std::ofstream out(path);
    out << text;
  }
  return path.string();
}

inline bool python_tornado_available() {
  return std::system("/usr/bin/python3 -c 'import tornado.tcpserver' >/dev/null 2>&1") == 0;
}

// A test precondition (Boost.Test skips the case when it fails).
struct has_python_tornado {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    static const bool ok = python_tornado_available();
    boost::test_tools::assertion_result r(ok);
    if (!ok) r.message() << "/usr/bin/python3 with tornado is not available";
    return r;
  }
};

// A child process with its stdin and stdout as PipeIOStreams and its stderr in a file. It is
// killed (SIGKILL) and reaped when this goes, whatever happened: no peer outlives its test.
class peer_process {
public:
  peer_process(const asio::any_io_executor& ex, std::vector<std::string> argv) {
    static std::atomic<int> counter{0};
    err_path_ = tls().dir / ("peer-" + std::to_string(++counter) + ".stderr");
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // The test's sockets stay ours: a peer holding a copy would keep connections open.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      pid_ = -1;
      throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
    }
    stdin_.emplace(ex, in[1]);
    stdout_.emplace(ex, out[0]);
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process() { kill(); }

  void kill() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  tornado::PipeIOStream& in() { return *stdin_; }
  tornado::PipeIOStream& out() { return *stdout_; }
  void close_stdin() { stdin_->close(); }

  // One line of its output (with the newline); fails after `limit` with its stderr.
  asio::awaitable<std::string> read_line(std::chrono::steady_clock::duration limit = 15s) {
    try {
      co_return co_await within(stdout_->read_until("\n"), limit);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("reading the peer's output: ") + e.what() + "; stderr: " + err());
    }
  }

  // Its exit status (128 + signal when killed by one); fails after `limit`.
  asio::awaitable<int> wait_exit(std::chrono::steady_clock::duration limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        co_return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the peer did not exit in time; stderr: " + err());
      co_await sleep_for(5ms);
    }
  }

  // What it wrote to stderr so far.
  std::string err() const {
    std::ifstream f(err_path_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

private:
  pid_t pid_ = -1;
  std::filesystem::path err_path_;
  std::optional<tornado::PipeIOStream> stdin_, stdout_;
};

// openssl s_server with `-rev` (answers each line reversed) on 127.0.0.1, serving cert/key;
// `port` is read from its "ACCEPT 127.0.0.1:port" line.
struct openssl_server {
  peer_process process;
  unsigned short port = 0;

  openssl_server(const asio::any_io_executor& ex, const std::filesystem::path& cert, const std::filesystem::path& key)
      : process(ex, {"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert.string(), "-key", key.string(),
                     "-rev"}) {}

  asio::awaitable<void> started() {
    for (int i = 0; i < 20 && !port; ++i) {
      std::string line = co_await process.read_line();
      if (line.rfind("ACCEPT", 0) == 0) port = static_cast<unsigned short>(std::stoi(line.substr(line.rfind(':') + 1)));
    }
    if (!port) throw std::runtime_error("openssl s_server printed no port; stderr: " + process.err());
  }
};

} // namespace test

#endif
