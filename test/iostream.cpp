// Tests boost/tornado/iostream.hpp: the iostream_test.py cases that apply, named after the
// Python ones (the read/write cases run over TCP, TLS, pipes and local sockets, as Tornado runs
// them over IOStream, SSLIOStream and PipeIOStream), then the rules of the C++ port: every
// completion path (immediate, posted, cancelled, closed, destroyed), limits, errors and tokens.
#include <boost/tornado/iostream.hpp>

#define BOOST_TEST_MODULE iostream
#include "support/net.hpp"
#include "support/test.hpp"
#include <boost/tornado/gen.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/strand.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/ssl.h>
#include <functional>
#include <deque>
#include <utility>
#include <fcntl.h>
#include <unistd.h>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace beast = boost::beast;
using asio::ip::tcp;
using boost::system::error_code;
using tornado::IOStream;
using tornado::LocalIOStream;
using tornado::PipeIOStream;
using tornado::SSLIOStream;
using tornado::StreamClosedError;
using tornado::no_limit;
using tornado::stream_options;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using namespace test;

namespace {

// ---- driving the loop ----

// Lets what is ready on the loop run `n` times before resuming.
asio::awaitable<void> yield_to_loop(int n = 1) {
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < n; ++i) co_await asio::post(ex, asio::use_awaitable);
}

// The StreamClosedError an operation fails with; an exception if it succeeds.
template <class Op>
auto expect_closed(Op op) {
  return expect_throw<StreamClosedError>(std::move(op));
}

// The outcome of an operation started with a callback token. wait() resumes once it has
// completed (TimeoutError after `limit`). Completions can be appended to a shared order.
class record {
public:
  using order_t = std::shared_ptr<std::vector<std::string>>;
  record() = default;
  record(order_t order, std::string name) {
    s_->order = std::move(order);
    s_->name = std::move(name);
  }

  auto handler() const {
    return [s = s_](error_code ec, auto... v) {
      ++s->calls;
      s->ec = ec;
      (s->take(std::move(v)), ...);
      if (s->order) s->order->push_back(s->name);
      s->event.set();
    };
  }
  bool done() const { return s_->calls > 0; }
  int calls() const { return s_->calls; }
  error_code ec() const { return s_->ec; }
  const std::string& value() const { return s_->value; }
  std::size_t size() const { return s_->size; }
  asio::awaitable<void> wait(std::chrono::seconds limit = 10s) const {
    auto s = s_;
    co_await s->event.wait(limit);
  }

private:
  struct state {
    int calls = 0;
    error_code ec;
    std::string value;
    std::size_t size = 0;
    tornado::Event event;
    order_t order;
    std::string name;
    void take(std::string v) { value = std::move(v); }
    void take(std::size_t n) { size = n; }
  };
  std::shared_ptr<state> s_ = std::make_shared<state>();
};

// The outcome of start_tls with a callback token (SSLIOStream is not default-constructible,
// so it cannot go through co_spawn).
struct tls_record {
  struct state {
    bool done = false;
    error_code ec;
    std::optional<SSLIOStream> stream;
    tornado::Event event;
  };
  std::shared_ptr<state> s = std::make_shared<state>();
  auto handler() const {
    return [s = s](error_code ec, SSLIOStream stream) {
      s->done = true;
      s->ec = ec;
      s->stream.emplace(std::move(stream));
      s->event.set();
    };
  }
  asio::awaitable<void> wait(std::chrono::seconds limit = 10s) const {
    auto st = s;
    co_await st->event.wait(limit);
  }
};

// A coroutine operation run concurrently with the test body; its outcome is kept.
template <class T>
struct spawned {
  struct state {
    bool done = false;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
    tornado::Event event;
  };
  std::shared_ptr<state> s = std::make_shared<state>();
  asio::awaitable<void> wait(std::chrono::seconds limit = 10s) const {
    auto st = s;
    co_await st->event.wait(limit);
  }
};

template <class T>
spawned<T> spawn_op(const asio::any_io_executor& ex, asio::awaitable<T> op) {
  spawned<T> result;
  asio::co_spawn(
      ex,
      [op = std::move(op), s = result.s]() mutable -> asio::awaitable<void> {
        try {
          if constexpr (std::is_void_v<T>) {
            co_await std::move(op);
            s->value.emplace();
          } else {
            s->value.emplace(co_await std::move(op));
          }
        } catch (...) {
          s->error = std::current_exception();
        }
        s->done = true;
        s->event.set();
      },
      asio::detached);
  return result;
}

template <tornado::awaited_operation Op>
auto spawn_op(const asio::any_io_executor& ex, Op op) {
  return spawn_op(ex, std::move(op).as_awaitable());
}

// Coroutines run side by side; wait() resumes when all have finished and rethrows the first
// failure (at once, so that a failed producer does not leave its consumer waiting).
class task_group {
public:
  template <class F>
  void spawn(const asio::any_io_executor& ex, F f) {
    // co_spawn may run a task to its end inside this call (it dispatches, and an operation
    // that completes at once does not yield): the group is unfinished again.
    if (s_->pending++ == 0 && !s_->error) s_->event.clear();
    asio::co_spawn(ex, std::move(f), [s = s_](std::exception_ptr e) {
      if (e && !s->error) {
        s->error = e;
        s->event.set();
      }
      if (--s->pending == 0) s->event.set();
    });
  }
  asio::awaitable<void> wait(std::chrono::seconds limit = 60s) {
    auto s = s_;
    if (s->pending) co_await s->event.wait(limit);
    if (s->error) std::rethrow_exception(s->error);
  }

private:
  struct state {
    std::size_t pending = 0;
    std::exception_ptr error;
    tornado::Event event;
  };
  std::shared_ptr<state> s_ = std::make_shared<state>();
};

// A stream of the test's own -- neither socket nor descriptor, with no is_open() or close():
// BaseIOStream works over any Asio AsyncReadStream and AsyncWriteStream. Reads take the
// scripted chunks in turn (a chunk may be an error; with none left, end of file). Writes are
// recorded, each call with its buffers, and complete at once, or when released while held.
class scripted_stream {
public:
  using executor_type = asio::any_io_executor;
  struct chunk {
    std::string data;
    error_code ec;
  };
  struct script {
    std::deque<chunk> reads;
    std::vector<std::vector<asio::const_buffer>> write_calls;
    std::string written;
    bool hold_writes = false;
    std::function<void()> release;  // completes the write being held
    std::string written_at_release;  // the held write's bytes as they are when released
  };

  scripted_stream(executor_type ex, std::shared_ptr<script> s) : ex_(std::move(ex)), s_(std::move(s)) {}
  executor_type get_executor() const { return ex_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [ex = ex_, s = s_](auto handler, MutableBuffers buffers) {
          asio::post(ex, [s, buffers, handler = std::move(handler)]() mutable {
            if (s->reads.empty()) return std::move(handler)(asio::error::eof, std::size_t(0));
            chunk& c = s->reads.front();
            if (c.ec) {
              const error_code ec = c.ec;
              s->reads.pop_front();
              return std::move(handler)(ec, std::size_t(0));
            }
            const std::size_t n = asio::buffer_copy(buffers, asio::buffer(c.data));
            c.data.erase(0, n);
            if (c.data.empty()) s->reads.pop_front();
            std::move(handler)(error_code(), n);
          });
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [ex = ex_, s = s_](auto handler, ConstBuffers buffers) {
          std::vector<asio::const_buffer> call;
          std::size_t n = 0;
          for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            asio::const_buffer b = *it;
            call.push_back(b);
            s->written.append(static_cast<const char*>(b.data()), b.size());
            n += b.size();
          }
          s->write_calls.push_back(call);
          auto complete = std::make_shared<decltype(handler)>(std::move(handler));
          auto finish = [ex, n, complete, s, call] {
            for (const auto& b : call) s->written_at_release.append(static_cast<const char*>(b.data()), b.size());
            asio::post(ex, [n, complete] { std::move(*complete)(error_code(), n); });
          };
          if (s->hold_writes)
            s->release = finish;
          else
            finish();
        },
        token, buffers);
  }

private:
  executor_type ex_;
  std::shared_ptr<script> s_;
};

// Counts a stream's close callbacks (Tornado's `stream.set_close_callback(event.set)`).
struct close_watch {
  int calls = 0;
  tornado::Event event;
};

template <class S>
std::shared_ptr<close_watch> watch_close(S& stream) {
  auto w = std::make_shared<close_watch>();
  stream.set_close_callback([w] {
    ++w->calls;
    w->event.set();
  });
  return w;
}

// Bytes that show where they were cut: byte i of the stream is pattern(...)[i].
std::string pattern(std::size_t n, std::size_t offset = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('!' + (offset + i) * 7 % 89);
  return s;
}

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// ---- connections ----

tcp::acceptor listen_loopback(const asio::any_io_executor& ex) { return tcp::acceptor(ex, tcp::endpoint(loopback_v4, 0)); }

// A stream and the raw socket at the other end (to reset, half close, write byte by byte).
struct raw_peer {
  IOStream stream;
  tcp::socket peer;
};

asio::awaitable<raw_peer> make_raw_peer(stream_options opts = {}) {
  auto ex = co_await asio::this_coro::executor;
  auto acceptor = listen_loopback(ex);
  tcp::socket peer(ex);
  peer.connect(acceptor.local_endpoint());
  tcp::socket s = acceptor.accept();
  co_return raw_peer{IOStream(std::move(s), opts), std::move(peer)};
}

constexpr std::string_view hello_response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello";

// Tornado's test app stands behind the web cases: one HTTP/1.0 request, "Hello", then close.
template <class Socket>
asio::awaitable<void> answer_hello(Socket& s) {
  std::string request;
  co_await asio::async_read_until(s, asio::dynamic_buffer(request), "\r\n\r\n", asio::use_awaitable);
  co_await asio::async_write(s, asio::buffer(hello_response), asio::use_awaitable);
}

} // namespace

// The transports the read/write cases run over (Tornado's make_iostream_pair): rs is the
// server (or read) end, ws the client (or write) end.
namespace transport {

template <class S>
struct stream_pair {
  S rs;
  S ws;
};

struct tcp_streams {
  using stream_type = IOStream;
  static stream_type make_client(const asio::any_io_executor& ex, stream_options o = {}) { return stream_type(ex, o); }
  template <class Token = tornado::use_awaitable_t>
  static auto connect(stream_type& s, const tcp::endpoint& ep, Token&& token = {}) {
    return s.connect(ep, std::forward<Token>(token));
  }
  static asio::awaitable<stream_pair<stream_type>> make(stream_options o = {}) {
    auto ex = co_await asio::this_coro::executor;
    auto acceptor = listen_loopback(ex);
    stream_type client(ex, o);
    co_await client.connect(acceptor.local_endpoint());
    tcp::socket server = co_await acceptor.async_accept(asio::use_awaitable);
    co_return stream_pair<stream_type>{stream_type(std::move(server), o), std::move(client)};
  }
  static asio::awaitable<void> serve_hello(tcp::acceptor acceptor) {
    tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
    co_await answer_hello(s);
    s.close();
  }
};

// A connected pair of loopback sockets: {client, server}.
asio::awaitable<std::pair<tcp::socket, tcp::socket>> socket_pair() {
  auto ex = co_await asio::this_coro::executor;
  auto acceptor = listen_loopback(ex);
  tcp::socket c(ex);
  co_await c.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
  tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
  co_return std::pair<tcp::socket, tcp::socket>(std::move(c), std::move(s));
}

struct tls_streams {
  using stream_type = SSLIOStream;
  static stream_type make_client(const asio::any_io_executor& ex, stream_options o = {}) {
    return stream_type(tcp::socket(ex), client_tls(), o);
  }
  template <class Token = tornado::use_awaitable_t>
  static auto connect(stream_type& s, const tcp::endpoint& ep, Token&& token = {}) {
    return s.connect(ep, "localhost", true, std::forward<Token>(token));
  }
  static asio::awaitable<stream_pair<stream_type>> make(stream_options o = {}) {
    auto [c, s] = co_await socket_pair();
    stream_type server(std::move(s), server_tls(), true, {}, true, o);
    stream_type client(std::move(c), client_tls(), false, "localhost", true, o);
    co_await server.wait_for_handshake();
    co_await client.wait_for_handshake();
    co_return stream_pair<stream_type>{std::move(server), std::move(client)};
  }
  static asio::awaitable<void> serve_hello(tcp::acceptor acceptor) {
    asio::ssl::stream<tcp::socket> s(co_await acceptor.async_accept(asio::use_awaitable), server_tls());
    co_await s.async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
    co_await answer_hello(s);
    s.lowest_layer().close();
  }
};

struct pipe_streams {
  using stream_type = PipeIOStream;
  static asio::awaitable<stream_pair<stream_type>> make(stream_options o = {}) {
    auto ex = co_await asio::this_coro::executor;
    int fds[2];
    if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    co_return stream_pair<stream_type>{stream_type(ex, fds[0], o), stream_type(ex, fds[1], o)};
  }
};

struct local_streams {
  using stream_type = LocalIOStream;
  static asio::awaitable<stream_pair<stream_type>> make(stream_options o = {}) {
    auto ex = co_await asio::this_coro::executor;
    asio::local::stream_protocol::socket a(ex), b(ex);
    asio::local::connect_pair(a, b);
    co_return stream_pair<stream_type>{stream_type(std::move(a), o), stream_type(std::move(b), o)};
  }
};

} // namespace transport

namespace {
using transport::local_streams;
using transport::pipe_streams;
using transport::tcp_streams;
using transport::tls_streams;
// TestReadWriteMixin runs over IOStream, SSLIOStream and PipeIOStream; local sockets too here.
using read_write_transports = std::tuple<tcp_streams, tls_streams, pipe_streams, local_streams>;
// TestIOStreamMixin and TestIOStreamWebMixin: the connecting streams.
using socket_transports = std::tuple<tcp_streams, tls_streams>;

// A hello server on a fresh port; a failure of the server is kept in `failure`.
template <class P>
tcp::endpoint start_hello_server(const asio::any_io_executor& ex, std::shared_ptr<std::exception_ptr> failure) {
  auto acceptor = listen_loopback(ex);
  auto ep = acceptor.local_endpoint();
  asio::co_spawn(ex, P::serve_hello(std::move(acceptor)), [failure](std::exception_ptr e) {
    if (e) *failure = e;
  });
  return ep;
}
} // namespace

// ======================================================================================
// TestReadWriteMixin
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestReadWriteMixin)

