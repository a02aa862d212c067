// Tests boost/tornado/tcpclient.hpp: the tcpclient_test.py cases that apply, named after the
// Python ones (TCPClientTest; _Connector's cases, ConnectorTest, with the addresses given and
// real loopback sockets), then the port's own: tokens, cancellation, timeouts, TLS, real
// peers (a Python Tornado server, openssl s_server) and teardown.
#include <boost/tornado/tcpclient.hpp>

#define BOOST_TEST_MODULE tcpclient
#include "support/net.hpp"
#include <boost/tornado/tcpserver.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <array>
#include <boost/asio/strand.hpp>
#include <openssl/ssl.h>
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

// Asio's resolver calls getaddrinfo on a thread of its own. This definition takes the C
// library's place for this test program: the name "slow-resolution.test" waits until a test
// lets it go (at most 10 s), then is not found; every other name goes to the C library.
namespace slow_resolution {
std::mutex mutex;
std::condition_variable cv;
int entered = 0;     // calls for the slow name that began
bool released = false;
void release() {
  std::lock_guard lock(mutex);
  released = true;
  cv.notify_all();
}
} // namespace slow_resolution

extern "C" int getaddrinfo(const char* __restrict node, const char* __restrict service,
                           const struct addrinfo* __restrict hints, struct addrinfo** __restrict result) {
  using fn = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const fn next = reinterpret_cast<fn>(::dlsym(RTLD_NEXT, "getaddrinfo"));
  if (node && std::strcmp(node, "slow-resolution.test") == 0) {
    std::unique_lock lock(slow_resolution::mutex);
    ++slow_resolution::entered;
    slow_resolution::cv.notify_all();
    slow_resolution::cv.wait_for(lock, std::chrono::seconds(10), [] { return slow_resolution::released; });
    return EAI_NONAME;
  }
  return next(node, service, hints, result);
}

using namespace test;
using tornado::IOStream;
using tornado::SSLIOStream;
using tornado::StreamClosedError;
using tornado::TCPClient;
using tornado::TCPServer;
using tornado::connect_options;

namespace {

// Tornado's TestTCPServer: listens on `address` (restricted to `family`) and queues the
// accepted streams with their peers.
struct test_server {
  std::shared_ptr<accept_queue<IOStream>> queue = std::make_shared<accept_queue<IOStream>>();
  TCPServer server;
  unsigned short port = 0;

  test_server(const asio::any_io_executor& ex, int family, std::string address = "localhost",
              unsigned short at_port = 0)
      : server(ex, enqueue_to<IOStream>(queue)) {
    auto sockets = tornado::bind_sockets(ex, at_port, address, family);
    port = sockets.front().local_endpoint().port();
    server.add_sockets(std::move(sockets));
  }
};

// The outcome of connect() with a callback token.
template <class S>
class connect_record {
public:
  auto handler() const {
    return [s = s_](error_code ec, S stream) {
      ++s->calls;
      s->ec = ec;
      s->stream.emplace(std::move(stream));
      s->event.set();
    };
  }
  bool done() const { return s_->calls > 0; }
  int calls() const { return s_->calls; }
  error_code ec() const { return s_->ec; }
  S& stream() const { return *s_->stream; }
  asio::awaitable<void> wait(std::chrono::seconds limit = 10s) const {
    auto s = s_;
    co_await s->event.wait(limit);
  }

private:
  struct state {
    int calls = 0;
    error_code ec;
    std::optional<S> stream;
    tornado::Event event;
  };
  std::shared_ptr<state> s_ = std::make_shared<state>();
};

// A server that accepts TCP connections (the kernel's backlog does) but never answers: a TLS
// handshake against it waits forever.
struct silent_server {
  tcp::acceptor acceptor;
  explicit silent_server(const asio::any_io_executor& ex) : acceptor(ex, tcp::endpoint(loopback_v4, 0)) {}
  unsigned short port() const { return acceptor.local_endpoint().port(); }
};

// Waits until the peer of `s` closes (EOF or reset); what it sent meanwhile is discarded.
asio::awaitable<void> wait_peer_closed(tcp::socket& s, std::chrono::steady_clock::duration limit = 5s) {
  auto read_all = [&s]() -> asio::awaitable<void> {
    std::array<char, 4096> buf;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
    }
  };
  try {
    co_await within(read_all(), limit);
  } catch (const std::runtime_error&) {
    throw std::runtime_error("the client's connection attempt was left open (no EOF or reset reached the server)");
  }
}

bool is_resolution_error(const error_code& ec) {
  return ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category();
}

template <class Clock = std::chrono::steady_clock>
auto elapsed_since(typename Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// ---- preconditions ----

struct ipv6_available {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(ipv6_loopback_available());
    if (!r) r.message() << "no IPv6 loopback";
    return r;
  }
};

// Tornado's skipIfLocalhostV4.
struct localhost_resolves_to_ipv6 {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(ipv6_loopback_available() && resolves_to_family("localhost", true));
    if (!r) r.message() << "localhost does not resolve to ipv6";
    return r;
  }
};

} // namespace

// ======================================================================================
// TCPClientTest
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TCPClientTest)

namespace {
// Tornado's do_test_connect: a server on `server_address` restricted to `family`, a client
// connecting to `host`; the server receives what the client writes.
asio::awaitable<void> do_test_connect(int family, std::string host, std::string server_address = "localhost",
                                      connect_options options = {}) {
  auto ex = co_await asio::this_coro::executor;
  test_server server(ex, family, server_address);
  TCPClient client(ex);
  const std::string source_ip = options.source_ip;
  const unsigned short source_port = options.source_port;
  IOStream stream = co_await client.connect(host, server.port, std::move(options));
  auto a = co_await next_accepted(*server.queue);
  co_await stream.write("hello");
  BOOST_TEST(co_await within(a.stream.read_bytes(5)) == "hello");
  BOOST_TEST(a.peer == stream.socket().local_endpoint());
  if (!source_ip.empty()) BOOST_TEST(a.peer.address() == asio::ip::make_address(source_ip));
  if (source_port) BOOST_TEST(a.peer.port() == source_port);
  stream.close();
}

// do_test_connect for a coroutine: a braced list as a coroutine's argument is miscompiled by
// GCC 12, so the options are built here.
void connect_case(int family, std::string host, std::string server_address = "localhost", std::string source_ip = {},
                  unsigned short source_port = 0) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    connect_options options;
    options.source_ip = source_ip;
    options.source_port = source_port;
    co_await do_test_connect(family, host, server_address, options);
  });
}
} // namespace

BOOST_AUTO_TEST_CASE(test_connect_ipv4_ipv4) { connect_case(AF_INET, "127.0.0.1"); }

