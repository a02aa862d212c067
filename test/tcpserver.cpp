// Tests boost/tornado/tcpserver.hpp: the tcpserver_test.py cases that apply, named after the
// Python ones, then the port's own: plain-callback handlers, listen/bind/start/add_sockets,
// stream options, TLS, real peers (a Python Tornado client, openssl s_client) and teardown.
#include <boost/tornado/tcpserver.hpp>

#define BOOST_TEST_MODULE tcpserver
#include "support/net.hpp"
#include <boost/tornado/locks.hpp>
#include <boost/tornado/queues.hpp>
#include <boost/asio/detached.hpp>
#include <openssl/ssl.h>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace test;
using tornado::IOStream;
using tornado::SSLIOStream;
using tornado::StreamClosedError;
using tornado::TCPServer;
using tornado::log_level;

namespace {

tcp::endpoint only_endpoint(const TCPServer& server) {
  auto eps = server.endpoints();
  BOOST_REQUIRE_EQUAL(eps.size(), 1u);
  return eps.front();
}

std::size_t count_lines(const test::log_capture& logs, const std::string& needle) {
  std::size_t n = 0;
  for (auto& l : logs.lines())
    if (l.find(needle) != std::string::npos) ++n;
  return n;
}

// Takes its references as parameters: a lambda coroutine would reach them through its
// closure, which the server owns and destroys.
asio::awaitable<void> wait_for_event(tornado::Event& ev, bool& started, bool& finished, IOStream) {
  started = true;
  co_await ev.wait();
  finished = true;
}

} // namespace

// ======================================================================================
// TCPServerTest
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TCPServerTest)

BOOST_AUTO_TEST_CASE(test_handle_stream_coroutine_logging) {
  // A coroutine handler's exception is logged; the server keeps serving.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::log_capture logs;
    TCPServer server(ex, [](IOStream stream, tcp::endpoint) -> asio::awaitable<void> {
      co_await stream.read_bytes(5);
      stream.close();
      throw std::runtime_error("division by zero");
    });
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    for (std::size_t i = 1; i <= 2; ++i) {
      auto client = co_await connect_tcp(ep);
      co_await client.write("hello");
      co_await within(client.read_until_close());
      co_await eventually([&] { return count_lines(logs, "Exception in stream handler") == i; });
    }
    BOOST_TEST(logs.contains("tornado.application: Exception in stream handler: division by zero"));
    server.stop();
  });
}

BOOST_AUTO_TEST_CASE(test_handle_stream_native_coroutine) {
  // The handler may be a coroutine; a write issued before close() is still delivered.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, [](IOStream stream, tcp::endpoint) -> asio::awaitable<void> {
      stream.write("data", asio::detached);
      stream.close();
      co_return;
    });
    server.listen(0, "127.0.0.1");
    auto client = co_await connect_tcp(only_endpoint(server));
    BOOST_TEST(co_await within(client.read_until_close()) == "data");
    server.stop();
    client.close();
  });
}

BOOST_AUTO_TEST_CASE(test_stop_twice) {
  asio::io_context ctx(1);
  TCPServer server(ctx.get_executor(), [](IOStream, tcp::endpoint) {});
  server.add_sockets(tornado::bind_sockets(ctx.get_executor(), 0, "127.0.0.1"));
  BOOST_TEST(server.endpoints().size() == 1u);
  server.stop();
  server.stop();
  BOOST_TEST(server.endpoints().empty());
  ctx.run_for(10ms);
}

namespace {
asio::awaitable<void> stop_then_drain(std::shared_ptr<TCPServer*> server, IOStream stream) {
  (*server)->stop();
  co_await drain(std::move(stream));
}

// Tornado issue #2069: stop() from a handler while other connections wait in the same loop
// iteration must raise nothing (EBADF) and log no error. `stop_inline`: stop() is called from
// the accept callback itself, as a Python coroutine's synchronous start does; otherwise from
// the spawned coroutine.
void check_stop_in_callback(bool stop_inline) {
  asio::io_context ctx(1);
  level_log logs;
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto server_ptr = std::make_shared<TCPServer*>(nullptr);
    std::function<asio::awaitable<void>(IOStream, tcp::endpoint)> handler;
    if (stop_inline)
      handler = [server_ptr](IOStream stream, tcp::endpoint) {
        (*server_ptr)->stop();
        return drain(std::move(stream));
      };
    else
      handler = [server_ptr](IOStream stream, tcp::endpoint) { return stop_then_drain(server_ptr, std::move(stream)); };
    TCPServer server(ex, handler);
    *server_ptr = &server;
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    constexpr int n = 40;
    std::vector<IOStream> clients;
    for (int i = 0; i < n; ++i) clients.emplace_back(ex);
    auto done = std::make_shared<int>(0);
    auto connected = std::make_shared<int>(0);
    for (auto& c : clients)
      c.connect(ep, [done, connected](error_code ec) {
        ++*done;
        if (!ec) ++*connected;
      });
    co_await eventually([&] { return *done == n; }, 20s);
    BOOST_TEST(*connected > 0, "all clients failed connecting");
    if (*connected == n)
      BOOST_TEST_MESSAGE("every client connected (the backlog took them): the race was not provoked");
    for (auto& c : clients) c.close();
    co_await sleep_for(50ms);
    BOOST_TEST(server.endpoints().empty());
  });
  BOOST_TEST(logs.at_least(log_level::error).empty(), logs.at_least(log_level::error));
}
} // namespace