BOOST_AUTO_TEST_CASE_TEMPLATE(test_write_zero_bytes, P, read_write_transports) {
  // Writing zero bytes completes, without looping forever.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    co_await p.ws.write("");
    p.ws.close();
    p.rs.close();
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_delayed_close_callback, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    co_await p.ws.write("12");
    std::vector<std::string> chunks;
    chunks.push_back(co_await p.rs.read_bytes(1));
    p.ws.close();
    chunks.push_back(co_await p.rs.read_bytes(1));
    BOOST_TEST((chunks == std::vector<std::string>{"1", "2"}));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_close_buffered_data, P, read_write_transports) {
  // Data still in the OS buffers (read_chunk_size is small) is read after the peer closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make({.read_chunk_size = 256});
    co_await p.ws.write(std::string(512, 'A'));
    BOOST_TEST(co_await p.rs.read_bytes(256) == std::string(256, 'A'));
    p.ws.close();
    co_await sleep_for(10ms);
    BOOST_TEST(co_await p.rs.read_bytes(256) == std::string(256, 'A'));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_close_after_close, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    co_await p.ws.write("1234");
    std::string data = co_await p.rs.read_bytes(1);
    p.ws.close();
    BOOST_TEST(data == "1");
    BOOST_TEST(co_await p.rs.read_until_close() == "234");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_large_read_until, P, read_write_transports) {
  // A 4 MB read_until (once quadratic) from 4096 queued writes.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    const std::size_t num_kb = 4096;
    record last;
    for (std::size_t i = 0; i < num_kb; ++i) p.ws.write(std::string(1024, 'A'), record().handler());
    p.ws.write("\r\n", last.handler());
    std::string data = co_await p.rs.read_until("\r\n");
    BOOST_TEST(data.size() == num_kb * 1024 + 2);
    co_await last.wait();
    BOOST_TEST(!last.ec());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_with_close_after_second_packet, P, read_write_transports) {
  // Tornado #2717: the second chunk, smaller than the first, arrives with the close.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    record rf;
    p.rs.read_until("done", no_limit, rf.handler());
    co_await sleep_for(10ms);
    co_await p.ws.write(std::string(2048, 'x'));
    p.ws.write("done", record().handler());
    p.ws.close();
    co_await rf.wait();
    BOOST_TEST(rf.ec() == error_code());
    BOOST_TEST(rf.value() == std::string(2048, 'x') + "done");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_started_with_nothing_buffered, P, read_write_transports) {
  // Such a read asks the kernel once the loop has come round (on a socket or pipe, in that very
  // step): bytes already waiting complete it, bytes still to come complete it when they arrive,
  // and a close already waiting fails it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    co_await p.ws.write("waiting\n");
    co_await sleep_for(10ms);  // the bytes are there before the read starts
    BOOST_TEST(co_await p.rs.read_until("\n") == "waiting\n");
    record later;
    p.rs.read_until("\n", no_limit, later.handler());
    co_await sleep_for(10ms);  // the read found nothing and waits
    BOOST_TEST(!later.done());
    co_await p.ws.write("later\n");
    co_await later.wait();
    BOOST_TEST(later.value() == "later\n");
    // As Tornado's sockets, the stream's socket or pipe is left in non-blocking mode.
    if constexpr (requires { p.rs.socket().non_blocking(); }) BOOST_TEST(p.rs.socket().non_blocking());
    p.ws.close();
    co_await sleep_for(10ms);  // the close is there before the read starts
    co_await expect_closed(p.rs.read_until("\n"));
    BOOST_TEST(p.rs.closed());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_unsatisfied_after_close, P, read_write_transports) {
  // A read the close leaves unsatisfied fails with StreamClosedError, not UnsatisfiableReadError.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    record rf;
    p.rs.read_until("done", no_limit, rf.handler());
    co_await p.ws.write(std::string(2048, 'x'));
    p.ws.write("foo", record().handler());
    p.ws.close();
    co_await rf.wait();
    BOOST_TEST(rf.ec() == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_close_callback_with_pending_read, P, read_write_transports) {
  // The close callback runs even while a read is pending.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("OK\r\n");
    BOOST_TEST(co_await p.rs.read_until("\r\n") == "OK\r\n");
    p.ws.close();
    record r;
    p.rs.read_until("\r\n", no_limit, r.handler());
    co_await closed->event.wait(5s);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_close_callback, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("a");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "a");
    BOOST_TEST(closed->calls == 0);
    p.ws.close();
    co_await closed->event.wait(5s);
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_write_memoryview, P, read_write_transports) {
  // A buffer view (Python's memoryview) is written as bytes.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    record fut;
    p.rs.read_bytes(4, false, fut.handler());
    co_await p.ws.write(asio::const_buffer("hello", 5));
    co_await fut.wait();
    BOOST_TEST(fut.value() == "hell");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_bytes_partial, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    // Ask for more than is available with partial
    record fut;
    p.rs.read_bytes(50, true, fut.handler());
    co_await p.ws.write("hello");
    co_await fut.wait();
    BOOST_TEST(fut.value() == "hello");
    // Ask for less than what is available; num_bytes is still respected.
    record fut2;
    p.rs.read_bytes(3, true, fut2.handler());
    co_await p.ws.write("world");
    co_await fut2.wait();
    BOOST_TEST(fut2.value() == "wor");
    // Partial reads won't return an empty string, but read_bytes(0) will.
    BOOST_TEST(co_await p.rs.read_bytes(0, true) == "");
    BOOST_TEST(co_await p.rs.read_bytes(2, true) == "ld");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_max_bytes, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    // Extra room under the limit
    record fut;
    p.rs.read_until("def", 50, fut.handler());
    co_await p.ws.write("abcdef");
    co_await fut.wait();
    BOOST_TEST(fut.value() == "abcdef");
    // Just enough space
    record fut2;
    p.rs.read_until("def", 6, fut2.handler());
    co_await p.ws.write("abcdef");
    co_await fut2.wait();
    BOOST_TEST(fut2.value() == "abcdef");
    // Not enough space, but we don't know it until all we can do is log a warning and close
    // the connection.
    test::log_capture logs;
    record fut3;
    p.rs.read_until("def", 5, fut3.handler());
    co_await p.ws.write("123456");
    co_await closed->event.wait(5s);
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await fut3.wait();
    BOOST_TEST(fut3.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(p.rs.error() == code(tornado::error::unsatisfiable_read));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_max_bytes_inline, P, read_write_transports) {
  // The error case of the previous test with the data already buffered when the read starts:
  // the read still fails through its completion (StreamClosedError), not synchronously.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("x123456");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "x");  // "123456" is buffered now
    test::log_capture logs;
    auto e = co_await expect_closed(p.rs.read_until("def", 5));
    BOOST_TEST(e.real_error() == code(tornado::error::unsatisfiable_read));
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await closed->event.wait(5s);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_max_bytes_ignores_extra, P, read_write_transports) {
  // A match arriving in the packet that goes over the limit still fails the read: it was not
  // found within the limit.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("abcdef");
    test::log_capture logs;
    record fut;
    p.rs.read_until("def", 5, fut.handler());
    co_await closed->event.wait(5s);
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await fut.wait();
    BOOST_TEST(fut.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(p.rs.error() == code(tornado::error::unsatisfiable_read));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_regex_max_bytes, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    const boost::regex def("def");
    record fut;
    p.rs.read_until_regex(def, 50, fut.handler());
    co_await p.ws.write("abcdef");
    co_await fut.wait();
    BOOST_TEST(fut.value() == "abcdef");
    record fut2;
    p.rs.read_until_regex(def, 6, fut2.handler());
    co_await p.ws.write("abcdef");
    co_await fut2.wait();
    BOOST_TEST(fut2.value() == "abcdef");
    test::log_capture logs;
    record fut3;
    p.rs.read_until_regex(def, 5, fut3.handler());
    co_await p.ws.write("123456");
    co_await closed->event.wait(5s);
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await fut3.wait();
    BOOST_TEST(fut3.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(p.rs.error() == code(tornado::error::unsatisfiable_read));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_regex_max_bytes_inline, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("x123456");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "x");
    test::log_capture logs;
    auto e = co_await expect_closed(p.rs.read_until_regex(boost::regex("def"), 5));
    BOOST_TEST(e.real_error() == code(tornado::error::unsatisfiable_read));
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await closed->event.wait(5s);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_regex_max_bytes_ignores_extra, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("abcdef");
    test::log_capture logs;
    record fut;
    p.rs.read_until_regex(boost::regex("def"), 5, fut.handler());
    co_await closed->event.wait(5s);
    BOOST_TEST(logs.contains("Unsatisfiable read"));
    co_await fut.wait();
    BOOST_TEST(fut.ec() == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_small_reads_from_large_buffer, P, read_write_transports) {
  // 10 KB buffer, 100 KB available: 1 KB reads do not fill the buffer eagerly (past its limit).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make({.max_buffer_size = 10 * 1024});
    record w;
    p.ws.write(std::string(1024 * 100, 'a'), w.handler());
    for (int i = 0; i < 100; ++i) BOOST_TEST(co_await p.rs.read_bytes(1024) == std::string(1024, 'a'));
    co_await w.wait();
    BOOST_TEST(!w.ec());
    BOOST_TEST(!p.rs.closed());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_small_read_untils_from_large_buffer, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make({.max_buffer_size = 10 * 1024});
    std::string line = std::string(1023, 'a') + "\n";
    std::string all;
    for (int i = 0; i < 100; ++i) all += line;
    record w;
    p.ws.write(std::move(all), w.handler());
    for (int i = 0; i < 100; ++i) BOOST_TEST(co_await p.rs.read_until("\n", 4096) == line);
    co_await w.wait();
    BOOST_TEST(!w.ec());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_flow_control, P, read_write_transports) {
  // The writer sends more than the reader accepts; the reader pauses, then reads gradually.
  const std::size_t mb = 1024 * 1024;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make({.max_buffer_size = 5 * mb});
    record w;
    p.ws.write(std::string(10 * mb, 'a'), w.handler());
    BOOST_TEST((co_await p.rs.read_bytes(mb) == std::string(mb, 'a')));
    co_await sleep_for(100ms);
    for (int i = 0; i < 9; ++i) BOOST_TEST((co_await p.rs.read_bytes(mb) == std::string(mb, 'a')));
    co_await w.wait();
    BOOST_TEST(!w.ec());
    BOOST_TEST(!p.rs.closed());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_into, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    std::array<char, 10> buf{};
    record fut;
    p.rs.read_into(asio::buffer(buf), false, fut.handler());
    co_await p.ws.write("hello");
    co_await sleep_for(50ms);
    BOOST_TEST(p.rs.reading());
    co_await p.ws.write("world!!");
    co_await fut.wait();
    BOOST_TEST(!p.rs.reading());
    BOOST_TEST(fut.size() == 10u);
    BOOST_TEST(std::string(buf.data(), 10) == "helloworld");

    // Existing buffer is fed into user buffer
    record fut2;
    p.rs.read_into(asio::buffer(buf), false, fut2.handler());
    co_await sleep_for(50ms);
    BOOST_TEST(p.rs.reading());
    co_await p.ws.write("1234567890");
    co_await fut2.wait();
    BOOST_TEST(!p.rs.reading());
    BOOST_TEST(fut2.size() == 10u);
    BOOST_TEST(std::string(buf.data(), 10) == "!!12345678");

    // Existing buffer can satisfy read immediately
    std::array<char, 4> buf4{};
    co_await p.ws.write("abcdefghi");
    BOOST_TEST(co_await p.rs.read_into(asio::buffer(buf4)) == 4u);
    BOOST_TEST(std::string(buf4.data(), 4) == "90ab");
    BOOST_TEST(co_await p.rs.read_bytes(7) == "cdefghi");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_into_partial, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    // Partial read
    std::array<char, 10> buf{};
    record fut;
    p.rs.read_into(asio::buffer(buf), true, fut.handler());
    co_await p.ws.write("hello");
    co_await fut.wait();
    BOOST_TEST(!p.rs.reading());
    BOOST_TEST(fut.size() == 5u);
    BOOST_TEST(std::string(buf.data(), 10) == std::string("hello\0\0\0\0\0", 10));
    // Full read despite partial
    co_await p.ws.write("world!1234567890");
    BOOST_TEST(co_await p.rs.read_into(asio::buffer(buf), true) == 10u);
    BOOST_TEST(std::string(buf.data(), 10) == "world!1234");
    // Existing buffer can satisfy read immediately
    BOOST_TEST(co_await p.rs.read_into(asio::buffer(buf), true) == 6u);
    BOOST_TEST(std::string(buf.data(), 10) == "5678901234");
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_into_zero_bytes, P, read_write_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    record fut;
    p.rs.read_into(asio::mutable_buffer(), false, fut.handler());
    BOOST_TEST(!fut.done());  // never inline
    co_await yield_to_loop();
    BOOST_TEST(fut.done());
    BOOST_TEST(fut.size() == 0u);
    BOOST_TEST(!fut.ec());
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_many_mixed_reads, P, read_write_transports) {
  // Back and forth between read_bytes (the internal buffer) and read_into (the caller's).
  const std::size_t nbytes = 1000000;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    auto ex = co_await asio::this_coro::executor;
    std::string produced, consumed;
    task_group tasks;
    tasks.spawn(ex, [&]() -> asio::awaitable<void> {
      std::mt19937 r(42);
      std::size_t remaining = nbytes;
      while (remaining > 0) {
        std::size_t size = std::uniform_int_distribution<std::size_t>(1, std::min<std::size_t>(1000, remaining))(r);
        std::string data = pattern(size, produced.size() * 13 + size);
        produced += data;
        co_await p.ws.write(data);
        remaining -= size;
      }
    });
    tasks.spawn(ex, [&]() -> asio::awaitable<void> {
      std::mt19937 r(43);
      std::size_t remaining = nbytes;
      while (remaining > 0) {
        std::size_t size = std::uniform_int_distribution<std::size_t>(1, std::min<std::size_t>(1000, remaining))(r);
        if (r() % 2) {
          std::string data = co_await p.rs.read_bytes(size);
          BOOST_REQUIRE(data.size() == size);
          consumed += data;
        } else {
          std::string buf(size, '\0');
          std::size_t n = co_await p.rs.read_into(asio::buffer(buf));
          BOOST_REQUIRE(n == size);
          consumed += buf;
        }
        remaining -= size;
      }
    });
    co_await tasks.wait();
    BOOST_TEST(consumed.size() == produced.size());
    BOOST_TEST((consumed == produced));
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestIOStreamMixin (connecting streams)
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestIOStreamMixin)

BOOST_AUTO_TEST_CASE_TEMPLATE(test_connection_refused, P, socket_transports) {
  // A refused connection fails connect() with StreamClosedError; error() says why.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto refusing = make_refusing_port(ex);
    auto stream = P::make_client(ex);
    auto closed = watch_close(stream);
    auto e = co_await expect_closed(P::connect(stream, refusing.endpoint));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
    BOOST_TEST(stream.error() == code(asio::error::connection_refused));
    BOOST_TEST(stream.closed());
    co_await closed->event.wait(5s);
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_inline_read_error, P, socket_transports) {
  // The socket fails under a read being started: the read fails with StreamClosedError whose
  // real_error() is the system's error, and the stream closes with it. Tornado closes the
  // descriptor under the socket; here /dev/null takes its place, so the socket object still
  // owns what it will close. Tornado raises an error met by a read made inside the call
  // without logging it; here no read is made inside the call, so the error arrives as
  // Tornado's asynchronous ones do: logged once.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make();
    test::log_capture logs;
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    BOOST_TEST_REQUIRE(null >= 0);
    BOOST_TEST_REQUIRE(::dup2(null, p.rs.socket().lowest_layer().native_handle()) >= 0);
    ::close(null);
    auto e = co_await expect_closed(p.rs.read_bytes(1));
    BOOST_TEST(e.real_error().failed());
    BOOST_TEST(p.rs.error() == e.real_error());
    if constexpr (std::is_same_v<P, tcp_streams>) BOOST_TEST(e.real_error() == code(asio::error::not_socket));
    std::size_t logged = 0;
    for (auto& line : logs.lines()) logged += line.find("Read error") != std::string::npos;
    BOOST_TEST(logged == 1u);
    p.ws.close();
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_close_with_error) {
  // A read error under read_until_close. Tornado raises it from the call when the read was
  // made inside the call, and otherwise closes the stream, completing the read with what came
  // before. Here no read is made inside the call: the error is logged once, the stream closes
  // with it, and read_until_close completes with the bytes that came before it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    script->reads = {{"some ", {}}, {"data", {}}, {"", make_error_code(asio::error::no_memory)}};
    tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
    test::log_capture logs;
    BOOST_TEST(co_await stream.read_until_close() == "some data");
    BOOST_TEST(stream.closed());
    BOOST_TEST(stream.error() == code(asio::error::no_memory));
    std::size_t logged = 0;
    for (auto& line : logs.lines()) logged += line.find("Read error") != std::string::npos;
    BOOST_TEST(logged == 1u);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_write, P, socket_transports) {
  // Concurrent writers clog the socket; every write's completion still comes (none orphaned).
  const std::size_t m = 5000, n = 100, nproducers = 10;
  const std::size_t total_bytes = m * n * nproducers;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await P::make({.max_buffer_size = total_bytes});
    auto ex = co_await asio::this_coro::executor;
    auto& server = p.rs;
    auto& client = p.ws;
    task_group tasks;
    for (std::size_t k = 0; k < nproducers; ++k)
      tasks.spawn(ex, [&]() -> asio::awaitable<void> {
        const std::string data(m, 'x');
        for (std::size_t i = 0; i < n; ++i) co_await server.write(data);
      });
    tasks.spawn(ex, [&]() -> asio::awaitable<void> {
      std::size_t nread = 0;
      while (nread < total_bytes) {
        std::string res = co_await client.read_bytes(m);
        nread += res.size();
      }
      BOOST_TEST(nread == total_bytes);
    });
    co_await tasks.wait();
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestIOStreamWebMixin (a client against a one-request HTTP server)
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestIOStreamWebMixin)

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_until_close, P, socket_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\n\r\n");
    std::string data = co_await stream.read_until_close();
    BOOST_TEST(starts_with(data, "HTTP/1.1 200"));
    BOOST_TEST(ends_with(data, "Hello"));
    if (*failure) std::rethrow_exception(*failure);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_connection_closed, P, socket_transports) {
  // The server sends its response and closes: the response is read whole before the stream
  // closes itself, though the end of file is already there with the data (epoll reports both
  // in one event).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto served = std::make_shared<tornado::Event>();
    auto acceptor = listen_loopback(ex);
    const auto ep = acceptor.local_endpoint();
    asio::co_spawn(ex, P::serve_hello(std::move(acceptor)), [failure, served](std::exception_ptr e) {
      if (e) *failure = e;
      served->set();
    });
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\nConnection: close\r\n\r\n");
    co_await served->wait(5s);  // the server has answered and closed its socket
    std::string header = co_await stream.read_until("\r\n\r\n");
    BOOST_TEST(starts_with(header, "HTTP/1.1 200 OK\r\n"));
    const std::size_t length = std::stoul(header.substr(header.find("Content-Length:") + 15));
    BOOST_TEST(co_await stream.read_bytes(length) == "Hello");
    co_await expect_closed(stream.read_bytes(1));
    BOOST_TEST(stream.closed());
    if (*failure) std::rethrow_exception(*failure);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_read_zero_bytes, P, socket_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\n\r\n");
    // normal read
    BOOST_TEST(co_await stream.read_bytes(9) == "HTTP/1.1 ");
    // zero bytes
    BOOST_TEST(co_await stream.read_bytes(0) == "");
    // another normal read
    BOOST_TEST(co_await stream.read_bytes(3) == "200");
    stream.close();
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_write_while_connecting, P, socket_transports) {
  // A write issued while connecting goes out once connected; connect completes first.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    auto order = std::make_shared<std::vector<std::string>>();
    record connect_fut(order, "connect"), write_fut(order, "write");
    P::connect(stream, ep, connect_fut.handler());
    stream.write("GET / HTTP/1.0\r\nConnection: close\r\n\r\n", write_fut.handler());
    BOOST_TEST(!connect_fut.done());
    co_await connect_fut.wait();
    co_await write_fut.wait();
    BOOST_TEST(!connect_fut.ec());
    BOOST_TEST(!write_fut.ec());
    BOOST_TEST((*order == std::vector<std::string>{"connect", "write"}));
    std::string data = co_await stream.read_until_close();
    BOOST_TEST(ends_with(data, "Hello"));
    stream.close();
    if (*failure) std::rethrow_exception(*failure);
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_interface, P, socket_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\n\r\n");
    BOOST_TEST(co_await stream.read_until("\r\n") == "HTTP/1.1 200 OK\r\n");
    std::string header_data = co_await stream.read_until("\r\n\r\n");
    BOOST_TEST(header_data == "Content-Length: 5\r\n\r\n");
    std::size_t content_length = std::stoul(header_data.substr(header_data.find(':') + 1));
    BOOST_TEST(co_await stream.read_bytes(content_length) == "Hello");
    stream.close();
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_close_while_reading, P, socket_transports) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\n\r\n");
    co_await expect_closed(stream.read_bytes(1024 * 1024));
    stream.close();
  });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(test_future_read_until_close, P, socket_transports) {
  // The data comes through before the StreamClosedError.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failure = std::make_shared<std::exception_ptr>();
    auto ep = start_hello_server<P>(ex, failure);
    auto stream = P::make_client(ex);
    co_await P::connect(stream, ep);
    co_await stream.write("GET / HTTP/1.0\r\nConnection: close\r\n\r\n");
    co_await stream.read_until("\r\n\r\n");
    BOOST_TEST(co_await stream.read_until_close() == "Hello");
    // Nothing else to read.
    co_await expect_closed(stream.read_bytes(1));
    if (*failure) std::rethrow_exception(*failure);
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestIOStreamStartTLS
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestIOStreamStartTLS)