BOOST_AUTO_TEST_CASE(test_connect_ipv4_dual) { connect_case(AF_INET, "localhost"); }

BOOST_AUTO_TEST_CASE(test_connect_ipv6_ipv6, *boost::unit_test::precondition(ipv6_available())) {
  // Tornado skips this unless localhost resolves to ::1; a server on ::1 itself needs only IPv6.
  connect_case(AF_INET6, "::1", "::1");
}

BOOST_AUTO_TEST_CASE(test_connect_ipv6_dual, *boost::unit_test::precondition(localhost_resolves_to_ipv6())) {
  connect_case(AF_INET6, "localhost");
}

BOOST_AUTO_TEST_CASE(test_connect_unspec_ipv4) { connect_case(AF_UNSPEC, "127.0.0.1"); }

BOOST_AUTO_TEST_CASE(test_connect_unspec_ipv6, *boost::unit_test::precondition(localhost_resolves_to_ipv6())) {
  connect_case(AF_UNSPEC, "::1");
}

BOOST_AUTO_TEST_CASE(test_connect_unspec_dual) { connect_case(AF_UNSPEC, "localhost"); }

BOOST_AUTO_TEST_CASE(test_refused_ipv4) {
  // A refused connection: StreamClosedError whose real_error() says why.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto refusing = make_refusing_port(ex);
    TCPClient client(ex);
    auto e = co_await expect_throw<StreamClosedError>(client.connect("127.0.0.1", refusing.endpoint.port()));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(test_source_ip_fail) {
  // An address this host does not have cannot be the source.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test_server server(ex, AF_INET);
    TCPClient client(ex);
    connect_options options;
    options.source_ip = "8.8.8.8";
    auto e = co_await expect_throw<StreamClosedError>(client.connect("127.0.0.1", server.port, options));
    BOOST_TEST((e.real_error() == boost::system::errc::address_not_available), "real_error: " << e.real_error().message());
    BOOST_TEST(server.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_source_ip_success) { connect_case(AF_INET, "127.0.0.1", "localhost", "127.0.0.1"); }

BOOST_AUTO_TEST_CASE(test_source_port_fail) {
  // A source port that cannot be bound fails the connection. Tornado uses port 1 (privileged),
  // which only works when not root; a port another socket listens on fails for everyone.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test_server server(ex, AF_INET, "127.0.0.1");
    TCPClient client(ex);
    connect_options busy;
    busy.source_port = server.port;
    auto e = co_await expect_throw<StreamClosedError>(client.connect("127.0.0.1", server.port, busy));
    BOOST_TEST(e.real_error() == code(asio::error::address_in_use), "real_error: " << e.real_error().message());
    if (::geteuid() != 0) {
      connect_options privileged;
      privileged.source_port = 1;
      auto p = co_await expect_throw<StreamClosedError>(client.connect("127.0.0.1", server.port, privileged));
      BOOST_TEST(p.real_error() == code(asio::error::access_denied), "real_error: " << p.real_error().message());
    } else {
      BOOST_TEST_MESSAGE("running as root: port 1 is not refused, only the busy port is tested");
    }
    BOOST_TEST(server.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_source_port_success) {
  asio::io_context ctx(1);
  const unsigned short port = free_port(ctx.get_executor());
  connect_case(AF_INET, "127.0.0.1", "localhost", "127.0.0.1", port);
}

BOOST_AUTO_TEST_CASE(test_connect_timeout) {
  // Tornado's resolver never answers; here the TLS handshake never does. The timeout covers
  // resolution, connection and handshake together: TimeoutError.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    TCPClient client(ex);
    connect_options options;
    options.timeout = 50ms;
    const auto start = std::chrono::steady_clock::now();
    co_await expect_throw<tornado::TimeoutError>(client.connect("127.0.0.1", silent.port(), client_tls(), options));
    const auto took = elapsed_since(start);
    BOOST_TEST(took >= 50ms);
    BOOST_TEST(took < 5s);
  });
}

BOOST_AUTO_TEST_CASE(timeout_during_resolution) {
  // As Tornado's test, the resolution never answers (until the test lets it go): the timeout
  // covers it too, and the connect fails with TimeoutError while the lookup is still blocked.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    TCPClient client(co_await asio::this_coro::executor);
    connect_options options;
    options.timeout = 50ms;
    co_await expect_throw<tornado::TimeoutError>(client.connect("slow-resolution.test", 80, options));
    std::lock_guard lock(slow_resolution::mutex);
    BOOST_TEST(slow_resolution::entered == 1);
    BOOST_TEST(!slow_resolution::released);
  });
  slow_resolution::release();
  ctx.restart();
  ctx.run();  // the lookup's late answer goes nowhere
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TestConnectorSplit: the addresses of the first address's family form the primary list, the
// others the secondary, each in order
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TestConnectorSplit)

namespace {
const tcp::endpoint a{asio::ip::make_address("10.0.0.1"), 1}, b{asio::ip::make_address("10.0.0.2"), 2},
    c{asio::ip::make_address("fd00::3"), 3}, d{asio::ip::make_address("fd00::4"), 4};
using split_lists = std::array<std::vector<tcp::endpoint>, 2>;
} // namespace

BOOST_AUTO_TEST_CASE(test_one_family) {
  const std::vector<tcp::endpoint> in{a, b};
  BOOST_TEST((tornado::detail::split_families(in, AF_UNSPEC) == split_lists{{{a, b}, {}}}));
}

BOOST_AUTO_TEST_CASE(test_mixed) {
  const std::vector<tcp::endpoint> in{a, c, b, d};
  BOOST_TEST((tornado::detail::split_families(in, AF_UNSPEC) == split_lists{{{a, b}, {c, d}}}));
  const std::vector<tcp::endpoint> v6_first{c, a, d, b};
  BOOST_TEST((tornado::detail::split_families(v6_first, AF_UNSPEC) == split_lists{{{c, d}, {a, b}}}));
}