BOOST_AUTO_TEST_CASE(test_stop_in_callback) { check_stop_in_callback(true); }

BOOST_AUTO_TEST_CASE(test_stop_in_coroutine_handler) { check_stop_in_callback(false); }

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Handlers, stopping and the ways to listen
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Serving)

BOOST_AUTO_TEST_CASE(test_handle_stream_plain_callback) {
  // A plain callback receives the stream and the peer's address; the stream outlives it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto q = std::make_shared<accept_queue<IOStream>>();
    TCPServer server(ex, enqueue_to<IOStream>(q));
    server.listen(0, "127.0.0.1");
    auto client = co_await connect_tcp(only_endpoint(server));
    auto a = co_await next_accepted(*q);
    BOOST_TEST(a.peer == client.socket().local_endpoint());
    BOOST_TEST(!a.stream.closed());
    co_await client.write("ping\n");
    BOOST_TEST(co_await within(a.stream.read_until("\n")) == "ping\n");
    co_await a.stream.write("pong\n");
    BOOST_TEST(co_await within(client.read_until("\n")) == "pong\n");
    a.stream.close();
    BOOST_TEST(co_await within(client.read_until_close()) == "");
  });
}

BOOST_AUTO_TEST_CASE(test_plain_callback_exception_logged) {
  // A plain callback's exception is logged, its stream closes, the server keeps serving.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::log_capture logs;
    TCPServer server(ex, [](IOStream, tcp::endpoint) { throw std::runtime_error("callback failed"); });
    server.listen(0, "127.0.0.1");
    for (std::size_t i = 1; i <= 2; ++i) {
      auto client = co_await connect_tcp(only_endpoint(server));
      BOOST_TEST(co_await within(client.read_until_close()) == "");
      co_await eventually([&] { return count_lines(logs, "Error in connection callback") == i; });
    }
    BOOST_TEST(logs.contains("tornado.application: Error in connection callback: callback failed"));
  });
}

BOOST_AUTO_TEST_CASE(test_coroutine_handlers_run_concurrently) {
  // Each connection's coroutine runs on its own: a slow one does not hold the others up.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    auto a = co_await connect_tcp(ep);
    auto b = co_await connect_tcp(ep);
    co_await a.write("half a line");  // a's handler waits for the rest
    co_await expect_echo(b, "b\n");
    co_await a.write(" and the rest\n");
    BOOST_TEST(co_await within(a.read_until("\n")) == "echo: half a line and the rest\n");
  });
}

BOOST_AUTO_TEST_CASE(test_coroutine_handler_keeps_the_context_running) {
  // A handler waiting on something that holds no work of its own (an Event) keeps run() from
  // returning, as under co_spawn: the spawn holds the executor's work while the coroutine lives.
  asio::io_context ctx(1);
  tornado::Event ev;
  bool started = false, finished = false;
  tcp::socket client(ctx);
  {
    TCPServer server(ctx.get_executor(), [&](IOStream stream, tcp::endpoint) {
      return wait_for_event(ev, started, finished, std::move(stream));
    });
    server.listen(0, "127.0.0.1");
    client.connect(only_endpoint(server));
    for (int i = 0; i < 1000 && !started; ++i) ctx.run_one_for(std::chrono::milliseconds(10));
    BOOST_REQUIRE(started);
    server.stop();
  }
  ctx.poll();
  BOOST_TEST(!ctx.stopped());
  BOOST_TEST(!finished);
  ev.set();
  ctx.run_for(std::chrono::seconds(5));
  BOOST_TEST(finished);
  BOOST_TEST(ctx.stopped());  // nothing holds work once the coroutine is gone
}