namespace {
// Tornado's client_send_line / server_send_line.
template <class S>
asio::awaitable<void> send_line(S& from, S& to, std::string line) {
  co_await from.write(line);
  BOOST_TEST(co_await to.read_until("\r\n") == line);
}
} // namespace

BOOST_AUTO_TEST_CASE(test_start_tls_smtp) {
  // Simplified from RFC 3207 section 5: after clear-text traffic, both sides switch to TLS.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto& server = p.rs;
    auto& client = p.ws;
    co_await send_line(server, client, "220 mail.example.com ready\r\n");
    co_await send_line(client, server, "EHLO mail.example.com\r\n");
    co_await send_line(server, client, "250-mail.example.com welcome\r\n");
    co_await send_line(server, client, "250 STARTTLS\r\n");
    co_await send_line(client, server, "STARTTLS\r\n");
    co_await send_line(server, client, "220 Go ahead\r\n");
    tls_record client_future, server_future;
    client.start_tls(false, client_tls(), "localhost", true, client_future.handler());
    server.start_tls(true, server_tls(), {}, true, server_future.handler());
    co_await client_future.wait();
    co_await server_future.wait();
    BOOST_REQUIRE(!client_future.s->ec);
    BOOST_REQUIRE(!server_future.s->ec);
    BOOST_TEST(client.closed());  // the clear-text handles are spent
    BOOST_TEST(server.closed());
    auto& tls_client = *client_future.s->stream;
    auto& tls_server = *server_future.s->stream;
    co_await send_line(tls_client, tls_server, "EHLO mail.example.com\r\n");
    co_await send_line(tls_server, tls_client, "250 mail.example.com welcome\r\n");
  });
}

BOOST_AUTO_TEST_CASE(start_tls_with_a_close_callback_keeps_the_client_hello) {
  // The client's ClientHello has arrived when the server, in one step, sets a close callback
  // and starts TLS. The close callback's watch must not have taken it from the kernel (as
  // Tornado's listener, which only watches for readability): the handshake reads it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    tls_record client_future, server_future;
    p.ws.start_tls(false, client_tls(), "localhost", true, client_future.handler());
    co_await tornado::gen::sleep(20ms);  // the ClientHello reaches the server's socket
    p.rs.set_close_callback([] {});
    p.rs.start_tls(true, server_tls(), {}, true, server_future.handler());
    co_await server_future.wait(3s);
    co_await client_future.wait(3s);
    BOOST_TEST_REQUIRE(server_future.s->done);
    BOOST_TEST_REQUIRE(client_future.s->done);
    BOOST_TEST(!server_future.s->ec, server_future.s->ec.message());
    BOOST_TEST(!client_future.s->ec, client_future.s->ec.message());
  });
}

BOOST_AUTO_TEST_CASE(test_handshake_fail) {
  // Certificates are verified with the default configuration: the test certificate is not
  // trusted, the client fails with an SSL error, and so does the server.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    test::log_capture logs;
    tls_record server_future;
    p.rs.start_tls(true, server_tls(), {}, true, server_future.handler());
    try {
      co_await p.ws.start_tls(false, default_client_tls(), "localhost");
      BOOST_ERROR("the handshake succeeded");
    } catch (const StreamClosedError& e) {
      BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
                 "real_error: " << e.real_error().message());
    }
    co_await server_future.wait();
    BOOST_TEST(server_future.s->ec == code(tornado::error::stream_closed));
    BOOST_TEST(logs.contains("SSL Error"));
  });
}

BOOST_AUTO_TEST_CASE(test_start_tls_on_a_closed_stream) {
  // The failure carries the closed stream's reason, as every operation's does.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    p.ws.close(asio::error::connection_reset);
    auto e = co_await expect_closed(p.ws.start_tls(false, client_tls(), "localhost"));
    BOOST_TEST(e.real_error() == code(asio::error::connection_reset), "real_error: " << e.real_error().message());
  });
}

BOOST_AUTO_TEST_CASE(test_start_tls_cancelled) {
  // A peer that never answers the handshake: cancelling start_tls (here a timeout around it)
  // completes it at once with operation_aborted, and the new stream is closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    asio::cancellation_signal sig;
    tls_record r;
    p.ws.start_tls(false, client_tls(), "localhost", true, asio::bind_cancellation_slot(sig.slot(), r.handler()));
    co_await sleep_for(10ms);
    BOOST_REQUIRE(!r.s->stream);
    sig.emit(asio::cancellation_type::terminal);
    co_await r.wait();
    BOOST_TEST(r.s->ec == code(asio::error::operation_aborted), r.s->ec.message());
    BOOST_REQUIRE(r.s->stream);
    BOOST_TEST(r.s->stream->closed());
  });
}

BOOST_AUTO_TEST_CASE(test_check_hostname) {
  // start_tls verifies the name it is given: the certificate is trusted but names localhost.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    test::log_capture logs;
    tls_record server_future, client_future;
    p.rs.start_tls(true, server_tls(), {}, true, server_future.handler());
    p.ws.start_tls(false, client_tls(), "example.com", true, client_future.handler());
    co_await client_future.wait();
    BOOST_TEST(client_future.s->ec == code(tornado::error::stream_closed));
    BOOST_REQUIRE(client_future.s->stream);
    BOOST_TEST(is_verify_error(client_future.s->stream->error(), X509_V_ERR_HOSTNAME_MISMATCH),
               "error: " << client_future.s->stream->error().message());
    co_await server_future.wait();
    BOOST_TEST(server_future.s->ec == code(tornado::error::stream_closed));
    BOOST_TEST(logs.contains("SSL Error"));
  });
}

BOOST_AUTO_TEST_CASE(test_typed_memoryview) {
  // A buffer of items wider than a byte is written as all its bytes.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    std::array<std::uint64_t, 10> items{};
    for (std::size_t i = 0; i < items.size(); ++i) items[i] = 0x0102030405060708ull * (i + 1);
    co_await p.rs.write(asio::buffer(items));
    std::string recv = co_await p.ws.read_bytes(sizeof items);
    BOOST_TEST(recv.size() == 80u);
    BOOST_TEST(std::memcmp(recv.data(), items.data(), sizeof items) == 0);
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// WaitForHandshakeTest
// ======================================================================================
BOOST_AUTO_TEST_SUITE(WaitForHandshakeTest)

namespace {
// Tornado's connect_to_server: a client connects to an SSL server stream made by `handle`.
template <class Handle>
asio::awaitable<void> connect_to_server(Handle handle) {
  auto ex = co_await asio::this_coro::executor;
  auto acceptor = listen_loopback(ex);
  SSLIOStream client(tcp::socket(ex), client_tls());
  record connected;
  client.connect(acceptor.local_endpoint(), "localhost", true, connected.handler());
  SSLIOStream server(co_await acceptor.async_accept(asio::use_awaitable), server_tls(), true);
  co_await handle(server);
  co_await connected.wait();
  BOOST_TEST(!connected.ec());
  BOOST_TEST(SSL_get_current_cipher(client.socket().native_handle()) != nullptr);
}
} // namespace

BOOST_AUTO_TEST_CASE(test_wait_for_handshake_future) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    bool handshaken = false;
    co_await connect_to_server([&](SSLIOStream& stream) -> asio::awaitable<void> {
      BOOST_TEST(SSL_get_current_cipher(stream.socket().native_handle()) == nullptr);
      co_await stream.wait_for_handshake();
      BOOST_TEST(SSL_get_current_cipher(stream.socket().native_handle()) != nullptr);
      handshaken = true;
    });
    BOOST_TEST(handshaken);
  });
}