BOOST_AUTO_TEST_CASE(test_family_given) {
  // connect_options::family: only that family's addresses, all primary.
  const std::vector<tcp::endpoint> in{c, a, d, b};
  BOOST_TEST((tornado::detail::split_families(in, AF_INET) == split_lists{{{a, b}, {}}}));
  BOOST_TEST((tornado::detail::split_families(in, AF_INET6) == split_lists{{{c, d}, {}}}));
  BOOST_TEST((tornado::detail::split_families(std::vector<tcp::endpoint>{a}, AF_INET6) == split_lists{}));
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// ConnectorTest: the connector with the addresses given
// ======================================================================================
// Tornado tests _Connector alone, handing it the addresses and fake connections it completes by
// hand. Ours drives the connector (detail::tcp_connector) the same way, past the resolver, with
// real loopback sockets: IPv6 (::1) as the primary family and IPv4 as the secondary. A
// connection succeeds on a listening port, fails on a refusing one, and hangs on a port whose
// listener's accept queue is full (the kernel drops its SYNs), until the test closes that
// listener (the next SYN, about 1 s later, is refused) or makes room in its queue (it connects).
BOOST_AUTO_TEST_SUITE(ConnectorTest, *boost::unit_test::precondition(ipv6_available()))

namespace {
using endpoints = std::vector<tcp::endpoint>;

struct hanging_port {
  tcp::acceptor acceptor;
  tcp::socket filler;
  tcp::endpoint endpoint;
  std::vector<tcp::socket> accepted;
  hanging_port(const asio::any_io_executor& ex, const asio::ip::address& addr) : acceptor(ex), filler(ex) {
    const tcp::endpoint at(addr, 0);
    acceptor.open(at.protocol());
    acceptor.bind(at);
    acceptor.listen(0);  // room for one connection, which the filler takes
    endpoint = acceptor.local_endpoint();
    filler.connect(endpoint);
  }
  // The attempt waiting for this port fails at its next SYN.
  void refuse() { acceptor.close(); }
  // The attempt waiting for this port connects at its next SYN.
  void make_room() { accepted.push_back(acceptor.accept()); }
};

// The descriptors this process has open.
std::size_t open_fds() {
  std::size_t n = 0;
  for (auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

tcp::endpoint v6(unsigned short port) { return {loopback_v6, port}; }
tcp::endpoint v4(unsigned short port) { return {loopback_v4, port}; }

// The connector, started with `eps` as if resolved, in that order.
template <class Handler>
void start_connector(const asio::any_io_executor& ex, const endpoints& eps, connect_options options, Handler handler) {
  using connector = tornado::detail::tcp_connector<IOStream, Handler>;
  std::make_shared<connector>(ex, std::move(options), nullptr, std::move(handler))->start_resolved("localhost", eps);
}

// The same, awaited: (error, stream). The arguments are the caller's, alive while it waits.
// (Named, never temporaries: GCC 12 miscompiles class-type temporaries and defaulted
// arguments of a call inside a co_await expression.)
asio::awaitable<std::tuple<error_code, IOStream>> connect_resolved(const endpoints& eps, const connect_options& options) {
  auto ex = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::as_tuple_t<asio::use_awaitable_t<>>, void(error_code, IOStream)>(
      [&](auto handler) { start_connector(ex, eps, options, std::move(handler)); }, asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<std::tuple<error_code, IOStream>> connect_resolved(const endpoints& eps) {
  const connect_options none;
  co_return co_await connect_resolved(eps, none);
}

// Two addresses that both refuse: the connection fails with the last attempt's refusal.
asio::awaitable<void> expect_all_refused(asio::any_io_executor ex, const asio::ip::address& first,
                                         const asio::ip::address& second, const connect_options& options) {
  auto a = make_refusing_port(ex, first);
  auto b = make_refusing_port(ex, second);
  endpoints eps{a.endpoint, b.endpoint};
  auto [ec, stream] = co_await connect_resolved(eps, options);
  BOOST_TEST(ec == code(asio::error::connection_refused), ec.message());
}

connect_options with_timeout(std::chrono::milliseconds t) {
  connect_options o;
  o.timeout = t;
  return o;
}

// Runs the coroutine `fn(executor)` on a fresh loop.
template <class F>
void connector_case(F fn) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> { co_await fn(ctx.get_executor()); });
}

// Both families' attempts hang past the delay; then the primary's connects and wins.
asio::awaitable<IOStream> primary_wins_after_delay(asio::any_io_executor ex, hanging_port& primary,
                                                   hanging_port& secondary) {
  const std::size_t fds = open_fds();
  connect_record<IOStream> r;
  endpoints eps{primary.endpoint, secondary.endpoint};
  start_connector(ex, eps, connect_options(), r.handler());
  co_await sleep_for(2 * TCPClient::happy_eyeballs_delay);
  BOOST_TEST(!r.done());
  BOOST_TEST(open_fds() == fds + 2);  // both attempts are under way
  primary.make_room();
  co_await r.wait();
  BOOST_TEST_REQUIRE(!r.ec(), r.ec().message());
  co_return std::move(r.stream());
}
} // namespace

BOOST_AUTO_TEST_CASE(test_immediate_success) {
  // The primary family's first address accepts: it wins at once, and the secondary family is
  // never tried (nothing reaches its server, even after the happy-eyeballs delay).
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test_server primary(ex, AF_INET6, "::1");
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{v6(primary.port), v4(secondary.port)};
    auto [ec, stream] = co_await connect_resolved(eps);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(stream.socket().remote_endpoint() == v6(primary.port));
    co_await next_accepted(*primary.queue);
    co_await sleep_for(2 * TCPClient::happy_eyeballs_delay);
    BOOST_TEST(secondary.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_immediate_failure) {
  // One family, one address, refused: the connection fails with the refusal.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto refusing = make_refusing_port(ex, loopback_v6);
    endpoints eps{refusing.endpoint};
    auto [ec, stream] = co_await connect_resolved(eps);
    BOOST_TEST(ec == code(asio::error::connection_refused), ec.message());
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_second_try) {
  // The first address refuses: the next address of the same family is tried.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto refusing = make_refusing_port(ex, loopback_v6);
    test_server server(ex, AF_INET6, "::1");
    endpoints eps{refusing.endpoint, v6(server.port)};
    auto [ec, stream] = co_await connect_resolved(eps);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(stream.socket().remote_endpoint() == v6(server.port));
    co_await next_accepted(*server.queue);
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_second_try_failure) {
  // Every address of the one family refuses: the last refusal is the error.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const connect_options none;
    co_await expect_all_refused(ex, loopback_v6, loopback_v6, none);
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_second_try_timeout) {
  // With one family, the happy-eyeballs delay starts nothing: the second address waits for the
  // first attempt to fail, however long that takes.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    test_server server(ex, AF_INET6, "::1");
    endpoints eps{hanging.endpoint, v6(server.port)};
    connect_record<IOStream> r;
    start_connector(ex, eps, connect_options(), r.handler());
    co_await sleep_for(2 * TCPClient::happy_eyeballs_delay);
    BOOST_TEST(!r.done());
    BOOST_TEST(server.queue->qsize() == 0u);
    hanging.refuse();
    co_await r.wait();
    BOOST_TEST_REQUIRE(!r.ec(), r.ec().message());
    BOOST_TEST(r.stream().socket().remote_endpoint() == v6(server.port));
  });
}

BOOST_AUTO_TEST_CASE(test_two_families_immediate_failure) {
  // The primary family's only address refuses: the secondary family is tried at once, not
  // after the delay.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto refusing = make_refusing_port(ex, loopback_v6);
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{refusing.endpoint, v4(secondary.port)};
    const auto start = std::chrono::steady_clock::now();
    auto [ec, stream] = co_await connect_resolved(eps);
    const auto took = elapsed_since(start);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(took < TCPClient::happy_eyeballs_delay, "took " << took.count() << " ms");
    BOOST_TEST(stream.socket().remote_endpoint() == v4(secondary.port));
    auto a = co_await next_accepted(*secondary.queue);
    co_await stream.write("y");
    BOOST_TEST(co_await within(a.stream.read_bytes(1)) == "y");
  });
}