BOOST_AUTO_TEST_CASE(test_stop_leaves_open_connections) {
  // stop() closes the listening sockets only: accepted streams go on; new connections are refused.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto q = std::make_shared<accept_queue<IOStream>>();
    TCPServer server(ex, enqueue_to<IOStream>(q));
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    auto client = co_await connect_tcp(ep);
    auto a = co_await next_accepted(*q);
    server.stop();
    server.stop();
    BOOST_TEST(server.endpoints().empty());
    co_await client.write("still here\n");
    BOOST_TEST(co_await within(a.stream.read_until("\n")) == "still here\n");
    co_await a.stream.write("so am I\n");
    BOOST_TEST(co_await within(client.read_until("\n")) == "so am I\n");
    IOStream late(ex);
    auto e = co_await expect_throw<StreamClosedError>(late.connect(ep));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(test_destroyed_server_leaves_open_connections) {
  // Destroying the server stops it; a running handler and its stream carry on.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto server = std::make_unique<TCPServer>(ex, &echo<IOStream>);
    server->listen(0, "127.0.0.1");
    const auto ep = only_endpoint(*server);
    auto client = co_await connect_tcp(ep);
    co_await expect_echo(client, "before\n");
    server.reset();
    co_await expect_echo(client, "after\n");
    IOStream late(ex);
    auto e = co_await expect_throw<StreamClosedError>(late.connect(ep));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(destroyed_server_keeps_a_running_handlers_captures) {
  // As above with a coroutine lambda as the handler: its captures live in the lambda, which
  // the server holds, so a running handler keeps it (Tornado's handle_stream keeps `self`).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    const std::string reply(100, 'r');
    auto server = std::make_unique<TCPServer>(ex, [reply](IOStream stream, tcp::endpoint) -> asio::awaitable<void> {
      try {
        for (;;) {
          co_await stream.read_until("\n");
          co_await stream.write(reply + "\n");
        }
      } catch (const StreamClosedError&) {
      }
    });
    server->listen(0, "127.0.0.1");
    auto client = co_await connect_tcp(only_endpoint(*server));
    co_await client.write("1\n");
    BOOST_TEST(co_await client.read_until("\n") == reply + "\n");
    server.reset();
    co_await client.write("2\n");
    BOOST_TEST(co_await client.read_until("\n") == reply + "\n");
  });
}

BOOST_AUTO_TEST_CASE(test_listen_port_zero) {
  // listen(0) picks a free port; endpoints() names it, the same for every address.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    BOOST_TEST(ep.address() == loopback_v4);
    BOOST_TEST(ep.port() != 0);
    auto client = co_await connect_tcp(ep);
    co_await expect_echo(client, "port zero\n");

    TCPServer everywhere(ex, &echo<IOStream>);
    everywhere.listen(0, "localhost");
    const auto eps = everywhere.endpoints();
    BOOST_TEST_REQUIRE(!eps.empty());
    std::set<unsigned short> ports;
    for (auto& e : eps) ports.insert(e.port());
    BOOST_TEST(ports.size() == 1u);
    BOOST_TEST(*ports.begin() != 0);
    for (auto& e : eps) {
      auto c = co_await connect_tcp(e);
      co_await expect_echo(c, "localhost\n");
    }
  });
}

BOOST_AUTO_TEST_CASE(test_listen_family) {
  // listen()'s family restricts the addresses: AF_INET on "localhost" listens on IPv4 only.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "localhost", AF_INET);
    const auto eps = server.endpoints();
    BOOST_TEST_REQUIRE(!eps.empty());
    for (auto& e : eps) BOOST_TEST(e.address().is_v4());
    co_return;
  });
}

BOOST_AUTO_TEST_CASE(test_bind_start) {
  // bind() listens at once but accepts from start() on: a connection made in between waits in
  // the backlog and is handled once the server starts.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto q = std::make_shared<accept_queue<IOStream>>();
    TCPServer server(ex, enqueue_to<IOStream>(q));
    const unsigned short port = free_port(ex);
    server.bind(port, "127.0.0.1");
    IOStream client(ex);
    auto connected = std::make_shared<std::optional<error_code>>();
    client.connect(tcp::endpoint(loopback_v4, port), [connected](error_code ec) { *connected = ec; });
    co_await sleep_for(50ms);
    BOOST_TEST(q->qsize() == 0u);
    server.start();
    BOOST_TEST_REQUIRE(server.endpoints().size() == 1u);
    BOOST_TEST(server.endpoints().front().port() == port);
    auto a = co_await next_accepted(*q);
    co_await eventually([&] { return connected->has_value(); });
    BOOST_TEST(!**connected);
    co_await client.write("queued\n");
    BOOST_TEST(co_await within(a.stream.read_until("\n")) == "queued\n");
    server.start();  // nothing more to start
    BOOST_TEST(server.endpoints().size() == 1u);
  });
}