BOOST_AUTO_TEST_CASE(test_wait_for_handshake_already_waiting_error) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    co_await connect_to_server([&](SSLIOStream& stream) -> asio::awaitable<void> {
      record first;
      stream.wait_for_handshake(first.handler());
      try {
        co_await stream.wait_for_handshake();
        BOOST_ERROR("a second wait_for_handshake succeeded");
      } catch (const tornado::InvalidStateError&) {
      }
      record second;
      stream.wait_for_handshake(second.handler());
      co_await second.wait();
      BOOST_TEST(second.ec() == code(tornado::error::invalid_state));
      co_await first.wait();
      BOOST_TEST(!first.ec());
    });
  });
}

BOOST_AUTO_TEST_CASE(test_wait_for_handshake_already_connected) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    co_await connect_to_server([&](SSLIOStream& stream) -> asio::awaitable<void> {
      co_await stream.wait_for_handshake();
      record again;
      stream.wait_for_handshake(again.handler());
      BOOST_TEST(!again.done());  // at once, but never inline
      co_await again.wait();
      BOOST_TEST(!again.ec());
      co_await stream.wait_for_handshake();
    });
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestPipeIOStream
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestPipeIOStream)

BOOST_AUTO_TEST_CASE(test_pipe_iostream) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await pipe_streams::make();
    p.ws.write("hel", record().handler());
    p.ws.write("lo world", record().handler());
    BOOST_TEST(co_await p.rs.read_until(" ") == "hello ");
    BOOST_TEST(co_await p.rs.read_bytes(3) == "wor");
    p.ws.close();
    BOOST_TEST(co_await p.rs.read_until_close() == "ld");
    p.rs.close();
  });
}

BOOST_AUTO_TEST_CASE(test_pipe_iostream_big_write) {
  const std::size_t num_bytes = 1048576;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await pipe_streams::make();
    // 1 MB fills the pipe: the write completes as the reader drains it.
    record w;
    p.ws.write(std::string(num_bytes, '1'), w.handler());
    BOOST_TEST((co_await p.rs.read_bytes(num_bytes) == std::string(num_bytes, '1')));
    co_await w.wait();
    BOOST_TEST(!w.ec());
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestStreamBuffer (Tornado's _StreamBuffer is the write queue here)
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestStreamBuffer)

namespace {
using tornado::detail::write_queue;

// What the next gathered write would send: non-empty while there is data, a prefix of it.
void check_peek(const write_queue& buf, const std::string& expected) {
  auto g = buf.gather();
  const auto& out = g.bufs;
  std::size_t k = g.n;
  std::string got;
  for (std::size_t i = 0; i < k; ++i) got.append(static_cast<const char*>(out[i].data()), out[i].size());
  BOOST_TEST(buf.size() == expected.size());
  if (expected.empty()) {
    BOOST_TEST(got.empty());
  } else {
    BOOST_TEST(!got.empty());
    BOOST_TEST(got.size() <= expected.size());
    BOOST_TEST(expected.compare(0, got.size(), got) == 0);
  }
}

enum class input { view, string, vector };

void check_append_all_then_skip_all(const std::vector<std::string>& objs, input type) {
  std::mt19937 random(42);
  write_queue buf;
  BOOST_TEST(buf.size() == 0u);
  std::string expected;
  for (const auto& o : objs) {
    expected += o;
    switch (type) {
    case input::view: buf.append_copy(o.data(), o.size()); break;
    case input::string: buf.append_owned(std::string(o)); break;
    case input::vector: buf.append_owned(std::vector<char>(o.begin(), o.end())); break;
    }
    check_peek(buf, expected);
  }
  while (!expected.empty()) {
    std::size_t n = std::uniform_int_distribution<std::size_t>(1, expected.size())(random);
    expected.erase(0, n);
    buf.consume(n);
    check_peek(buf, expected);
  }
  BOOST_TEST(buf.size() == 0u);
  BOOST_TEST(buf.empty());
}
} // namespace

BOOST_AUTO_TEST_CASE(test_small) {
  const std::vector<std::string> objs{"12", "345", "67", "89a", "bcde", "fgh", "ijklmn"};
  check_append_all_then_skip_all(objs, input::view);
  check_append_all_then_skip_all(objs, input::string);
  check_append_all_then_skip_all(objs, input::vector);
}

BOOST_AUTO_TEST_CASE(test_large) {
  // Large here: past write_queue::copy_threshold, kept as they are.
  auto times = [](std::string s, int n) {
    std::string r;
    for (int i = 0; i < n; ++i) r += s;
    return r;
  };
  const std::vector<std::string> objs{times("12", 1500), times("345", 2),    times("67", 2000), times("89a", 1200),
                                      times("bcde", 1),  times("fgh", 700), times("ijklmn", 400)};
  check_append_all_then_skip_all(objs, input::view);
  check_append_all_then_skip_all(objs, input::string);
  check_append_all_then_skip_all(objs, input::vector);
}

BOOST_AUTO_TEST_CASE(test_sealed_pieces_do_not_change) {
  // Bytes being written (sealed) neither move nor grow when more is queued meanwhile.
  write_queue q;
  q.append_copy("abc", 3);
  auto g = q.gather();
  BOOST_TEST(g.n == 1u);
  const void* in_flight = g.bufs[0].data();
  q.seal(1);
  q.append_copy("def", 3);
  std::string big(5000, 'z');
  q.append_owned(std::move(big));
  q.append_copy("ghi", 3);
  g = q.gather();
  BOOST_TEST(g.n == 4u);
  BOOST_TEST(g.bufs[0].data() == in_flight);
  BOOST_TEST(g.bufs[0].size() == 3u);
  q.unseal();
  q.consume(3);
  q.append_copy("jkl", 3);  // joins the last copied piece
  g = q.gather();
  BOOST_TEST(g.n == 3u);
  BOOST_TEST(std::string(static_cast<const char*>(g.bufs[2].data()), g.bufs[2].size()) == "ghijkl");
  BOOST_TEST(q.size() == 3u + 5000u + 6u);
}

BOOST_AUTO_TEST_CASE(test_small_string_taken_only_when_its_bytes_are_outside) {
  // A small string alone in the queue is taken without a copy when its bytes are on the heap;
  // bytes inside the object (the small-string buffer, of a size each library chooses) would
  // move with it, so those are copied.
  BOOST_TEST(write_queue::bytes_inside(std::string("abc")));
  BOOST_TEST(!write_queue::bytes_inside(std::string(1000, 'x')));
  std::string on_heap;
  on_heap.reserve(64);
  on_heap = "twenty bytes exactly";
  const void* bytes = on_heap.data();
  write_queue q;
  q.append_owned(std::move(on_heap));
  auto g = q.gather();
  BOOST_TEST(g.n == 1u);
  BOOST_TEST(g.bufs[0].data() == bytes);
  write_queue small;
  small.append_owned(std::string("abc"));
  check_peek(small, "abc");
}

BOOST_AUTO_TEST_CASE(test_read_buffer) {
  tornado::detail::read_buffer b;
  BOOST_TEST(b.empty());
  auto room = b.prepare(8);
  BOOST_TEST(room.size() >= 8u);
  std::memcpy(room.data(), "abcdefgh", 8);
  b.commit(8);
  const void* first = b.data();
  b.consume(3);
  BOOST_TEST(static_cast<const void*>(b.data()) == static_cast<const char*>(first) + 3);  // the rest stays put
  BOOST_TEST(std::string(b.data(), b.size()) == "defgh");
  b.append("ij", 2);
  BOOST_TEST(std::string(b.data(), b.size()) == "defghij");
  b.consume(7);
  BOOST_TEST(b.empty());
  b.reset();
  BOOST_TEST(b.capacity() == 0u);
}

BOOST_AUTO_TEST_CASE(test_read_now_odds) {
  // A stream's read starts ask the kernel directly unless the last 8 tries all found nothing;
  // then only one start in 8 asks, and a single hit brings them all back.
  tornado::detail::read_now_odds odds;
  BOOST_TEST(odds.worth_trying());
  for (int i = 0; i < 7; ++i) odds.record(true);
  BOOST_TEST(odds.worth_trying());
  odds.record(true);
  int tried = 0;
  for (int i = 0; i < 64; ++i) tried += odds.worth_trying();
  BOOST_TEST(tried == 8);
  odds.record(false);
  BOOST_TEST(odds.worth_trying());
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// The rules of the C++ port
// ======================================================================================
namespace {
// An allocator that has no memory: what the library allocates with a handler's allocator fails.
template <class T>
struct no_memory_allocator {
  using value_type = T;
  no_memory_allocator() = default;
  template <class U>
  no_memory_allocator(const no_memory_allocator<U>&) noexcept {}
  T* allocate(std::size_t) { throw std::bad_alloc(); }
  void deallocate(T*, std::size_t) noexcept {}
  template <class U>
  bool operator==(const no_memory_allocator<U>&) const noexcept { return true; }
};
} // namespace

BOOST_AUTO_TEST_SUITE(Reads)

BOOST_AUTO_TEST_CASE(test_read_bytes_zero) {
  // read_bytes(0) completes with "" -- with nothing buffered, and on a closed stream.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    BOOST_TEST(co_await p.rs.read_bytes(0) == "");
    BOOST_TEST(co_await p.rs.read_bytes(0, true) == "");
    BOOST_TEST(!p.rs.reading());
    p.rs.close();
    BOOST_TEST(co_await p.rs.read_bytes(0) == "");
  });
}

BOOST_AUTO_TEST_CASE(test_streaming_callbacks) {
  // Chunks go to the callback as they arrive, from the loop (never from inside the call); the
  // read completes with "" and what goes past n stays buffered.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("hello");
    co_await p.rs.read_bytes(1);  // "ello" buffered
    std::string chunks;
    int calls = 0;
    record r;
    p.rs.read_bytes(11, [&](std::string_view c) { chunks += c, ++calls; }, r.handler());
    BOOST_TEST(calls == 0);
    co_await p.ws.write(" world");
    co_await p.ws.write("!!");
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "");
    BOOST_TEST(chunks == "ello world!");
    BOOST_TEST(calls >= 2);
    BOOST_TEST(co_await p.rs.read_bytes(1) == "!");

    std::string rest;
    record r2;
    p.rs.read_until_close([&](std::string_view c) { rest += c; }, r2.handler());
    co_await p.ws.write("abc");
    co_await p.ws.write("def");
    p.ws.close();
    co_await r2.wait();
    BOOST_TEST(!r2.ec());
    BOOST_TEST(r2.value() == "");
    BOOST_TEST(rest == "abcdef");
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_max_bytes_exact_across_chunks) {
  // A delimiter ending exactly at max_bytes satisfies the read, however the bytes arrive; one
  // byte more does not.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.read_chunk_size = 2});
    record r;
    p.rs.read_until("\r\n", 6, r.handler());
    co_await p.ws.write("1234");
    co_await sleep_for(10ms);
    BOOST_TEST(p.rs.reading());
    co_await p.ws.write("\r\n");
    co_await r.wait();
    BOOST_TEST(r.value() == "1234\r\n");
    record r2;
    p.rs.read_until_regex(boost::regex("\r\n"), 6, r2.handler());
    co_await p.ws.write("12345");
    co_await p.ws.write("\r\n");
    co_await r2.wait();
    BOOST_TEST(r2.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(p.rs.error() == code(tornado::error::unsatisfiable_read));
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_no_match_over_max_bytes) {
  // No delimiter with more than max_bytes buffered: logged, closed, StreamClosedError whose
  // real_error is unsatisfiable_read. Exactly max_bytes without a match keeps waiting.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    test::log_capture logs;
    record r;
    p.rs.read_until("\n", 5, r.handler());
    co_await p.ws.write("12345");
    co_await sleep_for(10ms);
    BOOST_TEST(p.rs.reading());
    BOOST_TEST(!logs.contains("Unsatisfiable read"));
    co_await p.ws.write("6");
    co_await r.wait();
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(p.rs.closed());
    BOOST_TEST(p.rs.error() == code(tornado::error::unsatisfiable_read));
    BOOST_TEST(logs.contains("Unsatisfiable read"));
  });
}

BOOST_AUTO_TEST_CASE(test_read_into_fills_buffered_data_first) {
  // read_into takes buffered bytes first; what does not fit stays buffered.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("0123456789");
    BOOST_TEST(co_await p.rs.read_bytes(2) == "01");
    std::array<char, 3> small{};
    record r;
    p.rs.read_into(asio::buffer(small), false, r.handler());
    BOOST_TEST(!r.done());  // satisfied from the buffer, completed from the loop
    co_await r.wait();
    BOOST_TEST(r.size() == 3u);
    BOOST_TEST(std::string(small.data(), 3) == "234");
    std::array<char, 8> big{};
    record r2;
    p.rs.read_into(asio::buffer(big), false, r2.handler());
    co_await p.ws.write("abc");
    co_await r2.wait();
    BOOST_TEST(std::string(big.data(), 8) == "56789abc");
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_close_on_closed_stream) {
  // On a closed stream read_until_close completes at once with what is left, then with "".
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abc");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "a");
    p.rs.close();
    record r;
    p.rs.read_until_close(r.handler());
    co_await yield_to_loop();
    BOOST_TEST(r.done());
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "bc");
    BOOST_TEST(co_await p.rs.read_until_close() == "");
  });
}

BOOST_AUTO_TEST_CASE(test_eof_before_delimiter) {
  // The peer closes before the delimiter: StreamClosedError (a clean close keeps no error);
  // the bytes received stay readable.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("no newline");
    p.ws.close();
    auto e = co_await expect_closed(p.rs.read_until("\n"));
    BOOST_TEST(e.real_error() == error_code());
    BOOST_TEST(p.rs.error() == error_code());
    BOOST_TEST(co_await p.rs.read_until_close() == "no newline");
  });
}

BOOST_AUTO_TEST_CASE(test_data_arriving_with_fin) {
  // Data sent together with the FIN still satisfies reads, pending or started after.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto c = co_await make_raw_peer();
    record r;
    c.stream.read_until("\r\n", no_limit, r.handler());
    asio::write(c.peer, asio::buffer(std::string_view("line\r\nmore\r\ntail")));
    c.peer.shutdown(tcp::socket::shutdown_send);
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "line\r\n");
    BOOST_TEST(co_await c.stream.read_until("\r\n") == "more\r\n");
    co_await sleep_for(10ms);
    BOOST_TEST(co_await c.stream.read_bytes(4) == "tail");
    co_await expect_closed(c.stream.read_bytes(1));
  });
}