BOOST_AUTO_TEST_CASE(test_two_families_timeout) {
  // The primary family's attempt hangs: the secondary family starts after the delay and wins;
  // the hanging attempt is closed.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{hanging.endpoint, v4(secondary.port)};
    const std::size_t fds = open_fds();
    const auto start = std::chrono::steady_clock::now();
    auto [ec, stream] = co_await connect_resolved(eps);
    const auto took = elapsed_since(start);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(took >= TCPClient::happy_eyeballs_delay, "took " << took.count() << " ms");
    BOOST_TEST(stream.socket().remote_endpoint() == v4(secondary.port));
    auto a = co_await next_accepted(*secondary.queue);
    BOOST_TEST(open_fds() == fds + 2);  // the stream and the server's end; the hanging attempt is closed
  });
}

BOOST_AUTO_TEST_CASE(test_two_family_success_after_timeout) {
  // Both families' attempts hang; then the primary's connects: it wins, and the secondary's
  // attempt, started after the delay, is closed at once.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port primary(ex, loopback_v6);
    hanging_port secondary(ex, loopback_v4);
    const std::size_t fds = open_fds();
    IOStream stream = co_await primary_wins_after_delay(ex, primary, secondary);
    BOOST_TEST(stream.socket().remote_endpoint() == primary.endpoint);
    // The stream and the filler's accepted end; the secondary's attempt is closed.
    BOOST_TEST(open_fds() == fds + 2);
  });
}

BOOST_AUTO_TEST_CASE(test_success_after_timeout) {
  // As above; then the secondary's port makes room. Tornado closes a losing connection that
  // completes after the winner; ours closes the losing attempts when the winner connects, so
  // no connection comes of the secondary's attempt at all: its SYN is never sent again.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port primary(ex, loopback_v6);
    hanging_port secondary(ex, loopback_v4);
    IOStream stream = co_await primary_wins_after_delay(ex, primary, secondary);
    BOOST_TEST(stream.socket().remote_endpoint() == primary.endpoint);
    secondary.make_room();
    // Nothing to accept, though the kernel resends a dropped SYN after about 1 s.
    using namespace asio::experimental::awaitable_operators;
    const std::chrono::steady_clock::duration limit = 1500ms;
    auto accept = secondary.acceptor.async_accept(asio::use_awaitable);
    auto first = co_await (std::move(accept) || sleep_for(limit));
    BOOST_TEST(first.index() == 1u);
  });
}

BOOST_AUTO_TEST_CASE(test_all_fail) {
  // Every address of both families refuses; the error is the last attempt's.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const connect_options none;
    co_await expect_all_refused(ex, loopback_v6, loopback_v4, none);
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_timeout_after_connect_timeout) {
  // The one attempt hangs past the connect timeout: TimeoutError, and the attempt is closed.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    endpoints eps{hanging.endpoint};
    const std::size_t fds = open_fds();
    const auto start = std::chrono::steady_clock::now();
    const auto options = with_timeout(200ms);
    auto [ec, stream] = co_await connect_resolved(eps, options);
    const auto took = elapsed_since(start);
    BOOST_TEST(ec == code(tornado::error::timeout), ec.message());
    BOOST_TEST(took >= 200ms);
    BOOST_TEST(open_fds() == fds);
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_success_before_connect_timeout) {
  // A connection made before the timeout is not touched when the timeout's time comes.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test_server server(ex, AF_INET6, "::1");
    endpoints eps{v6(server.port)};
    const auto options = with_timeout(200ms);
    auto [ec, stream] = co_await connect_resolved(eps, options);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    auto a = co_await next_accepted(*server.queue);
    co_await sleep_for(300ms);
    BOOST_TEST(!stream.closed());
    co_await stream.write("z");
    BOOST_TEST(co_await within(a.stream.read_bytes(1)) == "z");
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_second_try_after_connect_timeout) {
  // The first address refuses, the second hangs past the timeout: TimeoutError.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto refusing = make_refusing_port(ex, loopback_v6);
    hanging_port hanging(ex, loopback_v6);
    endpoints eps{refusing.endpoint, hanging.endpoint};
    const auto options = with_timeout(200ms);
    auto [ec, stream] = co_await connect_resolved(eps, options);
    BOOST_TEST(ec == code(tornado::error::timeout), ec.message());
  });
}

BOOST_AUTO_TEST_CASE(test_one_family_second_try_failure_before_connect_timeout) {
  // Every address refuses before the timeout: the refusal, not a timeout.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto options = with_timeout(2s);
    co_await expect_all_refused(ex, loopback_v6, loopback_v6, options);
  });
}

BOOST_AUTO_TEST_CASE(test_two_family_timeout_before_connect_timeout) {
  // The primary hangs; the secondary, started after the delay, connects before the timeout.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{hanging.endpoint, v4(secondary.port)};
    const auto options = with_timeout(3s);
    auto [ec, stream] = co_await connect_resolved(eps, options);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(stream.socket().remote_endpoint() == v4(secondary.port));
  });
}

BOOST_AUTO_TEST_CASE(test_two_family_timeout_after_connect_timeout) {
  // Both families hang past the timeout: TimeoutError, and both attempts are closed.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port primary(ex, loopback_v6);
    hanging_port secondary(ex, loopback_v4);
    endpoints eps{primary.endpoint, secondary.endpoint};
    const std::size_t fds = open_fds();
    const auto options = with_timeout(500ms);
    auto [ec, stream] = co_await connect_resolved(eps, options);
    BOOST_TEST(ec == code(tornado::error::timeout), ec.message());
    BOOST_TEST(open_fds() == fds);
  });
}