BOOST_AUTO_TEST_CASE(test_bind_then_stop_without_start) {
  // stop() closes sockets bound but never started: the port refuses afterwards.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    const unsigned short port = free_port(ex);
    server.bind(port, "127.0.0.1");
    server.stop();
    server.start();
    BOOST_TEST(server.endpoints().empty());
    IOStream client(ex);
    auto e = co_await expect_throw<StreamClosedError>(client.connect(tcp::endpoint(loopback_v4, port)));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(test_add_sockets) {
  // Sockets made by bind_sockets (or by hand) are served once added.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto sockets = tornado::bind_sockets(ex, 0, "127.0.0.1");
    const auto ep = sockets.front().local_endpoint();
    TCPServer server(ex, &echo<IOStream>);
    server.add_sockets(std::move(sockets));
    tcp::acceptor own(ex, tcp::endpoint(loopback_v4, 0));
    const auto own_ep = own.local_endpoint();
    server.add_socket(std::move(own));
    BOOST_TEST(server.endpoints().size() == 2u);
    auto a = co_await connect_tcp(ep);
    co_await expect_echo(a, "from bind_sockets\n");
    auto b = co_await connect_tcp(own_ep);
    co_await expect_echo(b, "from my own acceptor\n");
  });
}

BOOST_AUTO_TEST_CASE(test_listen_multi_reuse_port) {
  // Two servers share a port with reuse_port (Tornado's multi-process example, in one
  // process): both listen, and connections are served by one or the other.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto first = std::make_shared<int>(0), second = std::make_shared<int>(0);
    auto counting_echo = [](std::shared_ptr<int> count) {
      return [count](IOStream s, tcp::endpoint ep) {
        ++*count;
        return echo(std::move(s), ep);
      };
    };
    TCPServer a(ex, counting_echo(first));
    TCPServer b(ex, counting_echo(second));
    a.listen(0, "127.0.0.1", AF_INET, tornado::default_backlog, true);
    const auto ep = only_endpoint(a);
    b.listen(ep.port(), "127.0.0.1", AF_INET, tornado::default_backlog, true);
    BOOST_TEST(only_endpoint(b) == ep);
    for (int i = 0; i < 20; ++i) {
      auto c = co_await connect_tcp(ep);
      co_await expect_echo(c, "shared\n");
    }
    BOOST_TEST(*first + *second == 20);
    BOOST_TEST_MESSAGE("connections: " << *first << " and " << *second);
  });
}

BOOST_AUTO_TEST_CASE(test_stream_options) {
  // The server's stream options reach every accepted stream: a line past max_buffer_size
  // closes that stream (and only it).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto q = std::make_shared<accept_queue<IOStream>>();
    const tornado::stream_options opts{.max_buffer_size = 4096, .read_chunk_size = 512, .max_write_buffer_size = 1 << 20};
    TCPServer server(ex, enqueue_to<IOStream>(q), opts);
    server.listen(0, "127.0.0.1");
    auto client = co_await connect_tcp(only_endpoint(server));
    auto a = co_await next_accepted(*q);
    BOOST_TEST(a.stream.options().max_buffer_size == 4096u);
    BOOST_TEST(a.stream.options().read_chunk_size == 512u);
    BOOST_TEST(a.stream.options().max_write_buffer_size == std::size_t(1) << 20);
    co_await client.write(std::string(3000, 'x') + "\n");
    BOOST_TEST((co_await within(a.stream.read_until("\n"))).size() == 3001u);
    test::log_capture logs;
    co_await client.write(std::string(8192, 'y'));
    co_await expect_throw<StreamClosedError>(within(a.stream.read_until("\n")));
    BOOST_TEST(a.stream.closed());
    BOOST_TEST(logs.contains("Reached maximum read buffer size"));
    BOOST_TEST(co_await within(client.read_until_close()) == "");

    auto other = co_await connect_tcp(only_endpoint(server));
    auto b = co_await next_accepted(*q);
    co_await other.write("fine\n");
    BOOST_TEST(co_await within(b.stream.read_until("\n")) == "fine\n");
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TLS
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TLS)