BOOST_AUTO_TEST_CASE(test_reads_after_close_use_buffer) {
  // After close, reads the buffer can satisfy still succeed; the others fail.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abcdefgh");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "a");
    p.rs.close();
    BOOST_TEST(p.rs.closed());
    BOOST_TEST(co_await p.rs.read_bytes(2) == "bc");
    BOOST_TEST(co_await p.rs.read_until("e") == "de");
    BOOST_TEST(co_await p.rs.read_until_regex(boost::regex("f+")) == "f");
    std::array<char, 1> one{};
    BOOST_TEST(co_await p.rs.read_into(asio::buffer(one)) == 1u);
    BOOST_TEST(one[0] == 'g');
    BOOST_TEST(co_await p.rs.read_bytes(5, true) == "h");
    co_await expect_closed(p.rs.read_bytes(1));
    co_await expect_closed(p.rs.read_until("x"));
    co_await expect_closed(p.rs.read_into(asio::buffer(one)));
  });
}

BOOST_AUTO_TEST_CASE(test_max_buffer_size_exceeded) {
  // More than max_buffer_size buffered: logged, closed with stream_buffer_full as error().
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_buffer_size = 1024});
    test::log_capture logs;
    auto read = spawn_op(co_await asio::this_coro::executor, p.rs.read_until("\n"));
    co_await p.ws.write(std::string(4096, 'x'));
    co_await read.wait();
    BOOST_REQUIRE(read.s->error);
    try {
      std::rethrow_exception(read.s->error);
    } catch (const StreamClosedError& e) {
      BOOST_TEST(e.real_error() == code(tornado::error::stream_buffer_full));
    }
    BOOST_TEST(p.rs.closed());
    BOOST_TEST(p.rs.error() == code(tornado::error::stream_buffer_full));
    BOOST_TEST(logs.contains("Reached maximum read buffer size"));
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_long_line_in_small_chunks) {
  // The delimiter search resumes where it stopped: a 100 KB line read 7 bytes at a time.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.read_chunk_size = 7});
    const std::string line = pattern(100000);
    record r;
    p.rs.read_until("\r\n", line.size() + 2, r.handler());
    for (std::size_t off = 0; off < line.size(); off += 1000) co_await p.ws.write(std::string_view(line).substr(off, 1000));
    co_await p.ws.write("\r\n");
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST((r.value() == line + "\r\n"));
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_delimiter_split_across_chunks) {
  // Reads of 1..6 bytes split every delimiter, and prefixes of it, across chunks.
  for (std::size_t chunk = 1; chunk <= 6; ++chunk) {
    BOOST_TEST_CONTEXT("read_chunk_size " << chunk) {
      asio::io_context ctx(1);
      run(ctx, [&]() -> asio::awaitable<void> {
        auto p = co_await tcp_streams::make({.read_chunk_size = chunk});
        co_await p.ws.write("abc<END>x<EN<END><<END>aaab");
        BOOST_TEST(co_await p.rs.read_until("<END>") == "abc<END>");
        BOOST_TEST(co_await p.rs.read_until("<END>") == "x<EN<END>");
        BOOST_TEST(co_await p.rs.read_until("<END>") == "<<END>");
        BOOST_TEST(co_await p.rs.read_until("aab") == "aaab");
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(test_read_until_regex_partial_match_across_chunks) {
  // A partial match at the end of one chunk completes with the next; a failed partial match
  // does not hide a later match.
  for (std::size_t chunk = 1; chunk <= 4; ++chunk) {
    BOOST_TEST_CONTEXT("read_chunk_size " << chunk) {
      asio::io_context ctx(1);
      run(ctx, [&]() -> asio::awaitable<void> {
        auto p = co_await tcp_streams::make({.read_chunk_size = chunk});
        const boost::regex abc("ab+c");
        record r;
        p.rs.read_until_regex(abc, no_limit, r.handler());
        co_await p.ws.write("xxab");
        co_await sleep_for(5ms);
        co_await p.ws.write("bbbb");
        co_await sleep_for(5ms);
        co_await p.ws.write("cyy");
        co_await r.wait();
        BOOST_TEST(r.value() == "xxabbbbbc");
        co_await p.ws.write("abbbd abbc-");
        BOOST_TEST(co_await p.rs.read_until_regex(abc, 13) == "yyabbbd abbc");
        co_await p.ws.write("\r\n");
        BOOST_TEST(co_await p.rs.read_until_regex(boost::regex("\r?\n")) == "-\r\n");
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(test_already_reading) {
  // A second read while one is pending completes with already_reading; the first is intact.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    record first, second, third;
    p.rs.read_bytes(5, false, first.handler());
    p.rs.read_until("x", no_limit, second.handler());
    std::array<char, 4> buf{};
    p.rs.read_into(asio::buffer(buf), false, third.handler());
    co_await second.wait();
    co_await third.wait();
    BOOST_TEST(second.ec() == code(tornado::error::already_reading));
    BOOST_TEST(third.ec() == code(tornado::error::already_reading));
    BOOST_TEST(third.size() == 0u);
    try {
      co_await p.rs.read_until_close();
      BOOST_ERROR("a second read succeeded");
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(e.code() == code(tornado::error::already_reading));
    }
    BOOST_TEST(p.rs.reading());
    BOOST_TEST(!first.done());
    co_await p.ws.write("hello");
    co_await first.wait();
    BOOST_TEST(first.value() == "hello");
  });
}

BOOST_AUTO_TEST_CASE(test_one_byte_trickle) {
  // Bytes arriving one at a time, read with the default chunk and with 1-byte reads.
  for (std::size_t chunk : {std::size_t(64 * 1024), std::size_t(1)}) {
    BOOST_TEST_CONTEXT("read_chunk_size " << chunk) {
      asio::io_context ctx(1);
      run(ctx, [&]() -> asio::awaitable<void> {
        auto p = co_await tcp_streams::make({.read_chunk_size = chunk});
        p.ws.set_nodelay(true);
        const std::string text = "hello world\r\n12345";
        record line;
        p.rs.read_until("\r\n", no_limit, line.handler());
        for (char ch : text) {
          co_await p.ws.write(std::string_view(&ch, 1));
          co_await sleep_for(1ms);
        }
        co_await line.wait();
        BOOST_TEST(line.value() == "hello world\r\n");
        BOOST_TEST(co_await p.rs.read_bytes(5) == "12345");
      });
    }
  }
}


BOOST_AUTO_TEST_CASE(test_read_bytes_over_max_buffer_size) {
  // As Tornado: a read_bytes(n) with n over max_buffer_size buffers up to the limit, then the
  // stream closes with stream_buffer_full (a peer's length cannot make it hold more).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_buffer_size = 100 * 1024});
    test::log_capture logs;
    record w;
    p.ws.write(pattern(200 * 1024), w.handler());
    auto e = co_await expect_closed(p.rs.read_bytes(200 * 1024));
    BOOST_TEST(e.real_error() == code(tornado::error::stream_buffer_full));
    BOOST_TEST(p.rs.error() == code(tornado::error::stream_buffer_full));
    BOOST_TEST(logs.contains("Reached maximum read buffer size"));
    p.ws.close();
    co_await w.wait();
  });
}

BOOST_AUTO_TEST_CASE(test_read_that_cannot_start_leaves_no_read_pending) {
  // A read whose start throws (here a result larger than a string can be, with no buffer
  // limit) leaves the stream as it was: no read pending, and the next read works.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_buffer_size = no_limit});
    record r;
    BOOST_CHECK_THROW(p.rs.read_bytes(std::string().max_size() + 1, false, r.handler()), std::length_error);
    BOOST_TEST(!p.rs.reading());
    co_await p.ws.write("abc");
    BOOST_TEST(co_await within(p.rs.read_bytes(3)) == "abc");
    BOOST_TEST(!r.done());
    p.rs.close();
  });
}

BOOST_AUTO_TEST_CASE(read_whose_waiter_cannot_be_made_leaves_no_read_pending) {
  // As above, when the read's waiter cannot be allocated (a callback's waiter does not fit
  // the stream's own storage): the exception is the answer, the handler is never called, and
  // the stream has no read pending.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    bool called = false;
    BOOST_CHECK_THROW(p.rs.read_until_close(asio::bind_allocator(no_memory_allocator<void>(),
                                                                 [&](error_code, std::string) { called = true; })),
                      std::bad_alloc);
    BOOST_TEST(!p.rs.reading());
    co_await p.ws.write("abc");
    BOOST_TEST(co_await within(p.rs.read_bytes(3)) == "abc");
    p.rs.close();
    co_await tornado::gen::moment();
    BOOST_TEST(!called);
  });
}

BOOST_AUTO_TEST_CASE(test_read_until_regex_whole_match_after_partial) {
  // A partial match (an opened quote) does not hide a whole match further on (the newline), as
  // Python's search of the whole buffer finds it; a match ending at max_bytes is fine.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    const boost::regex quoted_or_newline("\"[^\"]*\"|\n");
    co_await p.ws.write("x\"y\n");
    BOOST_TEST(co_await within(p.rs.read_until_regex(quoted_or_newline)) == "x\"y\n");
    co_await p.ws.write("a\"b\nc");
    BOOST_TEST(co_await within(p.rs.read_until_regex(quoted_or_newline, 4)) == "a\"b\n");
    co_await p.ws.write("\"d\"");
    BOOST_TEST(co_await within(p.rs.read_until_regex(quoted_or_newline)) == "c\"d\"");
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Writes)

namespace {
// Writes go to the kernel at once when they can (as Tornado's): small socket buffers, and a
// kernel already full, keep the stream's own queue in play.
void shrink_buffers(transport::stream_pair<IOStream>& p) {
  p.ws.socket().set_option(asio::socket_base::send_buffer_size(4096));
  p.rs.socket().set_option(asio::socket_base::receive_buffer_size(4096));
}
// Fills the kernel's buffers between the two ends with 'F' bytes; returns how many.
std::size_t fill_kernel(transport::stream_pair<IOStream>& p) {
  auto& sock = p.ws.socket();
  sock.non_blocking(true);
  std::string filler(4096, 'F');
  std::size_t total = 0;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = sock.write_some(asio::buffer(filler), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return total;
    BOOST_REQUIRE(!ec);
    total += n;
  }
}
} // namespace

BOOST_AUTO_TEST_CASE(test_writes_complete_in_order) {
  // Several outstanding writes complete in the order they were made; the bytes arrive in that
  // order too (copied views, owned strings and vectors, a write of nothing).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto order = std::make_shared<std::vector<std::string>>();
    std::vector<record> writes;
    for (int i = 0; i < 6; ++i) writes.emplace_back(order, std::to_string(i));
    std::string expected;
    std::string a = "a", b = pattern(100000), c(10, 'c'), e = pattern(5000, 7);
    std::vector<char> f(3000, 'f');
    expected = a + b + c + e + std::string(f.begin(), f.end());
    shrink_buffers(p);
    p.ws.write(a, writes[0].handler());
    p.ws.write(std::string(b), writes[1].handler());
    p.ws.write(asio::buffer(c), writes[2].handler());
    p.ws.write("", writes[3].handler());
    p.ws.write(e, writes[4].handler());
    p.ws.write(std::move(f), writes[5].handler());
    BOOST_TEST(p.ws.writing());
    std::string got = co_await p.rs.read_bytes(expected.size());
    for (auto& w : writes) co_await w.wait();
    for (auto& w : writes) BOOST_TEST(!w.ec());
    BOOST_TEST((*order == std::vector<std::string>{"0", "1", "2", "3", "4", "5"}));
    BOOST_TEST((got == expected));
    BOOST_TEST(!p.ws.writing());
  });
}

BOOST_AUTO_TEST_CASE(test_write_nothing_completes) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("");
    co_await p.ws.write(std::string());
    co_await p.ws.write(std::vector<char>());
    co_await p.ws.write(asio::const_buffer());
    record r;
    p.ws.write("", r.handler());
    BOOST_TEST(!r.done());  // never inline
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(!p.ws.writing());
    p.ws.close();
    co_await expect_closed(p.ws.write(""));
  });
}

BOOST_AUTO_TEST_CASE(test_writes_issued_while_connecting_are_sent_after) {
  // Writes (and a read) issued while connecting go out once connected, in order.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto acceptor = listen_loopback(ex);
    IOStream client(ex);
    auto order = std::make_shared<std::vector<std::string>>();
    record connected(order, "connect"), w1(order, "w1"), w2(order, "w2"), reply(order, "read");
    client.connect(acceptor.local_endpoint(), connected.handler());
    client.write("hello", w1.handler());
    client.write(std::string(" world\n"), w2.handler());
    client.read_bytes(3, false, reply.handler());
    BOOST_TEST(!connected.done());
    tcp::socket server = co_await acceptor.async_accept(asio::use_awaitable);
    std::string got;
    co_await asio::async_read_until(server, asio::dynamic_buffer(got), "\n", asio::use_awaitable);
    BOOST_TEST(got == "hello world\n");
    co_await asio::async_write(server, asio::buffer(std::string_view("ack")), asio::use_awaitable);
    co_await reply.wait();
    BOOST_TEST(reply.value() == "ack");
    BOOST_TEST((*order == std::vector<std::string>{"connect", "w1", "w2", "read"}));
  });
}

BOOST_AUTO_TEST_CASE(test_max_write_buffer_size) {
  // A write that would take the queue past max_write_buffer_size fails with
  // stream_buffer_full; the stream stays open and the earlier writes go out.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_write_buffer_size = 10});
    shrink_buffers(p);
    std::size_t filler = fill_kernel(p);
    record a, b, c;
    p.ws.write("12345678", a.handler());  // queued: the kernel is full
    p.ws.write("abc", b.handler());        // 8 + 3 > 10
    p.ws.write(std::string(11, 'z'), c.handler());
    co_await b.wait();
    co_await c.wait();
    BOOST_TEST(b.ec() == code(tornado::error::stream_buffer_full));
    BOOST_TEST(c.ec() == code(tornado::error::stream_buffer_full));
    BOOST_TEST(!p.ws.closed());
    BOOST_TEST(co_await p.rs.read_bytes(filler) == std::string(filler, 'F'));
    co_await a.wait();
    BOOST_TEST(!a.ec());
    co_await p.ws.write("9012345678");  // exactly the limit
    BOOST_TEST(co_await p.rs.read_bytes(18) == "123456789012345678");
    filler = fill_kernel(p);
    p.ws.write("12345678", record().handler());
    try {
      co_await p.ws.write("abc");
      BOOST_ERROR("the write past the limit succeeded");
    } catch (const tornado::StreamBufferFullError&) {
    }
    BOOST_TEST(!p.ws.closed());
    BOOST_TEST(co_await p.rs.read_bytes(filler) == std::string(filler, 'F'));
    BOOST_TEST(co_await p.rs.read_bytes(8) == "12345678");
  });
}