BOOST_AUTO_TEST_CASE(test_mixed_split_in_use) {
  // TestConnectorSplit's rule at work: the primary's second address, listed after an IPv4 one,
  // is tried as soon as its first refuses, and wins, while the secondary family's attempt
  // hangs.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto refusing = make_refusing_port(ex, loopback_v6);
    hanging_port hanging(ex, loopback_v4);
    test_server server(ex, AF_INET6, "::1");
    endpoints eps{refusing.endpoint, hanging.endpoint, v6(server.port)};
    auto [ec, stream] = co_await connect_resolved(eps);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(stream.socket().remote_endpoint() == v6(server.port));
  });
}

BOOST_AUTO_TEST_CASE(test_source_ip_of_the_secondary_family) {
  // A source address of the secondary family: the primary family's attempt fails at once (its
  // socket cannot bind it), and a failed attempt starts the secondary family without waiting
  // for the happy-eyeballs delay.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test_server primary(ex, AF_INET6, "::1");
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{v6(primary.port), v4(secondary.port)};
    connect_options options;
    options.source_ip = "127.0.0.1";
    const auto start = std::chrono::steady_clock::now();
    auto [ec, stream] = co_await connect_resolved(eps, options);
    const auto took = elapsed_since(start);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(took < TCPClient::happy_eyeballs_delay, "took " << took.count() << " ms");
    BOOST_TEST(stream.socket().remote_endpoint() == v4(secondary.port));
    auto a = co_await next_accepted(*secondary.queue);
    BOOST_TEST(a.peer.address() == loopback_v4);
    BOOST_TEST(primary.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_source_port_of_both_families) {
  // A source port without a source address binds each attempt to its family's wildcard address
  // and that port. The IPv6 attempt holds the port for IPv6 only, so the IPv4 attempt, started
  // after the delay while the first still waits, binds the same port and wins.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{hanging.endpoint, v4(secondary.port)};
    connect_options options;
    options.source_port = free_port(ex);
    options.timeout = 5s;
    auto [ec, stream] = co_await connect_resolved(eps, options);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(stream.socket().local_endpoint().port() == options.source_port);
    auto a = co_await next_accepted(*secondary.queue);
    BOOST_TEST(a.peer.port() == options.source_port);
  });
}

BOOST_AUTO_TEST_CASE(test_tls_race_ends_with_the_winner) {
  // With TLS the operation goes on after a connection wins, through its handshake; the race is
  // over all the same, as Tornado's connector is once it has a stream. Here the secondary
  // family wins after the delay, and the primary's hanging attempt, closed, fails meanwhile:
  // that failure must not start the primary family's next address.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    hanging_port hanging(ex, loopback_v6);
    tcp::acceptor next_primary(ex, tcp::endpoint(loopback_v6, 0));  // listens, never accepts
    TCPServer secondary(ex, &echo<SSLIOStream>, server_tls());
    secondary.listen(0, "127.0.0.1");
    const auto port = secondary.endpoints().front().port();
    endpoints eps{hanging.endpoint, next_primary.local_endpoint(), v4(port)};
    connect_record<SSLIOStream> r;
    using handler = decltype(r.handler());
    std::make_shared<tornado::detail::tcp_connector<SSLIOStream, handler>>(ex, connect_options(), &client_tls(),
                                                                           r.handler())
        ->start_resolved("localhost", eps);
    co_await r.wait();
    BOOST_TEST_REQUIRE(!r.ec(), r.ec().message());
    BOOST_TEST(r.stream().socket().lowest_layer().remote_endpoint() == v4(port));
    co_await expect_echo(r.stream(), "the winner\n");
    // No connection reaches the primary family's next address.
    using namespace asio::experimental::awaitable_operators;
    const std::chrono::steady_clock::duration limit = 300ms;
    auto accept = next_primary.async_accept(asio::use_awaitable);
    auto first = co_await (std::move(accept) || sleep_for(limit));
    BOOST_TEST(first.index() == 1u);
  });
}

BOOST_AUTO_TEST_CASE(test_family_restriction) {
  // connect_options::family keeps one family: the other's server is never contacted.
  connector_case([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test_server primary(ex, AF_INET6, "::1");
    test_server secondary(ex, AF_INET, "127.0.0.1");
    endpoints eps{v6(primary.port), v4(secondary.port)};
    connect_options only_secondary;
    only_secondary.family = AF_INET;
    auto [ec, s] = co_await connect_resolved(eps, only_secondary);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(s.socket().remote_endpoint() == v4(secondary.port));
    co_await next_accepted(*secondary.queue);
    connect_options only_primary;
    only_primary.family = AF_INET6;
    auto [ec2, p] = co_await connect_resolved(eps, only_primary);
    BOOST_TEST_REQUIRE(!ec2, ec2.message());
    BOOST_TEST(p.socket().remote_endpoint() == v6(primary.port));
    co_await next_accepted(*primary.queue);
    co_await sleep_for(2 * TCPClient::happy_eyeballs_delay);
    BOOST_TEST(primary.queue->qsize() == 0u);
    BOOST_TEST(secondary.queue->qsize() == 0u);
    // No address of the family asked for: host_not_found, as a resolution that found none.
    endpoints only_v4{v4(secondary.port)};
    auto [ec3, none] = co_await connect_resolved(only_v4, only_primary);
    BOOST_TEST(ec3 == code(asio::error::host_not_found), ec3.message());
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Resolution and options
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Options)

BOOST_AUTO_TEST_CASE(test_family_mismatch) {
  // No address of the requested family: a resolution error (Python: socket.gaierror), not a
  // StreamClosedError.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test_server server(ex, AF_INET, "127.0.0.1");
    TCPClient client(ex);
    connect_options v6_only;
    v6_only.family = AF_INET6;
    try {
      co_await client.connect("127.0.0.1", server.port, v6_only);
      BOOST_ERROR("connected to an IPv4 address with family AF_INET6");
    } catch (const StreamClosedError& e) {
      BOOST_ERROR("a resolution failure surfaced as StreamClosedError: " << e.what());
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(is_resolution_error(e.code()), "code: " << e.code().message());
    }
    BOOST_TEST(server.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_family_not_ip) {
  // A family other than AF_UNSPEC, AF_INET or AF_INET6 is a mistake in the call, as for
  // Resolver and bind_sockets: std::invalid_argument, before anything starts.
  asio::io_context ctx(1);
  TCPClient client(ctx.get_executor());
  connect_options unix_family;
  unix_family.family = AF_UNIX;
  BOOST_CHECK_THROW(client.connect("localhost", 80, unix_family), std::invalid_argument);
  BOOST_CHECK_THROW(client.connect("localhost", 80, client_tls(), unix_family), std::invalid_argument);
  BOOST_TEST(ctx.poll() == 0u);
}

BOOST_AUTO_TEST_CASE(empty_host_is_not_found) {
  // Not the loopback that getaddrinfo() gives for no name: Tornado's connect("") fails to
  // resolve, even with a server listening on loopback at that port.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, [](IOStream, tcp::endpoint) {});
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    try {
      co_await client.connect("", server.endpoints().front().port());
      BOOST_ERROR("connected to the empty host");
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(e.code() == asio::error::host_not_found, e.code().message());
    }
  });
}

BOOST_AUTO_TEST_CASE(test_resolution_failure) {
  // A name that does not resolve: the resolver's error, as an exception and as a code.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPClient client(ex);
    try {
      co_await client.connect("nonexistent.invalid", 80);
      BOOST_ERROR("nonexistent.invalid resolved");
    } catch (const StreamClosedError& e) {
      BOOST_ERROR("a resolution failure surfaced as StreamClosedError: " << e.what());
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(is_resolution_error(e.code()), "code: " << e.code().message());
    }
    connect_record<IOStream> r;
    client.connect("nonexistent.invalid", 80, connect_options(), r.handler());
    co_await r.wait();
    BOOST_TEST(is_resolution_error(r.ec()), "code: " << r.ec().message());
  });
}