BOOST_AUTO_TEST_CASE(test_tls_handler_gets_ssl_stream) {
  // With a TLS context the handler receives an SSLIOStream whose handshake is still under way;
  // its first read waits for it.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto q = std::make_shared<accept_queue<SSLIOStream>>();
    auto handshaking_at_handler = std::make_shared<std::optional<bool>>();
    TCPServer server(
        ex,
        [q, handshaking_at_handler](SSLIOStream s, tcp::endpoint peer) {
          *handshaking_at_handler = SSL_get_current_cipher(s.socket().native_handle()) == nullptr;
          q->put_nowait(accepted<SSLIOStream>{std::move(s), peer});
        },
        server_tls(), {.max_buffer_size = 8192, .read_chunk_size = 1024});
    server.listen(0, "127.0.0.1");
    SSLIOStream client(tcp::socket(ex), client_tls());
    auto connected = std::make_shared<std::optional<error_code>>();
    client.connect(only_endpoint(server), "localhost", true, [connected](error_code ec) { *connected = ec; });
    auto a = co_await next_accepted(*q);
    BOOST_TEST(handshaking_at_handler->value_or(false));
    BOOST_TEST(a.stream.options().max_buffer_size == 8192u);
    BOOST_TEST(a.stream.options().read_chunk_size == 1024u);
    client.write("over tls\n", asio::detached);
    BOOST_TEST(co_await within(a.stream.read_until("\n")) == "over tls\n");
    BOOST_TEST(SSL_get_current_cipher(a.stream.socket().native_handle()) != nullptr);
    co_await eventually([&] { return connected->has_value(); });
    BOOST_TEST(!**connected);
    BOOST_TEST(SSL_get_verify_result(client.socket().native_handle()) == X509_V_OK);
    co_await a.stream.wait_for_handshake();  // done already
  });
}

BOOST_AUTO_TEST_CASE(test_tls_coroutine_handler) {
  // A coroutine handler over TLS, several clients at once, a large line.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    auto a = co_await connect_tls(ep);
    auto b = co_await connect_tls(ep, "127.0.0.1");  // verified against the address
    co_await expect_echo(a, "a\n");
    co_await expect_echo(b, "b\n");
    const std::string big(200000, 'z');
    co_await expect_echo(a, big + "\n");
  });
}

namespace {
// A handler's coroutine keeps what it needs in its own frame: a capturing lambda coroutine
// would read its captures from the server's copy of the handler, gone with the server.
asio::awaitable<void> echo_keeping_failure(std::shared_ptr<std::vector<error_code>> failures, SSLIOStream s,
                                           tcp::endpoint peer) {
  try {
    co_await echo_until_error(std::move(s), peer);
  } catch (const StreamClosedError& e) {
    failures->push_back(e.real_error());
  }
}
} // namespace

BOOST_AUTO_TEST_CASE(test_tls_plaintext_client) {
  // A client speaking plain text to the TLS port fails its own connection only: the handler's
  // read fails, nothing is logged above a warning, and the next TLS client is served.
  asio::io_context ctx(1);
  level_log logs;
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto failures = std::make_shared<std::vector<error_code>>();
    TCPServer server(
        ex, [failures](SSLIOStream s, tcp::endpoint peer) { return echo_keeping_failure(failures, std::move(s), peer); },
        server_tls());
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    {
      auto plain = co_await connect_tcp(ep);
      co_await plain.write("GET / HTTP/1.0\r\n\r\n");
      try {
        co_await within(plain.read_until_close());
      } catch (const StreamClosedError&) {
        // reset rather than closed: either way the server hung up
      }
    }
    co_await eventually([&] { return !failures->empty(); });
    BOOST_TEST(is_ssl_error(failures->front()), "real_error: " << failures->front().message());
    auto good = co_await connect_tls(ep);
    co_await expect_echo(good, "after the plain text\n");
  });
  BOOST_TEST(logs.at_least(log_level::error).empty(), logs.at_least(log_level::error));
}

BOOST_AUTO_TEST_CASE(test_tls_client_refusing_certificate) {
  // A client that does not trust the certificate aborts the handshake: the server logs at
  // most a warning and serves the next client.
  asio::io_context ctx(1);
  level_log logs;
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    const auto ep = only_endpoint(server);
    SSLIOStream doubter(tcp::socket(ex), default_client_tls());
    auto e = co_await expect_throw<StreamClosedError>(doubter.connect(ep, "localhost"));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
               "real_error: " << e.real_error().message());
    auto good = co_await connect_tls(ep);
    co_await expect_echo(good, "trusted\n");
  });
  BOOST_TEST(logs.at_least(log_level::error).empty(), logs.at_least(log_level::error));
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Real peers: a Python Tornado client and openssl s_client against our server
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Peers)