BOOST_AUTO_TEST_CASE(test_large_owned_write) {
  // Large owned strings and vectors are written without a copy and arrive intact.
  const std::size_t n = 4 * 1024 * 1024;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    std::string big = pattern(n);
    const std::string copy = big;
    std::vector<char> vec(copy.rbegin(), copy.rend());
    record w1, w2;
    p.ws.write(std::move(big), w1.handler());
    p.ws.write(std::move(vec), w2.handler());
    std::string got = co_await p.rs.read_bytes(2 * n);
    co_await w1.wait();
    co_await w2.wait();
    BOOST_TEST(!w1.ec());
    BOOST_TEST(!w2.ec());
    BOOST_TEST((got == copy + std::string(copy.rbegin(), copy.rend())));
  });
}

BOOST_AUTO_TEST_CASE(test_slow_reader_fast_writer) {
  // A writer that queues faster than a slow reader reads: past max_write_buffer_size writes
  // fail without losing or reordering anything; the writer waits (a write of nothing completes
  // once everything before it is sent) and goes on.
  const std::size_t total = 512 * 1024, chunk = 16 * 1024;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_write_buffer_size = 64 * 1024});
    shrink_buffers(p);
    auto ex = co_await asio::this_coro::executor;
    int full = 0;
    std::string received;
    task_group tasks;
    tasks.spawn(ex, [&]() -> asio::awaitable<void> {
      std::size_t sent = 0;
      while (sent < total) {
        // A burst of writes without yielding: equal sizes, so the accepted ones are a prefix.
        std::vector<record> burst(8);
        for (std::size_t i = 0; i < burst.size() && sent + i * chunk < total; ++i)
          p.ws.write(pattern(chunk, sent + i * chunk), burst[i].handler());
        co_await p.ws.write("");
        for (auto& r : burst) {
          if (!r.done()) break;
          if (r.ec() == code(tornado::error::stream_buffer_full)) {
            ++full;
            break;
          }
          BOOST_REQUIRE(!r.ec());
          sent += chunk;
        }
        BOOST_REQUIRE(!p.ws.closed());
      }
    });
    tasks.spawn(ex, [&]() -> asio::awaitable<void> {
      while (received.size() < total) {
        received += co_await p.rs.read_bytes(std::min<std::size_t>(8192, total - received.size()));
        co_await sleep_for(1ms);
      }
    });
    co_await tasks.wait();
    BOOST_TEST(full > 0);
    BOOST_TEST((received == pattern(total)));
  });
}

BOOST_AUTO_TEST_CASE(write_that_cannot_be_queued_leaves_later_writes_working) {
  // A write that cannot be queued (here more bytes than a string can hold, while connecting,
  // so that nothing is sent first) throws, and counts for nothing: a later write completes.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    tcp::acceptor acceptor(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    IOStream ws(ex);
    ws.connect(acceptor.local_endpoint(), [](error_code) {});
    const char byte = 'x';
    BOOST_CHECK_THROW(ws.write(asio::const_buffer(&byte, std::string().max_size() + 1), [](error_code) {}),
                      std::length_error);
    tcp::socket peer = co_await acceptor.async_accept(asio::use_awaitable);
    co_await within(ws.write("abc"));
    std::string got(3, '\0');
    co_await asio::async_read(peer, asio::buffer(got), asio::use_awaitable);
    BOOST_TEST(got == "abc");
  });
}

BOOST_AUTO_TEST_CASE(throwing_write_handler_on_a_strand_leaves_no_write_behind) {
  // Two writes made while connecting go out in one system call and complete together. On a
  // strand, dispatch runs the first handler inline and its exception leaves run(); the second
  // still completes.
  asio::io_context ctx(1);
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket peer(ctx);
  acceptor.async_accept(peer, [](error_code) {});
  IOStream ws{asio::any_io_executor(asio::make_strand(ctx))};
  ws.connect(acceptor.local_endpoint(), [](error_code) {});
  ws.write("a", [](error_code) { throw std::runtime_error("from a write handler"); });
  bool second = false;
  ws.write("b", [&](error_code ec) { second = !ec; });
  BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
  ctx.restart();
  ctx.run_for(1s);
  BOOST_TEST(second);
}

BOOST_AUTO_TEST_CASE(write_whose_waiter_cannot_be_made_closes_the_stream) {
  // Part of a large write went out and the rest is queued when its waiter cannot be made:
  // the caller is told the write failed, so the stream closes rather than send the rest later
  // (a retry would send it twice, and the peer could not make sense of what follows).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    std::string big(16 << 20, 'x');  // more than the two sockets' buffers hold: the peer does not read
    BOOST_CHECK_THROW(p.ws.write(std::move(big), asio::bind_allocator(no_memory_allocator<void>(), [](error_code) {})),
                      std::bad_alloc);
    BOOST_TEST(p.ws.closed());
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Close)

BOOST_AUTO_TEST_CASE(test_close_fails_pending_operations) {
  // close(error) fails connect, writes and reads with StreamClosedError whose real_error is that
  // error -- except read_until_close, which gets what was buffered.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    const error_code why = asio::error::timed_out;
    {
      auto acceptor = listen_loopback(ex);
      IOStream client(ex);
      record connected, written, read;
      client.connect(acceptor.local_endpoint(), connected.handler());
      client.write("x", written.handler());
      client.read_bytes(1, false, read.handler());
      client.close(why);
      BOOST_TEST(!connected.done());  // completions come from the loop
      co_await connected.wait();
      co_await written.wait();
      co_await read.wait();
      BOOST_TEST(connected.ec() == code(tornado::error::stream_closed));
      BOOST_TEST(written.ec() == code(tornado::error::stream_closed));
      BOOST_TEST(read.ec() == code(tornado::error::stream_closed));
      BOOST_TEST(client.error() == why);
    }
    // One stream with a read and a (16 MB, so still queued) write pending, in coroutines.
    auto p = co_await tcp_streams::make();
    auto read = spawn_op(ex, p.rs.read_bytes(10));
    auto write = spawn_op(ex, p.rs.write(std::string(16 * 1024 * 1024, 'w')));
    co_await yield_to_loop(3);
    BOOST_REQUIRE(p.rs.reading());
    BOOST_REQUIRE(p.rs.writing());
    p.rs.close(why);
    co_await read.wait();
    co_await write.wait();
    for (auto error : {read.s->error, write.s->error}) {
      BOOST_REQUIRE(error);
      try {
        std::rethrow_exception(error);
      } catch (const StreamClosedError& e) {
        BOOST_TEST(e.real_error() == why);
      }
    }

    auto q = co_await tcp_streams::make();
    record until_close;
    q.rs.read_until_close(until_close.handler());
    co_await q.ws.write("buffered");
    co_await sleep_for(10ms);
    BOOST_TEST(!until_close.done());
    q.rs.close(why);
    co_await until_close.wait();
    BOOST_TEST(!until_close.ec());
    BOOST_TEST(until_close.value() == "buffered");
  });
}

BOOST_AUTO_TEST_CASE(test_close_callback_runs_once_on_loop) {
  // The close callback runs once, from the loop -- not from inside close() -- also with a
  // read pending.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto closed = watch_close(p.rs);
    record r;
    p.rs.read_bytes(5, false, r.handler());
    p.rs.close();
    BOOST_TEST(closed->calls == 0);
    BOOST_TEST(!r.done());
    p.rs.close();
    co_await r.wait();
    co_await closed->event.wait(5s);
    co_await yield_to_loop(3);
    BOOST_TEST(closed->calls == 1);
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_close_runs_no_user_code_inline) {
  // close() called from the loop neither completes a read nor runs a chunk callback from
  // inside itself: user code runs later, from the loop.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    std::string chunks;
    record r;
    p.rs.read_until_close([&](std::string_view c) { chunks += c; }, r.handler());
    co_await p.ws.write("abc");
    co_await sleep_for(10ms);
    BOOST_TEST(chunks == "abc");
    p.rs.close();
    BOOST_TEST(!r.done());
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "");

    auto q = co_await tcp_streams::make();
    co_await q.ws.write("xyz");
    BOOST_TEST(co_await q.rs.read_bytes(1) == "x");  // "yz" buffered
    std::string chunks2;
    record r2;
    q.rs.read_until_close([&](std::string_view c) { chunks2 += c; }, r2.handler());
    q.rs.close();
    BOOST_TEST(chunks2 == "");
    BOOST_TEST(!r2.done());
    co_await r2.wait();
    BOOST_TEST(chunks2 == "yz");
    BOOST_TEST(!r2.ec());

    auto s = co_await tcp_streams::make();
    co_await s.ws.write("xyz");
    BOOST_TEST(co_await s.rs.read_bytes(1) == "x");
    std::string chunks3;
    record r3;
    s.rs.read_bytes(10, [&](std::string_view c) { chunks3 += c; }, r3.handler());
    s.rs.close();
    BOOST_TEST(chunks3 == "");
    BOOST_TEST(!r3.done());
    co_await r3.wait();
    BOOST_TEST(r3.ec() == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_peer_reset_during_read) {
  // A reset closes the stream quietly (nothing logged), keeping the error.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto c = co_await make_raw_peer();
    test::log_capture logs;
    record r;
    c.stream.read_bytes(10, false, r.handler());
    co_await yield_to_loop();
    c.peer.set_option(asio::socket_base::linger(true, 0));
    c.peer.close();
    co_await r.wait();
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(c.stream.closed());
    BOOST_TEST(c.stream.error() == code(asio::error::connection_reset));
    BOOST_TEST(logs.size() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_peer_reset_during_write) {
  // A reset while a write is pending closes the stream quietly; no SIGPIPE kills the process.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto c = co_await make_raw_peer();
    c.stream.socket().set_option(asio::socket_base::send_buffer_size(64 * 1024));
    c.peer.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
    test::log_capture logs;
    record w;
    c.stream.write(std::string(8 * 1024 * 1024, 'x'), w.handler());
    co_await sleep_for(20ms);
    BOOST_REQUIRE(!w.done());
    BOOST_TEST(c.stream.writing());
    c.peer.set_option(asio::socket_base::linger(true, 0));
    c.peer.close();
    co_await w.wait();
    BOOST_TEST(w.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(c.stream.closed());
    const error_code e = c.stream.error();
    BOOST_TEST((e == code(asio::error::connection_reset) || e == code(asio::error::broken_pipe)), e.message());
    // Writing again fails cleanly too.
    co_await expect_closed(c.stream.write("more"));
    BOOST_TEST(logs.size() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_half_close_then_read_until_close) {
  // The peer shuts down its sending side: read_until_close gets everything it sent.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto c = co_await make_raw_peer();
    record r;
    c.stream.read_until_close(r.handler());
    asio::write(c.peer, asio::buffer(std::string_view("hello")));
    co_await sleep_for(5ms);
    asio::write(c.peer, asio::buffer(std::string_view(" world")));
    c.peer.shutdown(tcp::socket::shutdown_send);
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "hello world");
    BOOST_TEST(c.stream.closed());
    BOOST_TEST(c.stream.error() == error_code());
  });
}

BOOST_AUTO_TEST_CASE(test_destroy_with_operations_pending) {
  // Destroying the stream closes it: a coroutine's pending read throws StreamClosedError, a
  // callback's pending read and write complete with stream_closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto p = co_await tcp_streams::make();
    std::optional<IOStream> rs(std::move(p.rs));
    auto read = spawn_op(ex, rs->read_bytes(10));
    co_await yield_to_loop(3);
    BOOST_REQUIRE(rs->reading());
    rs.reset();
    co_await read.wait();
    BOOST_REQUIRE(read.s->error);
    try {
      std::rethrow_exception(read.s->error);
    } catch (const StreamClosedError&) {
    }

    auto q = co_await tcp_streams::make();
    q.ws.socket().set_option(asio::socket_base::send_buffer_size(64 * 1024));
    std::optional<IOStream> ws(std::move(q.ws));
    std::optional<IOStream> rs2(std::move(q.rs));
    record r, w, streaming;
    rs2->read_until("never", no_limit, r.handler());
    ws->write(std::string(16 * 1024 * 1024, 'x'), w.handler());
    co_await sleep_for(10ms);
    BOOST_REQUIRE(!w.done());
    rs2.reset();
    ws.reset();
    co_await r.wait();
    co_await w.wait();
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(w.ec() == code(tornado::error::stream_closed));

    auto s = co_await tcp_streams::make();
    std::optional<IOStream> rs3(std::move(s.rs));
    std::string chunks;
    rs3->read_bytes(10, [&chunks](std::string_view c) { chunks += c; }, streaming.handler());
    rs3.reset();
    co_await streaming.wait();
    BOOST_TEST(streaming.ec() == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_move_assignment_closes_previous_stream) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto q = co_await tcp_streams::make();
    auto closed = watch_close(p.rs);
    p.rs = std::move(q.rs);  // p's former server end closes; its peer sees the close
    BOOST_TEST(co_await p.ws.read_until_close() == "");
    co_await closed->event.wait(5s);
    co_await q.ws.write("still here");
    BOOST_TEST(co_await p.rs.read_bytes(10) == "still here");
  });
}


BOOST_AUTO_TEST_CASE(test_streaming_read_bytes_on_closed_stream) {
  // On a stream already closed, a streaming read_bytes hands over what is buffered, then fails.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abc");
    BOOST_TEST(co_await within(p.rs.read_bytes(1)) == "a");  // "bc" stays buffered
    p.rs.close();
    std::string got;
    record r;
    p.rs.read_bytes(10, [&](std::string_view chunk) { got += chunk; }, r.handler());
    co_await r.wait(2s);
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(got == "bc");
    BOOST_TEST(!p.rs.reading());
  });
}

BOOST_AUTO_TEST_CASE(test_unsatisfiable_read_on_closed_stream) {
  // On a stream already closed, a read past max_bytes fails as any read the buffer cannot
  // satisfy; the stream's error stays the one it closed with.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("x1234567890");
    co_await sleep_for(10ms);
    BOOST_TEST(co_await within(p.rs.read_bytes(1)) == "x");  // "1234567890" stays buffered
    p.rs.close();
    record r;
    p.rs.read_until("\n", 5, r.handler());
    co_await r.wait(2s);
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    record x;
    p.rs.read_until_regex(boost::regex("\n"), 5, x.handler());
    co_await x.wait(2s);
    BOOST_TEST(x.ec() == code(tornado::error::stream_closed));
    BOOST_TEST(!p.rs.reading());
    BOOST_TEST(!p.rs.error());
    BOOST_TEST(co_await within(p.rs.read_until_close()) == "1234567890");
  });
}