BOOST_AUTO_TEST_CASE(test_stream_options) {
  // connect_options::stream reaches the stream handed back, plain or TLS.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPServer tls_server(ex, &echo<SSLIOStream>, server_tls());
    tls_server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    connect_options options;
    options.stream.max_buffer_size = 8192;
    options.stream.read_chunk_size = 256;
    options.stream.max_write_buffer_size = 1 << 16;
    IOStream s = co_await client.connect("127.0.0.1", server.endpoints().front().port(), options);
    BOOST_TEST(s.options().max_buffer_size == 8192u);
    BOOST_TEST(s.options().read_chunk_size == 256u);
    BOOST_TEST(s.options().max_write_buffer_size == std::size_t(1) << 16);
    co_await expect_echo(s, "plain\n");
    SSLIOStream t = co_await client.connect("localhost", tls_server.endpoints().front().port(), client_tls(), options);
    BOOST_TEST(t.options().max_buffer_size == 8192u);
    BOOST_TEST(t.options().read_chunk_size == 256u);
    co_await expect_echo(t, "tls\n");
  });
}

BOOST_AUTO_TEST_CASE(test_timeout_does_not_outlive_the_connection) {
  // A timeout longer than the connection takes does nothing afterwards.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPServer tls_server(ex, &echo<SSLIOStream>, server_tls());
    tls_server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    connect_options options;
    options.timeout = 100ms;
    IOStream s = co_await client.connect("127.0.0.1", server.endpoints().front().port(), options);
    SSLIOStream t = co_await client.connect("localhost", tls_server.endpoints().front().port(), client_tls(), options);
    co_await sleep_for(250ms);
    BOOST_TEST(!s.closed());
    BOOST_TEST(!t.closed());
    co_await expect_echo(s, "still open\n");
    co_await expect_echo(t, "still open\n");
  });
}

BOOST_AUTO_TEST_CASE(test_connect_timeout_token) {
  // The timeout through a callback token: error::timeout; the connection attempt is closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    TCPClient client(ex);
    connect_options options;
    options.timeout = 50ms;
    connect_record<SSLIOStream> r;
    client.connect("127.0.0.1", silent.port(), client_tls(), options, r.handler());
    tcp::socket peer = co_await silent.acceptor.async_accept(asio::use_awaitable);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(tornado::error::timeout));
    BOOST_TEST(r.calls() == 1);
    co_await wait_peer_closed(peer);
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Tokens and cancellation
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Tokens)

BOOST_AUTO_TEST_CASE(test_callback_token) {
  // A callback completes once, from the loop (never inside connect()), with the stream or the
  // error code.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    connect_record<IOStream> ok;
    client.connect("127.0.0.1", server.endpoints().front().port(), connect_options(), ok.handler());
    BOOST_TEST(!ok.done());
    co_await ok.wait();
    BOOST_TEST(ok.calls() == 1);
    BOOST_TEST(!ok.ec());
    co_await expect_echo(ok.stream(), "callback\n");

    auto refusing = make_refusing_port(ex);
    connect_record<IOStream> refused;
    client.connect("127.0.0.1", refusing.endpoint.port(), connect_options(), refused.handler());
    BOOST_TEST(!refused.done());
    co_await refused.wait();
    BOOST_TEST(refused.calls() == 1);
    BOOST_TEST(refused.ec() == code(asio::error::connection_refused));

    connect_record<SSLIOStream> tls_refused;
    client.connect("127.0.0.1", refusing.endpoint.port(), client_tls(), connect_options(), tls_refused.handler());
    BOOST_TEST(!tls_refused.done());
    co_await tls_refused.wait();
    BOOST_TEST(tls_refused.ec() == code(asio::error::connection_refused));
    co_await sleep_for(20ms);
    BOOST_TEST(refused.calls() == 1);
    BOOST_TEST(tls_refused.calls() == 1);
  });
}

BOOST_AUTO_TEST_CASE(test_bound_executor) {
  // The handler runs on its associated executor (a strand here).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    auto strand = asio::make_strand(ctx);
    auto on_strand = std::make_shared<std::optional<bool>>();
    tornado::Event done;
    client.connect("127.0.0.1", server.endpoints().front().port(), connect_options(),
                   asio::bind_executor(strand, [&, on_strand](error_code ec, IOStream) {
                     BOOST_TEST(!ec);
                     *on_strand = strand.running_in_this_thread();
                     done.set();
                   }));
    co_await done.wait(10s);
    BOOST_TEST(on_strand->value_or(false));
  });
}