namespace {
// The client connects to `host`; with TLS it verifies our certificate against that name.
asio::awaitable<void> check_python_client(std::string host, bool use_tls) {
  auto ex = co_await asio::this_coro::executor;
  std::optional<TCPServer> server;
  if (use_tls)
    server.emplace(ex, &echo<SSLIOStream>, server_tls());
  else
    server.emplace(ex, &echo<IOStream>);
  server->listen(0, "127.0.0.1");
  std::vector<std::string> argv{python, script("echo_client.py", echo_client_py), host,
                                std::to_string(only_endpoint(*server).port())};
  if (use_tls) argv.push_back(tls().cert.string());
  peer_process client(ex, argv);
  const int status = co_await client.wait_exit(30s);
  BOOST_TEST(status == 0, "python client failed: " << client.err());
  BOOST_TEST(co_await within(client.out().read_until_close()) == "echo: line 0\necho: line 1\necho: line 2\n");
}
} // namespace

BOOST_AUTO_TEST_CASE(test_python_client, *boost::unit_test::precondition(has_python_tornado())) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> { co_await check_python_client("127.0.0.1", false); });
}

BOOST_AUTO_TEST_CASE(test_python_client_tls, *boost::unit_test::precondition(has_python_tornado())) {
  // Python's ssl module verifies our certificate as "localhost" (the listener is IPv4: a
  // localhost resolving to ::1 first is Tornado's happy eyeballs' business).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> { co_await check_python_client("localhost", true); });
}

namespace {
std::vector<std::string> s_client_args(unsigned short port, const std::string& name) {
  return {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", tls().cert.string(),
          "-verify_return_error", "-verify_hostname", name, "-servername", name, "-quiet", "-no_ign_eof"};
}
} // namespace

BOOST_AUTO_TEST_CASE(test_openssl_s_client) {
  // openssl s_client verifies our certificate and exchanges lines with the handler.
  asio::io_context ctx(1);
  level_log logs;
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    peer_process client(ex, s_client_args(only_endpoint(server).port(), "localhost"));
    co_await client.in().write("hello from s_client\n");
    BOOST_TEST(co_await client.read_line() == "echo: hello from s_client\n");
    co_await client.in().write("second line\n");
    BOOST_TEST(co_await client.read_line() == "echo: second line\n");
    client.close_stdin();
    co_await client.wait_exit(10s);
  });
  BOOST_TEST(logs.at_least(log_level::error).empty(), logs.at_least(log_level::error));
}

BOOST_AUTO_TEST_CASE(test_openssl_s_client_hostname_mismatch) {
  // s_client expecting another name refuses our certificate; the server logs at most a
  // warning and serves the next s_client.
  asio::io_context ctx(1);
  level_log logs;
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    const auto port = only_endpoint(server).port();
    {
      peer_process refusing(ex, s_client_args(port, "example.com"));
      const int status = co_await refusing.wait_exit(10s);
      BOOST_TEST(status != 0, "s_client accepted a certificate for another name");
    }
    peer_process client(ex, s_client_args(port, "localhost"));
    co_await client.in().write("still serving\n");
    BOOST_TEST(co_await client.read_line() == "echo: still serving\n");
  });
  BOOST_TEST(logs.at_least(log_level::error).empty(), logs.at_least(log_level::error));
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Teardown
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Teardown)

BOOST_AUTO_TEST_CASE(test_teardown_at_every_step) {
  // Destroys the io_context after k steps of a session, for every k: servers, handler
  // coroutines, accept loops and handshakes living in coroutine frames go away without a crash
  // or a leak (the sanitizer build checks the latter).
  auto session = []() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPServer tls_server(ex, &echo<SSLIOStream>, server_tls());
    tls_server.listen(0, "127.0.0.1");
    auto c = co_await connect_tcp(only_endpoint(server));
    co_await expect_echo(c, "plain\n");
    auto t = co_await connect_tls(only_endpoint(tls_server));
    co_await expect_echo(t, "tls\n");
    server.stop();
    co_await expect_echo(c, "after stop\n");
  };
  teardown_at_every_step(session);
}

BOOST_AUTO_TEST_SUITE_END()