BOOST_AUTO_TEST_CASE(test_large_read_keeps_its_bytes_on_close) {
  // A read_bytes large enough to read straight into its result, and a read_into, fail when
  // the peer closes first; what they took stays in the stream, as Tornado's buffer keeps it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    const std::string data = pattern(100000);
    co_await p.ws.write(data);
    p.ws.close();
    co_await expect_closed(p.rs.read_bytes(200000));
    BOOST_TEST((co_await within(p.rs.read_until_close()) == data));
  });
  asio::io_context ctx2(1);
  run(ctx2, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("0123456789");
    p.ws.close();
    std::array<char, 20> buf{};
    co_await expect_closed(p.rs.read_into(asio::buffer(buf)));
    BOOST_TEST(co_await within(p.rs.read_until_close()) == "0123456789");
  });
}

BOOST_AUTO_TEST_CASE(test_close_during_a_large_read) {
  // close() with a large read_bytes in flight (reading straight into its result): the read
  // fails with stream_closed once its system read has returned, and keeps no byte from the
  // stream. A streamed read pending on the closed stream makes a new read fail as closed,
  // not as "already reading" (Tornado checks closed first).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    const std::string first = pattern(1000);
    record r;
    p.rs.read_bytes(200000, false, r.handler());
    co_await p.ws.write(first);
    co_await sleep_for(10ms);
    BOOST_REQUIRE(!r.done());
    p.rs.close();
    co_await r.wait(2s);
    BOOST_TEST(r.ec() == code(tornado::error::stream_closed));
    BOOST_TEST((co_await within(p.rs.read_until_close()) == first));
  });
  asio::io_context ctx2(1);
  run(ctx2, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    record r;
    p.rs.read_until_close([](std::string_view) {}, r.handler());
    p.rs.close();
    co_await expect_closed(p.rs.read_bytes(1));
    co_await r.wait(2s);
  });
}

BOOST_AUTO_TEST_CASE(test_close_completes_a_satisfiable_read) {
  // The chunk that carries the delimiter also takes the buffer past max_buffer_size: the
  // stream closes with stream_buffer_full, and the pending read_until, which the buffer
  // satisfies, completes (Tornado's close() resolves such a read).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make({.max_buffer_size = 1024});
    test::log_capture logs;
    record r;
    p.rs.read_until("\n", no_limit, r.handler());
    co_await p.ws.write(std::string(1000, 'x'));
    co_await sleep_for(10ms);
    BOOST_REQUIRE(!r.done());
    co_await p.ws.write(std::string(99, 'y') + "\n");
    co_await r.wait(2s);
    BOOST_TEST(!r.ec(), r.ec().message());
    BOOST_TEST(r.value() == std::string(1000, 'x') + std::string(99, 'y') + "\n");
    BOOST_TEST(p.rs.closed());
    BOOST_TEST(p.rs.error() == code(tornado::error::stream_buffer_full));
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Cancellation)

BOOST_AUTO_TEST_CASE(test_cancel_pending_read) {
  // Each cancellation type completes a pending read with operation_aborted; the data that
  // comes next goes to the next read.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                      asio::cancellation_type::total}) {
      asio::cancellation_signal sig;
      record r;
      p.rs.read_until("\n", no_limit, asio::bind_cancellation_slot(sig.slot(), r.handler()));
      co_await yield_to_loop();
      BOOST_REQUIRE(p.rs.reading());
      sig.emit(type);
      co_await r.wait();
      BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
      BOOST_TEST(!p.rs.reading());
      co_await p.ws.write("line\n");
      BOOST_TEST(co_await within(p.rs.read_until("\n")) == "line\n");
    }
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_read_in_coroutine) {
  // The default token: cancelling the coroutine's slot makes the read throw CancelledError.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto p = co_await tcp_streams::make();
    asio::cancellation_signal sig;
    record outcome;
    asio::co_spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          try {
            co_await p.rs.read_bytes(4);
          } catch (const tornado::CancelledError&) {
            outcome.handler()(asio::error::operation_aborted);
            co_return;
          }
          outcome.handler()(error_code());
        },
        asio::bind_cancellation_slot(sig.slot(), asio::detached));
    co_await yield_to_loop(3);
    BOOST_REQUIRE(p.rs.reading());
    sig.emit(asio::cancellation_type::terminal);
    co_await outcome.wait();
    BOOST_TEST(outcome.ec() == code(asio::error::operation_aborted));
    co_await p.ws.write("data");
    BOOST_TEST(co_await within(p.rs.read_bytes(4)) == "data");
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_read_keeps_buffered_data) {
  // Data received before the cancellation stays buffered; data arriving after it follows.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abc");
    asio::cancellation_signal sig;
    record r;
    p.rs.read_until("\n", no_limit, asio::bind_cancellation_slot(sig.slot(), r.handler()));
    co_await sleep_for(10ms);  // "abc" is read into the buffer; the read waits for more
    BOOST_REQUIRE(p.rs.reading());
    sig.emit(asio::cancellation_type::terminal);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
    BOOST_TEST(co_await within(p.rs.read_bytes(3)) == "abc");
    co_await p.ws.write("def\n");
    BOOST_TEST(co_await within(p.rs.read_until("\n")) == "def\n");
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_direct_read_loses_no_data) {
  // A large read_bytes reads straight into its result; cancelled half way, the bytes it took
  // go back to the stream.
  const std::size_t n = 100000, first = 1000;
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    const std::string data = pattern(n);
    asio::cancellation_signal sig;
    record r;
    p.rs.read_bytes(n, false, asio::bind_cancellation_slot(sig.slot(), r.handler()));
    co_await p.ws.write(std::string_view(data).substr(0, first));
    co_await sleep_for(10ms);
    BOOST_REQUIRE(p.rs.reading());
    sig.emit(asio::cancellation_type::terminal);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
    record w;
    p.ws.write(data.substr(first), w.handler());
    std::string got = co_await within(p.rs.read_bytes(n));
    BOOST_TEST((got == data));
    co_await w.wait();
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_read_into_loses_no_data) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    std::array<char, 10> buf{};
    asio::cancellation_signal sig;
    record r;
    p.rs.read_into(asio::buffer(buf), false, asio::bind_cancellation_slot(sig.slot(), r.handler()));
    co_await p.ws.write("hello");
    co_await sleep_for(10ms);
    BOOST_REQUIRE(p.rs.reading());
    sig.emit(asio::cancellation_type::terminal);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
    co_await p.ws.write("world");
    BOOST_TEST(co_await within(p.rs.read_bytes(10)) == "helloworld");
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_read_into_after_cancelled_read) {
  // Two cancellations in a row: a read_until (its socket read stays in flight) and then a
  // read_into that took the buffered bytes. Nothing is lost, nothing is corrupted.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abc");
    asio::cancellation_signal sig1, sig2;
    record r1, r2;
    p.rs.read_until("\n", no_limit, asio::bind_cancellation_slot(sig1.slot(), r1.handler()));
    co_await sleep_for(10ms);
    sig1.emit(asio::cancellation_type::terminal);
    co_await r1.wait();
    BOOST_TEST(r1.ec() == code(asio::error::operation_aborted));
    std::array<char, 10> buf{};
    p.rs.read_into(asio::buffer(buf), false, asio::bind_cancellation_slot(sig2.slot(), r2.handler()));
    sig2.emit(asio::cancellation_type::terminal);
    co_await r2.wait();
    BOOST_TEST(r2.ec() == code(asio::error::operation_aborted));
    co_await p.ws.write("def\n");
    BOOST_TEST(co_await within(p.rs.read_until("\n")) == "abcdef\n");
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Connect)

BOOST_AUTO_TEST_CASE(test_gaierror) {
  // A host name that does not resolve fails connect with StreamClosedError; error() is the
  // resolver's, and the close callback runs.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    IOStream stream(ex);
    auto closed = watch_close(stream);
    co_await expect_closed(stream.connect("nonexistent.invalid", 80));
    BOOST_TEST((stream.error().category() == asio::error::get_netdb_category() ||
                stream.error().category() == asio::error::get_addrinfo_category()),
               "error: " << stream.error().message());
    co_await closed->event.wait(5s);
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_CASE(test_connect_host_port) {
  // connect(host, port) resolves, then connects; a refused port fails with its error.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto acceptor = listen_loopback(ex);
    IOStream client(ex);
    co_await client.connect("127.0.0.1", acceptor.local_endpoint().port());
    IOStream server(co_await acceptor.async_accept(asio::use_awaitable));
    co_await client.write("ping\n");
    BOOST_TEST(co_await server.read_until("\n") == "ping\n");

    auto refusing = make_refusing_port(ex);
    IOStream refused(ex);
    auto e = co_await expect_closed(refused.connect("127.0.0.1", refusing.endpoint.port()));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
    BOOST_TEST(refused.error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(test_set_nodelay) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    p.ws.set_nodelay(true);
    tcp::no_delay opt;
    p.ws.socket().get_option(opt);
    BOOST_TEST(opt.value());
    p.ws.set_nodelay(false);
    p.ws.socket().get_option(opt);
    BOOST_TEST(!opt.value());
    p.ws.close();
    p.ws.set_nodelay(true);  // ignored on a closed stream
    auto l = co_await local_streams::make();
    l.ws.set_nodelay(true);  // ignored where there is no such option
    co_await l.ws.write("x");
    BOOST_TEST(co_await l.rs.read_bytes(1) == "x");
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Transports)

BOOST_AUTO_TEST_CASE(test_pipe_closed_writer) {
  // Write on one end of a pipe, read on the other; closing the writer ends read_until_close.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await pipe_streams::make();
    record r;
    p.rs.read_until_close(r.handler());
    co_await p.ws.write("through ");
    co_await p.ws.write("the pipe");
    p.ws.close();
    co_await r.wait();
    BOOST_TEST(!r.ec());
    BOOST_TEST(r.value() == "through the pipe");
  });
}

BOOST_AUTO_TEST_CASE(test_pipe_closed_reader) {
  // Writing into a pipe whose reader is gone fails quietly with EPIPE (no SIGPIPE).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await pipe_streams::make();
    test::log_capture logs;
    p.rs.close();
    auto e = co_await expect_closed(p.ws.write("nobody reads this"));
    BOOST_TEST(e.real_error() == code(asio::error::broken_pipe));
    BOOST_TEST(p.ws.closed());
    BOOST_TEST(logs.size() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_user_stream) {
  // A BaseIOStream over a stream type of the user's: reads, writes, end of file.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    script->reads = {{"hello\nwor", {}}, {"ld\n", {}}, {"tail", {}}};
    tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
    BOOST_TEST(co_await stream.read_until("\n") == "hello\n");
    BOOST_TEST(co_await stream.read_until("\n") == "world\n");
    co_await stream.write("reply");
    BOOST_TEST(script->written == "reply");
    BOOST_TEST(co_await stream.read_until_close() == "tail");
    BOOST_TEST(stream.closed());
    BOOST_TEST(!stream.error());
  });
}

BOOST_AUTO_TEST_CASE(test_close_keeps_the_bytes_of_a_write_in_flight) {
  // A stream of the user's has no close(): a write in flight when the stream closes goes on,
  // and its bytes must live until it returns (Asio's rule for an operation's buffers).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    script->hold_writes = true;
    tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
    const std::string big(100000, 'b');
    record w;
    stream.write(std::vector<char>(big.begin(), big.end()), w.handler());  // taken, not copied
    BOOST_REQUIRE(script->release);
    stream.close();
    BOOST_TEST(!stream.writing());
    co_await w.wait();
    BOOST_TEST(w.ec() == code(tornado::error::stream_closed));
    std::exchange(script->release, nullptr)();
    co_await sleep_for(1ms);
    BOOST_TEST((script->written_at_release == big));
  });
}

BOOST_AUTO_TEST_CASE(test_async_read_error_logging) {
  // A read error that is not the peer going away is logged, once, and closes the stream with
  // that error (Tornado's "error on read").
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    script->reads = {{"a", {}}, {"", make_error_code(asio::error::no_memory)}};
    tornado::BaseIOStream<scripted_stream> server(scripted_stream(ex, script));
    test::log_capture logs;
    auto closed = watch_close(server);
    BOOST_TEST(co_await server.read_bytes(1) == "a");
    co_await closed->event.wait(5s);
    BOOST_TEST(server.error() == code(asio::error::no_memory));
    std::size_t logged = 0;
    for (auto& line : logs.lines()) logged += line.find("Read error") != std::string::npos;
    BOOST_TEST(logged == 1u);
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_CASE(test_reset_and_timeout_close_quietly) {
  // A reset, an abort, a timeout or a shut-down connection closes the stream without a log
  // line, the error kept (Tornado's _is_connreset); a pending read fails with it.
  for (auto err : {asio::error::connection_reset, asio::error::connection_aborted, asio::error::timed_out,
                   asio::error::shut_down}) {
    asio::io_context ctx(1);
    run(ctx, [&]() -> asio::awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      auto script = std::make_shared<scripted_stream::script>();
      script->reads = {{"partial", {}}, {"", make_error_code(err)}};
      tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
      test::log_capture logs;
      auto e = co_await expect_closed(stream.read_until("\n"));
      BOOST_TEST(e.real_error() == code(err));
      BOOST_TEST(stream.error() == code(err));
      BOOST_TEST(logs.size() == 0u, "logged for " << code(err).message());
    });
  }
}

BOOST_AUTO_TEST_CASE(test_owned_write_not_copied) {
  // A large std::string, or std::vector of char, unsigned char or std::byte, given by rvalue
  // is written from its own memory.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
    std::string big = pattern(1 << 20);
    const void* big_bytes = big.data();
    co_await stream.write(std::move(big));
    BOOST_TEST_REQUIRE(script->write_calls.size() >= 1u);
    BOOST_TEST(script->write_calls[0][0].data() == big_bytes);
    std::vector<char> bytes(1 << 20, 'v');
    const void* vector_bytes = bytes.data();
    const std::size_t calls = script->write_calls.size();
    co_await stream.write(std::move(bytes));
    BOOST_TEST_REQUIRE(script->write_calls.size() > calls);
    BOOST_TEST(script->write_calls[calls][0].data() == vector_bytes);
    std::vector<unsigned char> u(1 << 20, 'u');
    const void* u_bytes = u.data();
    co_await stream.write(std::move(u));
    BOOST_TEST(script->write_calls.back()[0].data() == u_bytes);
    std::vector<std::byte> b(1 << 20, std::byte{'b'});
    const void* b_bytes = b.data();
    co_await stream.write(std::move(b));
    BOOST_TEST(script->write_calls.back()[0].data() == b_bytes);
    BOOST_TEST(script->written.size() == std::size_t(4 << 20));
    BOOST_TEST(script->written.substr((3 << 20) - 2, 4) == "uubb");
    // Small ones are copied, and still arrive.
    std::vector<std::byte> small{std::byte{'o'}, std::byte{'k'}};
    co_await stream.write(std::move(small));
    BOOST_TEST(script->written.substr(4 << 20) == "ok");
  });
}