BOOST_AUTO_TEST_CASE(test_deferred_and_as_tuple) {
  // asio::deferred, asio::use_awaitable (plain error codes as system_error) and as_tuple.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    const auto port = server.endpoints().front().port();
    TCPClient client(ex);
    auto op = client.connect("127.0.0.1", port, connect_options(), asio::deferred);
    auto [ec, stream] = co_await std::move(op)(asio::as_tuple(asio::use_awaitable));
    BOOST_TEST(!ec);
    co_await expect_echo(stream, "deferred\n");

    auto refusing = make_refusing_port(ex);
    try {
      co_await client.connect("127.0.0.1", refusing.endpoint.port(), connect_options(), asio::use_awaitable);
      BOOST_ERROR("connected to a refusing port");
    } catch (const boost::system::system_error& e) {
      BOOST_TEST(e.code() == code(asio::error::connection_refused));
    }
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_while_resolving) {
  // Cancelled at once (every cancellation type): operation_aborted, from the loop; nothing
  // reaches the server afterwards.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test_server server(ex, AF_INET, "127.0.0.1");
    TCPClient client(ex);
    for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                      asio::cancellation_type::total}) {
      asio::cancellation_signal signal;
      connect_record<IOStream> r;
      client.connect("localhost", server.port, connect_options(), asio::bind_cancellation_slot(signal.slot(), r.handler()));
      signal.emit(type);
      BOOST_TEST(!r.done());
      co_await r.wait();
      BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
      signal.emit(type);  // after completion: nothing
    }
    co_await sleep_for(100ms);
    BOOST_TEST(server.queue->qsize() == 0u);
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_during_handshake) {
  // Cancelled while the TLS handshake waits: operation_aborted, and the connection is closed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    silent_server silent(ex);
    TCPClient client(ex);
    asio::cancellation_signal signal;
    connect_record<SSLIOStream> r;
    client.connect("127.0.0.1", silent.port(), client_tls(), connect_options(),
                   asio::bind_cancellation_slot(signal.slot(), r.handler()));
    tcp::socket peer = co_await silent.acceptor.async_accept(asio::use_awaitable);
    co_await sleep_for(20ms);
    BOOST_TEST(!r.done());
    signal.emit(asio::cancellation_type::terminal);
    co_await r.wait();
    BOOST_TEST(r.ec() == code(asio::error::operation_aborted));
    BOOST_TEST(r.calls() == 1);
    co_await wait_peer_closed(peer);
  });
}

BOOST_AUTO_TEST_CASE(test_cancel_after_completion) {
  // A cancellation after the handler ran changes nothing.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<IOStream>);
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    asio::cancellation_signal signal;
    connect_record<IOStream> r;
    client.connect("127.0.0.1", server.endpoints().front().port(), connect_options(),
                   asio::bind_cancellation_slot(signal.slot(), r.handler()));
    co_await r.wait();
    BOOST_TEST(!r.ec());
    signal.emit(asio::cancellation_type::terminal);
    co_await sleep_for(20ms);
    BOOST_TEST(r.calls() == 1);
    co_await expect_echo(r.stream(), "not cancelled\n");
  });
}

namespace {
asio::awaitable<void> connect_and_keep(TCPClient& client, unsigned short port, std::shared_ptr<bool> connected) {
  SSLIOStream s = co_await client.connect("127.0.0.1", port, client_tls());
  *connected = true;
}
} // namespace

BOOST_AUTO_TEST_CASE(test_cancel_coroutine) {
  // A coroutine's cancellation (here: the other branch of `||` wins) reaches connect(); the
  // connection attempt is closed. A cancellation that did not arrive would hang the `||`
  // (the handshake never ends): run()'s limit bounds it.
  asio::io_context ctx(1);
  run(
      ctx,
      [&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        auto ex = co_await asio::this_coro::executor;
        silent_server silent(ex);
        TCPClient client(ex);
        auto connected = std::make_shared<bool>(false);
        auto r = co_await (connect_and_keep(client, silent.port(), connected) || sleep_for(100ms));
        BOOST_TEST(r.index() == 1u);
        BOOST_TEST(!*connected);
        tcp::socket peer = co_await silent.acceptor.async_accept(asio::use_awaitable);
        co_await wait_peer_closed(peer);
      },
      15s);
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// TLS
// ======================================================================================
BOOST_AUTO_TEST_SUITE(TLS)

BOOST_AUTO_TEST_CASE(test_tls_connect) {
  // A TLS connection verified against the name connected to (a DNS name or an address).
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    const auto port = server.endpoints().front().port();
    TCPClient client(ex);
    for (std::string host : {"localhost", "127.0.0.1"}) {
      SSLIOStream s = co_await client.connect(host, port, client_tls());
      BOOST_TEST(SSL_get_verify_result(s.socket().native_handle()) == X509_V_OK);
      BOOST_TEST(SSL_get_current_cipher(s.socket().native_handle()) != nullptr);
      co_await expect_echo(s, "verified as " + host + "\n");
    }
  });
}

BOOST_AUTO_TEST_CASE(test_tls_untrusted_certificate) {
  // The system's authorities do not vouch for the test certificate: a verification error.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, server_tls());
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(
        client.connect("localhost", server.endpoints().front().port(), default_client_tls()));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
               "real_error: " << e.real_error().message());
    BOOST_TEST(logs.contains("SSL Error: certificate verify failed: self-signed certificate"));
  });
}

BOOST_AUTO_TEST_CASE(test_tls_hostname_mismatch) {
  // A trusted certificate for another name: a verification error too.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, other_server_tls());
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(
        client.connect("localhost", server.endpoints().front().port(), client_tls()));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_HOSTNAME_MISMATCH), "real_error: " << e.real_error().message());
    BOOST_TEST(e.real_error().message() == "certificate verify failed: hostname mismatch");
    connect_record<SSLIOStream> r;
    client.connect("localhost", server.endpoints().front().port(), client_tls(), connect_options(), r.handler());
    co_await r.wait();
    BOOST_TEST(is_verify_error(r.ec(), X509_V_ERR_HOSTNAME_MISMATCH), "ec: " << r.ec().message());
  });
}

BOOST_AUTO_TEST_CASE(test_tls_refused) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto refusing = make_refusing_port(ex);
    TCPClient client(ex);
    auto e = co_await expect_throw<StreamClosedError>(client.connect("127.0.0.1", refusing.endpoint.port(), client_tls()));
    BOOST_TEST(e.real_error() == code(asio::error::connection_refused));
  });
}

BOOST_AUTO_TEST_CASE(test_tls_verification_off) {
  // connect_options::verify = false, an explicit choice (Tornado: cert_reqs=CERT_NONE and
  // check_hostname=False): a certificate nobody vouches for, naming another host, is accepted.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer server(ex, &echo<SSLIOStream>, other_server_tls());
    server.listen(0, "127.0.0.1");
    const auto port = server.endpoints().front().port();
    TCPClient client(ex);
    connect_options off;
    off.verify = false;
    SSLIOStream s = co_await client.connect("localhost", port, default_client_tls(), off);
    co_await expect_echo(s, "not verified\n");
    // The same connection with the default options is refused.
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(client.connect("localhost", port, default_client_tls()));
    BOOST_TEST((e.real_error().category() == tornado::certificate_category()), "real_error: " << e.real_error().message());
  });
}

BOOST_AUTO_TEST_CASE(test_tls_handshake_failure) {
  // A server that answers in plain text: the handshake fails with OpenSSL's error, told apart
  // from a refused certificate by its category.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto plain = [](IOStream s, tcp::endpoint) -> asio::awaitable<void> {
      try {
        co_await s.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      } catch (const StreamClosedError&) {
      }
      s.close();
    };
    TCPServer server(ex, plain);
    server.listen(0, "127.0.0.1");
    TCPClient client(ex);
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(
        client.connect("localhost", server.endpoints().front().port(), client_tls()));
    BOOST_TEST(is_ssl_error(e.real_error()), "real_error: " << e.real_error().message());
    BOOST_TEST((e.real_error().category() != tornado::certificate_category()));
  });
}

namespace {
// The server name each handshake sent ("" for none).
int record_server_name(SSL* ssl, int*, void* names) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  static_cast<std::vector<std::string>*>(names)->push_back(name ? name : "");
  return SSL_TLSEXT_ERR_OK;
}
} // namespace

BOOST_AUTO_TEST_CASE(test_tls_server_name_sent) {
  // The client names the host it connects to (SNI), and no address: RFC 6066 allows names only.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::string> names;
    asio::ssl::context server_ctx = make_server_tls(tls().cert, tls().key);
    SSL_CTX_set_tlsext_servername_callback(server_ctx.native_handle(), &record_server_name);
    SSL_CTX_set_tlsext_servername_arg(server_ctx.native_handle(), &names);
    TCPServer server(ex, &echo<SSLIOStream>, server_ctx);
    server.listen(0, "127.0.0.1");
    const auto port = server.endpoints().front().port();
    TCPClient client(ex);
    SSLIOStream by_name = co_await client.connect("localhost", port, client_tls());
    co_await expect_echo(by_name, "by name\n");
    SSLIOStream by_address = co_await client.connect("127.0.0.1", port, client_tls());
    co_await expect_echo(by_address, "by address\n");
    BOOST_TEST(names == (std::vector<std::string>{"localhost", ""}), boost::test_tools::per_element());
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Real peers: a Python Tornado server and openssl s_server
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Peers)

namespace {
// The port the Python echo server prints once it listens.
asio::awaitable<unsigned short> start_python_server(peer_process& p) {
  std::string line = co_await p.read_line(20s);
  co_return static_cast<unsigned short>(std::stoi(line));
}

// The echo server's command line: TLS with the test certificate when `use_tls`.
std::vector<std::string> python_server_args(bool use_tls) {
  std::vector<std::string> argv{python, script("echo_server.py", echo_server_py)};
  if (use_tls) {
    argv.push_back(tls().cert.string());
    argv.push_back(tls().key.string());
  }
  return argv;
}
} // namespace

BOOST_AUTO_TEST_CASE(test_python_server, *boost::unit_test::precondition(has_python_tornado())) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    peer_process server(ex, python_server_args(false));
    const auto port = co_await start_python_server(server);
    TCPClient client(ex);
    IOStream s = co_await client.connect("127.0.0.1", port);
    co_await expect_echo(s, "hello tornado\n");
    co_await expect_echo(s, std::string(100000, 'p') + "\n");
    s.close();
    server.close_stdin();
    BOOST_TEST(co_await server.wait_exit(10s) == 0, server.err());
  });
}

BOOST_AUTO_TEST_CASE(test_python_server_tls, *boost::unit_test::precondition(has_python_tornado())) {
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    peer_process server(ex, python_server_args(true));
    const auto port = co_await start_python_server(server);
    TCPClient client(ex);
    SSLIOStream s = co_await client.connect("localhost", port, client_tls());
    co_await expect_echo(s, "hello tornado over tls\n");
    co_await expect_echo(s, std::string(100000, 'q') + "\n");
    SSLIOStream by_address = co_await client.connect("127.0.0.1", port, client_tls());
    co_await expect_echo(by_address, "by address\n");
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(client.connect("localhost", port, default_client_tls()));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
               "real_error: " << e.real_error().message());
    s.close();
    by_address.close();
    server.close_stdin();
    BOOST_TEST(co_await server.wait_exit(10s) == 0, server.err());
  });
}

BOOST_AUTO_TEST_CASE(test_openssl_s_server) {
  // openssl s_server -rev answers each line reversed.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    openssl_server server(ex, tls().cert, tls().key);
    co_await server.started();
    TCPClient client(ex);
    SSLIOStream s = co_await client.connect("localhost", server.port, client_tls());
    co_await s.write("hello openssl\n");
    BOOST_TEST(co_await within(s.read_until("\n")) == "lssnepo olleh\n");
    co_await s.write("second\n");
    BOOST_TEST(co_await within(s.read_until("\n")) == "dnoces\n");
  });
}

BOOST_AUTO_TEST_CASE(test_openssl_s_server_untrusted) {
  // A self-signed certificate the client does not trust: refused with a verification error.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    openssl_server server(ex, tls().cert, tls().key);
    co_await server.started();
    TCPClient client(ex);
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(client.connect("localhost", server.port, default_client_tls()));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
               "real_error: " << e.real_error().message());
  });
}

BOOST_AUTO_TEST_CASE(test_openssl_s_server_hostname_mismatch) {
  // A trusted certificate naming example.com, reached as localhost: a verification error.
  asio::io_context ctx(1);
  run(ctx, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    openssl_server server(ex, tls().other_cert, tls().other_key);
    co_await server.started();
    TCPClient client(ex);
    test::log_capture logs;
    auto e = co_await expect_throw<StreamClosedError>(client.connect("localhost", server.port, client_tls()));
    BOOST_TEST(is_verify_error(e.real_error(), X509_V_ERR_HOSTNAME_MISMATCH), "real_error: " << e.real_error().message());
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================================================
// Teardown
// ======================================================================================
BOOST_AUTO_TEST_SUITE(Teardown)

BOOST_AUTO_TEST_CASE(test_teardown_at_every_step) {
  // Destroys the io_context after k steps of a session, for every k: connectors waiting on the
  // resolver, a connection, a handshake or a timer go away without a crash or a leak.
  auto session = []() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    TCPServer tls_server(ex, &echo<SSLIOStream>, server_tls());
    tls_server.listen(0, "127.0.0.1");
    silent_server silent(ex);
    TCPClient client(ex);
    SSLIOStream s = co_await client.connect("localhost", tls_server.endpoints().front().port(), client_tls());
    co_await expect_echo(s, "tls\n");
    auto refusing = make_refusing_port(ex);
    try {
      co_await client.connect("127.0.0.1", refusing.endpoint.port());
    } catch (const StreamClosedError&) {
    }
    connect_options options;
    options.timeout = 20ms;
    try {
      co_await client.connect("127.0.0.1", silent.port(), client_tls(), options);
    } catch (const tornado::TimeoutError&) {
    }
  };
  teardown_at_every_step(session);
}

BOOST_AUTO_TEST_SUITE_END()