BOOST_AUTO_TEST_CASE(test_writes_gathered) {
  // Writes queued while one is in flight leave together, in one write call.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto script = std::make_shared<scripted_stream::script>();
    script->hold_writes = true;
    tornado::BaseIOStream<scripted_stream> stream(scripted_stream(ex, script));
    record first, second, third;
    stream.write("one", first.handler());
    stream.write("two", second.handler());
    stream.write(pattern(100000), third.handler());
    co_await asio::post(ex, asio::use_awaitable);
    BOOST_TEST(script->write_calls.size() == 1u);
    BOOST_TEST(script->written == "one");
    script->hold_writes = false;
    std::exchange(script->release, nullptr)();  // (the held write refers to the stream: no cycle left)
    co_await third.wait();
    BOOST_TEST(first.done());
    BOOST_TEST(second.done());
    BOOST_TEST(script->write_calls.size() == 2u);
    BOOST_TEST(script->written == "onetwo" + pattern(100000));
  });
}

BOOST_AUTO_TEST_CASE(test_beast_tcp_stream) {
  // A BaseIOStream over Beast's tcp_stream: its socket is what set_nodelay and close reach.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto acceptor = listen_loopback(ex);
    tcp::socket peer(ex);
    co_await peer.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
    tornado::BaseIOStream<beast::tcp_stream> stream(beast::tcp_stream(co_await acceptor.async_accept(asio::use_awaitable)));
    stream.set_nodelay(true);
    tcp::no_delay nodelay;
    stream.socket().socket().get_option(nodelay);
    BOOST_TEST(nodelay.value());
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await asio::async_write(peer, asio::buffer(request), asio::use_awaitable);
    BOOST_TEST(co_await stream.read_until("\r\n\r\n") == request);
    co_await stream.write("HTTP/1.1 204 No Content\r\n\r\n");
    std::string got;
    co_await asio::async_read_until(peer, asio::dynamic_buffer(got), "\r\n\r\n", asio::use_awaitable);
    BOOST_TEST(got == "HTTP/1.1 204 No Content\r\n\r\n");
    stream.close();
    BOOST_TEST(!stream.socket().socket().is_open());
    char c;
    auto [ec, n] = co_await peer.async_read_some(asio::buffer(&c, 1), asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(ec == code(asio::error::eof));
  });
}

BOOST_AUTO_TEST_CASE(test_local_iostream_socketpair) {
  // LocalIOStream over a socketpair: both directions.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await local_streams::make();
    co_await p.ws.write("ping\n");
    BOOST_TEST(co_await p.rs.read_until("\n") == "ping\n");
    co_await p.rs.write("pong\n");
    BOOST_TEST(co_await p.ws.read_until("\n") == "pong\n");
    p.rs.close();
    BOOST_TEST(co_await p.ws.read_until_close() == "");
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(TLS)

BOOST_AUTO_TEST_CASE(test_tls_loopback_verified) {
  // Server and client over loopback, the client verifying the certificate and its name.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tls_streams::make();
    BOOST_TEST(SSL_get_verify_result(p.ws.socket().native_handle()) == X509_V_OK);
    BOOST_TEST(SSL_get_current_cipher(p.ws.socket().native_handle()) != nullptr);
    co_await p.ws.write("hello over tls\n");
    BOOST_TEST(co_await p.rs.read_until("\n") == "hello over tls\n");
    const std::string big = pattern(300000);
    record w;
    p.rs.write(big, w.handler());
    BOOST_TEST((co_await p.ws.read_bytes(big.size()) == big));
    co_await w.wait();
    BOOST_TEST(!w.ec());
  });
}

BOOST_AUTO_TEST_CASE(test_tls_verifies_ip_address) {
  // Without a name, connect() checks the certificate against the address connected to.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto acceptor = listen_loopback(ex);
    SSLIOStream client(tcp::socket(ex), client_tls());
    record connected;
    client.connect(acceptor.local_endpoint(), {}, true, connected.handler());
    SSLIOStream server(co_await acceptor.async_accept(asio::use_awaitable), server_tls(), true);
    co_await server.wait_for_handshake();
    co_await connected.wait();
    BOOST_TEST(!connected.ec());
    co_await client.write("ip\n");
    BOOST_TEST(co_await server.read_until("\n") == "ip\n");
  });
}

// Connects a client (trusting what `client_ctx` trusts, expecting `name`) to the localhost
// server, and its handshake fails: checks that the server's fails too and that the rest of the
// client's stream fails as closed; returns the client's error.
asio::awaitable<error_code> refused_handshake(asio::ssl::context& client_ctx, std::string name) {
  auto ex = co_await asio::this_coro::executor;
  auto [c, s] = co_await transport::socket_pair();
  SSLIOStream server(std::move(s), server_tls(), true);
  SSLIOStream client(std::move(c), client_ctx, false, name, true);
  auto server_done = spawn_op(ex, server.wait_for_handshake());
  auto e = co_await expect_closed(client.wait_for_handshake());
  BOOST_TEST(client.error() == e.real_error());
  BOOST_TEST(client.closed());
  co_await server_done.wait();
  BOOST_TEST(static_cast<bool>(server_done.s->error));
  co_await expect_closed(client.write("x"));
  co_return e.real_error();
}

// A client expecting `name`, which the certificate does not carry, fails with `reason`.
void expect_name_refused(const std::string& name, long reason, const std::string& why) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    test::log_capture logs;
    const error_code ec = co_await refused_handshake(client_tls(), name);
    BOOST_TEST(is_verify_error(ec, reason), "real_error: " << ec.message());
    BOOST_TEST(logs.contains("SSL Error: certificate verify failed: " + why));
  });
}

BOOST_AUTO_TEST_CASE(test_tls_hostname_mismatch) {
  // A name the certificate does not carry: a verification error, hostname mismatch.
  expect_name_refused("example.com", X509_V_ERR_HOSTNAME_MISMATCH, "hostname mismatch");
}

BOOST_AUTO_TEST_CASE(test_tls_address_mismatch) {
  // An address the certificate does not carry (it names 127.0.0.1, not 127.0.0.2): a
  // verification error of its own.
  expect_name_refused("127.0.0.2", X509_V_ERR_IP_ADDRESS_MISMATCH, "IP address mismatch");
}

BOOST_AUTO_TEST_CASE(verify_callback_refusal_is_asios_error) {
  // The application's own verify callback refuses a certificate OpenSSL accepts: the client
  // fails with Asio's "certificate verify failed" (category asio.ssl), not with an OpenSSL
  // verification reason -- OpenSSL 3 records "unspecified" there, which says nothing.
  asio::ssl::context refusing(asio::ssl::context::tls_client);
  refusing.load_verify_file(tls().cert.string());
  refusing.set_verify_callback([](bool, asio::ssl::verify_context&) { return false; });
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    test::log_capture logs;
    const error_code ec = co_await refused_handshake(refusing, "localhost");
    BOOST_TEST((ec.category() == asio::error::get_ssl_category()), "real_error: " << ec.message());
  });
}

BOOST_AUTO_TEST_CASE(test_tls_io_waits_for_handshake) {
  // I/O issued before the handshake finishes waits for it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto [c, s] = co_await transport::socket_pair();
    SSLIOStream server(std::move(s), server_tls(), true);
    SSLIOStream client(std::move(c), client_tls(), false, "localhost", true);
    record w, r;
    client.write("early\n", w.handler());
    server.read_until("\n", no_limit, r.handler());
    co_await r.wait();
    co_await w.wait();
    BOOST_TEST(!w.ec());
    BOOST_TEST(r.value() == "early\n");
  });
}

BOOST_AUTO_TEST_CASE(test_start_tls_not_idle) {
  // start_tls on a stream with a read pending or bytes buffered fails with invalid_state and
  // leaves the stream as it was; on a closed stream it fails with stream_closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    record pending;
    p.ws.read_bytes(1, false, pending.handler());
    tls_record t1;
    p.ws.start_tls(false, client_tls(), "localhost", true, t1.handler());
    co_await t1.wait();
    BOOST_TEST(t1.s->ec == code(tornado::error::invalid_state));
    BOOST_TEST(!p.ws.closed());
    BOOST_TEST(!pending.done());
    co_await p.rs.write("ab");
    co_await pending.wait();
    BOOST_TEST(pending.value() == "a");
    // "b" is buffered now.
    try {
      co_await p.ws.start_tls(false, client_tls(), "localhost");
      BOOST_ERROR("start_tls with buffered data succeeded");
    } catch (const tornado::InvalidStateError&) {
    }
    BOOST_TEST(!p.ws.closed());
    BOOST_TEST(co_await p.ws.read_bytes(1) == "b");
    p.ws.close();
    tls_record t2;
    p.ws.start_tls(false, client_tls(), "localhost", true, t2.handler());
    co_await t2.wait();
    BOOST_TEST(t2.s->ec == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_start_tls_keeps_close_callback) {
  // As Tornado's start_tls: the close callback moves to the TLS stream (it does not run for
  // the conversion) and the clear-text stream no longer reads the socket.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("STARTTLS\r\n");
    BOOST_TEST(co_await p.rs.read_until("\r\n") == "STARTTLS\r\n");
    tls_record client_future, server_future;
    p.rs.start_tls(true, server_tls(), {}, true, server_future.handler());
    p.ws.start_tls(false, client_tls(), "localhost", true, client_future.handler());
    co_await client_future.wait(3s);
    co_await server_future.wait(3s);
    BOOST_REQUIRE(!client_future.s->ec);
    BOOST_REQUIRE(!server_future.s->ec);
    co_await yield_to_loop(3);
    BOOST_TEST(closed->calls == 0);
    client_future.s->stream->close();
    co_await closed->event.wait(3s);
    BOOST_TEST(closed->calls == 1);
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Tokens)

BOOST_AUTO_TEST_CASE(test_deferred_operation_outlives_its_stream_handle) {
  // An operation made with asio::deferred starts later; the stream object it came from may be
  // reassigned (or destroyed) meanwhile. It then starts on the stream it was made for, now
  // closed, and fails as such (no dangling state).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto q = co_await tcp_streams::make();
    auto write = p.ws.write(std::string_view("x"), asio::deferred);
    auto read = p.rs.read_bytes(1, false, asio::deferred);
    p.ws = std::move(q.ws);
    { auto gone = std::move(p.rs); }
    auto [wec] = co_await std::move(write)(asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(wec == code(tornado::error::stream_closed));
    auto [rec, data] = co_await std::move(read)(asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(rec == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_callback_and_deferred_tokens) {
  // The operations take any Asio token: callbacks (completed from the loop even when the
  // result is ready), asio::deferred, asio::use_awaitable and as_tuple (error codes, not
  // Tornado's exceptions).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    co_await p.ws.write("abcdef\n");
    BOOST_TEST(co_await p.rs.read_bytes(1) == "a");
    record r;
    p.rs.read_bytes(2, false, r.handler());
    BOOST_TEST(!r.done());
    co_await r.wait();
    BOOST_TEST(r.value() == "bc");

    auto deferred_read = p.rs.read_until("\n", no_limit, asio::deferred);
    auto [ec, line] = co_await std::move(deferred_read)(asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(!ec);
    BOOST_TEST(line == "def\n");

    std::string later = "deferred write";
    auto deferred_write = p.ws.write(later, asio::deferred);
    co_await std::move(deferred_write)(asio::use_awaitable);
    BOOST_TEST(co_await p.rs.read_bytes(later.size(), false, asio::use_awaitable) == later);

    std::array<char, 3> buf{};
    co_await p.ws.write("xyz");
    auto [ec2, n] = co_await p.rs.read_into(asio::buffer(buf), false, asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(!ec2);
    BOOST_TEST(n == 3u);

    p.rs.close();
    try {
      co_await p.rs.read_bytes(1, false, asio::use_awaitable);
      BOOST_ERROR("read on a closed stream succeeded");
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(e.code() == code(tornado::error::stream_closed));
    }
    auto [ec3] = co_await p.rs.write("x", asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(ec3 == code(tornado::error::stream_closed));
  });
}

BOOST_AUTO_TEST_CASE(test_exception_after_a_read_leaves_run_not_the_stream) {
  // A coroutine resumed by a completed read ends with an exception that its co_spawn
  // handler rethrows. As with Asio's own dispatch, run() throws it once the handler that
  // completed the read is done; the stream is left in order and reads on.
  asio::io_context ctx(1);
  asio::local::stream_protocol::socket a(ctx), b(ctx);
  asio::local::connect_pair(a, b);
  LocalIOStream rs(std::move(a));
  std::string first;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    first = co_await rs.read_until("\n");
    throw std::runtime_error("after the read");
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  asio::write(b, asio::buffer(std::string("one\ntwo\n")));
  BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
  BOOST_TEST(first == "one\n");
  BOOST_TEST(!rs.reading());
  std::string second;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> { second = co_await rs.read_until("\n"); }, asio::detached);
  ctx.restart();
  ctx.run();
  BOOST_TEST(second == "two\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(Teardown)

BOOST_AUTO_TEST_CASE(test_teardown_at_every_step) {
  // Destroys the io_context after k steps of a session, for every k: streams inside coroutine
  // frames, pending reads, writes, connects, handshakes and close callbacks go away without a
  // crash or a leak (the sanitizer build checks the latter).
  auto session = []() -> asio::awaitable<void> {
    auto p = co_await tcp_streams::make();
    auto closed = watch_close(p.rs);
    co_await p.ws.write("ping\n");
    co_await p.rs.read_until("\n");
    record r;
    p.rs.read_bytes(100000, false, r.handler());
    p.ws.write(std::string(100000, 'x'), record().handler());
    auto t = co_await tls_streams::make();
    co_await t.ws.write("tls\n");
    co_await t.rs.read_until("\n");
    p.ws.close();
    co_await closed->event.wait(5s);
  };
  teardown_at_every_step(session);
}

BOOST_AUTO_TEST_SUITE_END()
