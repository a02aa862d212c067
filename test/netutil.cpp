// Tests boost/tornado/netutil.hpp: netutil_test.py's cases that apply, named after the Python
// ones, plus the accept loop, unix sockets and the TLS helpers. Loopback only.
#include <boost/tornado/netutil.hpp>

#define BOOST_TEST_MODULE netutil
#include "support/test.hpp"
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace tornado = boost::tornado;
namespace fs = std::filesystem;
using asio::ip::tcp;
using asio::local::stream_protocol;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

struct fixture : test::loop_fixture {
  asio::any_io_executor ex() { return loop.get_executor(); }

  // Runs the loop until pred() holds, for at most a few seconds.
  template <class Pred>
  bool run_until(Pred pred) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (!pred() && std::chrono::steady_clock::now() < give_up) {
      loop.context().restart();
      loop.context().run_one_for(50ms);
    }
    return pred();
  }

  // Runs what is ready now, and what that makes ready.
  void loop_briefly() {
    while (poll()) {
    }
  }
};

// A temporary directory, removed with everything in it.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "tornado-netutil-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

bool ipv6_loopback_available() {
  asio::io_context ctx;
  tcp::acceptor a(ctx);
  error_code ec;
  a.open(tcp::v6(), ec);
  if (!ec) a.bind(tcp::endpoint(asio::ip::address_v6::loopback(), 0), ec);
  return !ec;
}

tcp::endpoint local_endpoint(const tcp::acceptor& a) { return a.local_endpoint(); }

// Leaves no descriptor for accept() to return (EMFILE) until the library logs the error; the
// log hook gives the descriptors back at once, so nothing else in the process runs short.
class descriptor_shortage {
public:
  descriptor_shortage() {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) throw std::runtime_error("getrlimit failed");
    prev_hook_ = tornado::set_log_hook([this](const tornado::log_record& r) {
      restore();
      lines_.push_back(std::string(r.logger) + ": " + std::string(r.message));
    });
    const int lowest_free = ::open("/dev/null", O_RDONLY);
    if (lowest_free < 0) throw std::runtime_error("open failed");
    ::close(lowest_free);
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(lowest_free);
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) throw std::runtime_error("setrlimit failed");
    lowered_ = true;
  }
  descriptor_shortage(const descriptor_shortage&) = delete;
  descriptor_shortage& operator=(const descriptor_shortage&) = delete;
  ~descriptor_shortage() {
    restore();
    tornado::set_log_hook(prev_hook_);
  }
  const std::vector<std::string>& lines() const { return lines_; }

private:
  void restore() {
    if (std::exchange(lowered_, false)) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  rlimit saved_{};
  bool lowered_ = false;
  tornado::log_hook prev_hook_;
  std::vector<std::string> lines_;
};

// A connection waits on a listening socket whose accept loop has run out of descriptors and
// logged it once; the descriptors are back, and the loop pauses before it tries again.
struct paused_accept {
  std::vector<tcp::acceptor> sockets;
  tcp::socket client;
  int calls = 0;  // connections the accept callback was given
  descriptor_shortage shortage;
  std::function<void()> remove;

  explicit paused_accept(fixture& f)
      : sockets(tornado::bind_sockets(f.ex(), 0, "127.0.0.1")), client(connected(f, sockets[0])),
        remove(tornado::add_accept_handler(sockets[0], [this](tcp::socket, tcp::endpoint) { ++calls; })) {
    BOOST_TEST_REQUIRE(f.run_until([&] { return !shortage.lines().empty(); }));
  }

private:
  static tcp::socket connected(fixture& f, const tcp::acceptor& a) {
    tcp::socket s(f.loop.context());
    s.connect(a.local_endpoint());
    return s;
  }
};

} // namespace

// ---- is_valid_ip ----

BOOST_AUTO_TEST_SUITE(IsValidIPTest)

BOOST_AUTO_TEST_CASE(test_is_valid_ip) {
  BOOST_TEST(tornado::is_valid_ip("127.0.0.1"));
  BOOST_TEST(tornado::is_valid_ip("4.4.4.4"));
  BOOST_TEST(tornado::is_valid_ip("::1"));
  BOOST_TEST(tornado::is_valid_ip("2620:0:1cfe:face:b00c::3"));
  BOOST_TEST(!tornado::is_valid_ip("www.google.com"));
  BOOST_TEST(!tornado::is_valid_ip("localhost"));
  BOOST_TEST(!tornado::is_valid_ip("4.4.4.4<"));
  BOOST_TEST(!tornado::is_valid_ip(" 127.0.0.1"));
  BOOST_TEST(!tornado::is_valid_ip(""));
  BOOST_TEST(!tornado::is_valid_ip(" "));
  BOOST_TEST(!tornado::is_valid_ip("\n"));
  BOOST_TEST(!tornado::is_valid_ip(std::string_view("\0", 1)));
  BOOST_TEST(!tornado::is_valid_ip(std::string(100, 'a')));
}

BOOST_AUTO_TEST_CASE(nul_inside_an_address_is_invalid) {
  // getaddrinfo would stop at the NUL and accept the prefix.
  BOOST_TEST(!tornado::is_valid_ip(std::string_view("127.0.0.1\0junk", 14)));
}

BOOST_AUTO_TEST_SUITE_END()

// ---- bind_sockets ----

BOOST_FIXTURE_TEST_SUITE(TestPortAllocation, fixture)

BOOST_AUTO_TEST_CASE(test_same_port_allocation) {
  auto sockets = tornado::bind_sockets(ex(), 0, "localhost");
  BOOST_TEST_REQUIRE(!sockets.empty());
  const auto port = local_endpoint(sockets[0]).port();
  BOOST_TEST(port != 0);
  for (auto& s : sockets) BOOST_TEST(local_endpoint(s).port() == port);
  for (auto& s : sockets) BOOST_TEST(local_endpoint(s).address().is_loopback());
}

BOOST_AUTO_TEST_CASE(test_reuse_port) {
  // Python's bind_unused_port(reuse_port=True), then the same port again.
  auto first = tornado::bind_sockets(ex(), 0, "127.0.0.1", AF_UNSPEC, tornado::default_backlog, true);
  BOOST_TEST_REQUIRE(first.size() == 1u);
  const auto port = local_endpoint(first[0]).port();
  auto sockets = tornado::bind_sockets(ex(), port, "127.0.0.1", AF_UNSPEC, tornado::default_backlog, true);
  BOOST_TEST_REQUIRE(!sockets.empty());
  for (auto& s : sockets) BOOST_TEST(local_endpoint(s).port() == port);
}

BOOST_AUTO_TEST_CASE(address_in_use_throws_naming_the_address) {
  auto first = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  const auto port = local_endpoint(first[0]).port();
  try {
    tornado::bind_sockets(ex(), port, "127.0.0.1");
    BOOST_FAIL("bound twice");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST((e.code() == asio::error::address_in_use));
    BOOST_TEST(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(sockets_listen) {
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  BOOST_TEST_REQUIRE(sockets.size() == 1u);
  tcp::socket client(loop.context());
  client.connect(local_endpoint(sockets[0]));  // completes in the backlog, before any accept
  tcp::socket server = sockets[0].accept();
  BOOST_TEST(server.remote_endpoint() == client.local_endpoint());
}

BOOST_AUTO_TEST_CASE(family_restricts_the_addresses) {
  auto v4 = tornado::bind_sockets(ex(), 0, "localhost", AF_INET);
  BOOST_TEST_REQUIRE(!v4.empty());
  for (auto& s : v4) BOOST_TEST(local_endpoint(s).address().is_v4());
  // A literal of the other family does not resolve.
  BOOST_CHECK_THROW(tornado::bind_sockets(ex(), 0, "127.0.0.1", AF_INET6), boost::system::system_error);
  BOOST_CHECK_THROW(tornado::bind_sockets(ex(), 0, "127.0.0.1", AF_UNIX), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(ipv6_sockets_are_v6_only) {
  if (!ipv6_loopback_available()) {
    BOOST_TEST_MESSAGE("skipped: no IPv6 loopback");
    return;
  }
  auto sockets = tornado::bind_sockets(ex(), 0, "::1");
  BOOST_TEST_REQUIRE(sockets.size() == 1u);
  BOOST_TEST(local_endpoint(sockets[0]).address() == asio::ip::address(asio::ip::address_v6::loopback()));
  asio::ip::v6_only v6_only;
  sockets[0].get_option(v6_only);
  BOOST_TEST(v6_only.value());
}

BOOST_AUTO_TEST_CASE(ipv4_and_ipv6_loopbacks_share_a_port) {
  // What bind_sockets' port sharing relies on (with IPV6_V6ONLY). Exercising the sharing itself
  // needs a name with both loopbacks, which "localhost" is not on many hosts.
  if (!ipv6_loopback_available()) {
    BOOST_TEST_MESSAGE("skipped: no IPv6 loopback");
    return;
  }
  auto v4 = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  const auto port = local_endpoint(v4[0]).port();
  // The same port is free for ::1 (v6-only), which is what sharing relies on.
  auto v6 = tornado::bind_sockets(ex(), port, "::1");
  BOOST_TEST(local_endpoint(v6[0]).port() == port);
}

BOOST_AUTO_TEST_CASE(unresolvable_address_throws) {
  // Numeric, so that no lookup leaves the host.
  try {
    tornado::bind_sockets(ex(), 0, "::1", AF_INET);
    BOOST_FAIL("resolved");
  } catch (const boost::system::system_error& e) {
    BOOST_TEST(std::string(e.what()).find("'::1'") != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---- bind_unix_socket ----

BOOST_FIXTURE_TEST_SUITE(UnixSocketTest, fixture)

BOOST_AUTO_TEST_CASE(test_bind_unix_socket) {
  temp_dir dir;
  const std::string file = dir / "sock";
  auto acceptor = tornado::bind_unix_socket(ex(), file);
  struct stat st;
  BOOST_TEST_REQUIRE(::stat(file.c_str(), &st) == 0);
  BOOST_TEST(S_ISSOCK(st.st_mode));
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  stream_protocol::socket client(loop.context());
  client.connect(stream_protocol::endpoint(file));
  auto server = acceptor.accept();
  BOOST_TEST(server.is_open());
}

BOOST_AUTO_TEST_CASE(mode_is_applied) {
  temp_dir dir;
  const std::string file = dir / "sock";
  auto acceptor = tornado::bind_unix_socket(ex(), file, 0660);
  struct stat st;
  BOOST_TEST_REQUIRE(::stat(file.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0660u);
}

BOOST_AUTO_TEST_CASE(stale_socket_is_replaced) {
  temp_dir dir;
  const std::string file = dir / "sock";
  {
    auto old = tornado::bind_unix_socket(ex(), file);
  }  // closed; the file stays behind
  BOOST_TEST(fs::exists(file));
  auto acceptor = tornado::bind_unix_socket(ex(), file);
  stream_protocol::socket client(loop.context());
  client.connect(stream_protocol::endpoint(file));
  BOOST_TEST(acceptor.accept().is_open());
}

BOOST_AUTO_TEST_CASE(other_files_are_not_removed) {
  temp_dir dir;
  const std::string file = dir / "data";
  std::ofstream(file) << "keep me";
  BOOST_CHECK_THROW(tornado::bind_unix_socket(ex(), file), std::invalid_argument);
  std::ifstream in(file);
  std::string content;
  std::getline(in, content);
  BOOST_TEST(content == "keep me");
}

BOOST_AUTO_TEST_CASE(path_too_long_throws) {
  temp_dir dir;
  BOOST_CHECK_THROW(tornado::bind_unix_socket(ex(), dir / std::string(200, 'x')),
                    boost::system::system_error);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- add_accept_handler ----

BOOST_FIXTURE_TEST_SUITE(AcceptHandlerTest, fixture)

BOOST_AUTO_TEST_CASE(accepts_several_connections) {
  test::log_capture logs;
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  std::vector<std::pair<tcp::socket, tcp::endpoint>> accepted;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket s, tcp::endpoint peer) {
    accepted.emplace_back(std::move(s), peer);
  });
  BOOST_TEST(accepted.empty());  // never from inside add_accept_handler
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(loop.context());
    clients.back().connect(local_endpoint(sockets[0]));
  }
  BOOST_TEST_REQUIRE(run_until([&] { return accepted.size() == 3; }));
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(accepted[i].second == clients[i].local_endpoint());
    BOOST_TEST(accepted[i].first.remote_endpoint() == clients[i].local_endpoint());
  }
  remove();
  loop_briefly();
  BOOST_TEST(logs.size() == 0u);  // stopping is not an error
}

BOOST_AUTO_TEST_CASE(remover_stops_accepting) {
  test::log_capture logs;
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  int calls = 0;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) { ++calls; });
  tcp::socket first(loop.context());
  first.connect(local_endpoint(sockets[0]));
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 1; }));
  remove();
  remove();  // idempotent
  tcp::socket second(loop.context());
  second.connect(local_endpoint(sockets[0]));  // waits in the backlog
  loop_briefly();
  BOOST_TEST(calls == 1);
  BOOST_TEST(logs.size() == 0u);
  // The connection is still there for whoever accepts next.
  BOOST_TEST(sockets[0].accept().remote_endpoint() == second.local_endpoint());
}

BOOST_AUTO_TEST_CASE(remover_called_from_the_callback) {
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  int calls = 0;
  std::function<void()> remove;
  remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) {
    ++calls;
    remove();
  });
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back(loop.context());
    clients.back().connect(local_endpoint(sockets[0]));
  }
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 1; }));
  loop_briefly();
  BOOST_TEST(calls == 1);
  BOOST_TEST(sockets[0].accept().remote_endpoint() == clients[1].local_endpoint());
}

BOOST_AUTO_TEST_CASE(remover_before_the_first_accept_runs) {
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  tcp::socket client(loop.context());
  client.connect(local_endpoint(sockets[0]));
  int calls = 0;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) { ++calls; });
  remove();  // the accept may have been made already: no callback either way
  loop_briefly();
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(copies_of_the_remover_share_the_loop) {
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  int calls = 0;
  std::function<void()> copy;
  {
    auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) { ++calls; });
    copy = remove;
  }
  copy();
  tcp::socket client(loop.context());
  client.connect(local_endpoint(sockets[0]));
  loop_briefly();
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(discarded_remover_keeps_accepting_until_the_acceptor_closes) {
  test::log_capture logs;
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  int calls = 0;
  (void)tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) { ++calls; });
  tcp::socket client(loop.context());
  client.connect(local_endpoint(sockets[0]));
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 1; }));
  sockets[0].close();  // ends the loop quietly and frees it
  loop_briefly();
  BOOST_TEST(calls == 1);
  BOOST_TEST(logs.size() == 0u);
}

BOOST_AUTO_TEST_CASE(callback_exception_is_logged_and_accepting_goes_on) {
  test::log_capture logs;
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  int calls = 0;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) {
    if (++calls == 1) throw std::runtime_error("boom");
  });
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back(loop.context());
    clients.back().connect(local_endpoint(sockets[0]));
  }
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 2; }));
  BOOST_TEST(logs.contains("tornado.application: Exception in accept callback: boom"));
  remove();
}

BOOST_AUTO_TEST_CASE(acceptor_closed_by_the_callback) {
  // Closing the acceptor from the accept callback ends the loop quietly, as closing it from
  // anywhere else does: no accept on the closed acceptor, nothing logged.
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  test::log_capture logs;
  int calls = 0;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) {
    ++calls;
    sockets[0].close();
  });
  tcp::socket client(loop.context());
  client.connect(local_endpoint(sockets[0]));
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 1; }));
  loop_briefly();
  BOOST_TEST(logs.size() == 0u, "logged: " << (logs.size() ? logs.lines().front() : ""));
  remove();
}

BOOST_AUTO_TEST_CASE(out_of_descriptors_pauses_and_retries) {
  paused_accept p(*this);
  BOOST_TEST(p.calls == 0);
  BOOST_TEST_REQUIRE(p.shortage.lines().size() == 1u);
  BOOST_TEST(p.shortage.lines()[0].find("tornado.general: Error accepting a connection on 127.0.0.1:") == 0u);
  BOOST_TEST(p.shortage.lines()[0].find("retrying in 5 ms") != std::string::npos);
  // Descriptors are back: the pending connection gets through after the pause.
  BOOST_TEST_REQUIRE(run_until([&] { return p.calls == 1; }));
  p.remove();
}

BOOST_AUTO_TEST_CASE(remover_during_the_pause) {
  paused_accept p(*this);
  p.remove();
  // Descriptors are back, but the cancelled pause accepts nothing.
  std::this_thread::sleep_for(20ms);
  loop_briefly();
  BOOST_TEST(p.calls == 0);
  BOOST_TEST(p.shortage.lines().size() == 1u);
}

BOOST_AUTO_TEST_CASE(acceptor_closed_during_the_pause) {
  // Closing the acceptor ends the loop quietly, also while it pauses: no accept is tried on
  // the closed acceptor, and nothing more is logged.
  paused_accept p(*this);
  p.sockets[0].close();
  std::this_thread::sleep_for(20ms);  // past the 5 ms pause
  loop_briefly();
  BOOST_TEST(p.calls == 0);
  BOOST_TEST(p.shortage.lines().size() == 1u, "logged: " << p.shortage.lines().back());
  p.remove();
}

BOOST_AUTO_TEST_CASE(io_context_destroyed_with_an_accept_pending) {
  std::function<void()> remove;
  int calls = 0;
  {
    asio::io_context ctx;
    auto sockets = tornado::bind_sockets(ctx.get_executor(), 0, "127.0.0.1");
    remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket, tcp::endpoint) { ++calls; });
  }  // the acceptor, then the context and the pending accept with it
  remove();  // nothing left to stop
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(accepts_on_a_unix_socket) {
  temp_dir dir;
  const std::string file = dir / "sock";
  auto acceptor = tornado::bind_unix_socket(ex(), file);
  int calls = 0;
  auto remove = tornado::add_accept_handler(acceptor, [&](stream_protocol::socket s, stream_protocol::endpoint) {
    BOOST_TEST(s.is_open());
    ++calls;
  });
  stream_protocol::socket client(loop.context());
  client.connect(stream_protocol::endpoint(file));
  BOOST_TEST_REQUIRE(run_until([&] { return calls == 1; }));
  remove();
}

BOOST_AUTO_TEST_SUITE_END()

// ---- Resolver ----

BOOST_FIXTURE_TEST_SUITE(ResolverTest, fixture)

BOOST_AUTO_TEST_CASE(test_localhost) {
  tornado::Resolver resolver(ex());
  auto addrinfo = loop.run_sync([&]() -> asio::awaitable<tornado::Resolver::endpoints> {
    co_return co_await resolver.resolve("localhost", 80, AF_UNSPEC);
  }, 10s);
  const tcp::endpoint expected(asio::ip::make_address("127.0.0.1"), 80);
  BOOST_TEST((std::find(addrinfo.begin(), addrinfo.end(), expected) != addrinfo.end()));
}

BOOST_AUTO_TEST_CASE(test_bad_host) {
  // Python's "an invalid domain" would ask the network; a literal of the wrong family fails
  // locally.
  tornado::Resolver resolver(ex());
  BOOST_CHECK_THROW(loop.run_sync([&]() -> asio::awaitable<void> {
    co_await resolver.resolve("::1", 80, AF_INET);
  }, 10s), boost::system::system_error);
}

BOOST_AUTO_TEST_CASE(empty_host_is_not_found) {
  // getaddrinfo() takes no name as the loopback addresses; Tornado's resolver finds no host
  // by the empty name (socket.gaierror), and neither does ours.
  tornado::Resolver resolver(ex());
  auto [ec, eps] = loop.run_sync([&]() -> asio::awaitable<std::tuple<error_code, tornado::Resolver::endpoints>> {
    co_return co_await resolver.resolve("", 80, AF_UNSPEC, asio::as_tuple(asio::use_awaitable));
  }, 10s);
  BOOST_TEST(ec == asio::error::host_not_found, ec.message());
  BOOST_TEST(eps.empty());
}

BOOST_AUTO_TEST_CASE(family_filters_the_addresses) {
  tornado::Resolver resolver(ex());
  auto v4 = loop.run_sync([&]() -> asio::awaitable<tornado::Resolver::endpoints> {
    co_return co_await resolver.resolve("localhost", 443, AF_INET);
  }, 10s);
  BOOST_TEST_REQUIRE(!v4.empty());
  for (auto& ep : v4) {
    BOOST_TEST(ep.address().is_v4());
    BOOST_TEST(ep.port() == 443);
  }
  auto v6 = loop.run_sync([&]() -> asio::awaitable<tornado::Resolver::endpoints> {
    co_return co_await resolver.resolve("::1", 443, AF_INET6);
  }, 10s);
  BOOST_TEST_REQUIRE(v6.size() == 1u);
  BOOST_TEST(v6[0] == tcp::endpoint(asio::ip::address_v6::loopback(), 443));
}

BOOST_AUTO_TEST_CASE(callback_token_is_never_called_inline) {
  tornado::Resolver resolver(ex());
  std::optional<error_code> result;
  tornado::Resolver::endpoints eps;
  resolver.resolve("127.0.0.1", 8080, AF_UNSPEC,
                   asio::bind_executor(loop.get_executor(), [&](error_code ec, tornado::Resolver::endpoints r) {
                     result = ec;
                     eps = std::move(r);
                   }));
  BOOST_TEST(!result);
  BOOST_TEST_REQUIRE(run_until([&] { return result.has_value(); }));
  BOOST_TEST(!*result);
  BOOST_TEST_REQUIRE(eps.size() == 1u);
  BOOST_TEST(eps[0] == tcp::endpoint(asio::ip::make_address("127.0.0.1"), 8080));
}

BOOST_AUTO_TEST_CASE(invalid_family_throws) {
  tornado::Resolver resolver(ex());
  BOOST_CHECK_THROW(resolver.resolve("localhost", 80, AF_UNIX, [](error_code, tornado::Resolver::endpoints) {}),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(cancellation_completes_at_once) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    tornado::Resolver resolver(ex());
    asio::cancellation_signal signal;
    std::optional<error_code> result;
    resolver.resolve("localhost", 80, AF_UNSPEC,
                     asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(loop.get_executor(),
                         [&](error_code ec, tornado::Resolver::endpoints r) {
                           result = ec;
                           BOOST_TEST(r.empty());
                         })));
    signal.emit(type);  // the lookup itself runs on
    BOOST_TEST(!result);
    loop_briefly();
    BOOST_TEST_REQUIRE(result.has_value());
    BOOST_TEST((*result == asio::error::operation_aborted));
    signal.emit(type);  // a second emit finds nothing to cancel
    // The lookup comes back to nobody.
    loop.context().restart();
    loop.context().run_for(1s);
  }
}

BOOST_AUTO_TEST_CASE(cancelled_coroutine_throws_cancelled_error) {
  // The cancellation is emitted in the call that starts the resolve, before the lookup (run on
  // Asio's resolver thread) can come back: from a coroutine, co_spawn would deliver the emit
  // through the loop, behind a lookup that finished first on a loaded machine. What the
  // coroutine would see is the error code's typed exception.
  tornado::Resolver resolver(ex());
  asio::cancellation_signal signal;
  std::optional<error_code> result;
  resolver.resolve("localhost", 80, AF_UNSPEC,
                   asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, tornado::Resolver::endpoints) {
                     result = ec;
                   }));
  signal.emit(asio::cancellation_type::terminal);
  BOOST_TEST_REQUIRE(run_until([&] { return result.has_value(); }));
  BOOST_TEST((*result == asio::error::operation_aborted));
  BOOST_CHECK_THROW(tornado::throw_error(*result), tornado::CancelledError);
}

BOOST_AUTO_TEST_CASE(close_aborts_pending_resolves) {
  tornado::Resolver resolver(ex());
  std::vector<error_code> results;
  auto record = asio::bind_executor(loop.get_executor(),
                                    [&](error_code ec, tornado::Resolver::endpoints) { results.push_back(ec); });
  resolver.resolve("localhost", 80, AF_UNSPEC, record);
  resolver.resolve("127.0.0.1", 80, AF_UNSPEC, record);
  resolver.close();
  BOOST_TEST(results.empty());  // posted
  loop_briefly();
  BOOST_TEST_REQUIRE(results.size() == 2u);
  for (auto& ec : results) BOOST_TEST((ec == asio::error::operation_aborted));
  // Still usable.
  resolver.resolve("127.0.0.1", 80, AF_UNSPEC, record);
  BOOST_TEST_REQUIRE(run_until([&] { return results.size() == 3; }));
  BOOST_TEST(!results[2]);
}

BOOST_AUTO_TEST_CASE(destroyed_with_resolves_pending) {
  std::optional<error_code> result;
  {
    tornado::Resolver resolver(ex());
    resolver.resolve("localhost", 80, AF_UNSPEC,
                     asio::bind_executor(loop.get_executor(),
                                         [&](error_code ec, tornado::Resolver::endpoints) { result = ec; }));
  }
  BOOST_TEST_REQUIRE(run_until([&] { return result.has_value(); }));
  BOOST_TEST((*result == asio::error::operation_aborted));
  loop.context().restart();
  loop.context().run_for(1s);
}

BOOST_AUTO_TEST_CASE(io_context_destroyed_with_resolves_pending) {
  bool called = false;
  {
    asio::io_context ctx;
    tornado::Resolver resolver(ctx.get_executor());
    resolver.resolve("localhost", 80, AF_UNSPEC, [&](error_code, tornado::Resolver::endpoints) { called = true; });
    resolver.resolve("localhost", 81, AF_UNSPEC, [&](error_code, tornado::Resolver::endpoints) { called = true; });
    resolver.close();
  }  // the posted completions and the lookups go unrun
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- TLS ----

namespace {

// A self-signed certificate for "localhost", made once per run with the openssl command.
struct tls_files {
  temp_dir dir;
  std::string cert, key, combined, other_key;
  bool ok = false;

  tls_files() {
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    combined = dir / "combined.pem";
    other_key = dir / "other_key.pem";
    const std::string quiet = " >/dev/null 2>&1";
    ok = std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                      " -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost"
                      " -keyout " + key + " -out " + cert + quiet).c_str()) == 0 &&
         std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out " +
                      other_key + quiet).c_str()) == 0;
    if (ok) {
      std::ofstream out(combined);
      out << std::ifstream(cert).rdbuf() << std::ifstream(key).rdbuf();
    }
  }

  static const tls_files* get() {
    static tls_files files;
    return files.ok ? &files : nullptr;
  }
};

#define REQUIRE_TLS_FILES(f)                                                 \
  const tls_files* f = tls_files::get();                                    \
  if (!f) {                                                                  \
    BOOST_TEST_MESSAGE("skipped: the openssl command could not make a certificate"); \
    return;                                                                  \
  }

template <class F>
std::string what_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no exception";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(SSLTest, fixture)

BOOST_AUTO_TEST_CASE(default_client_context) {
  auto ctx = tornado::ssl_default_client_context();
  BOOST_TEST(SSL_CTX_get_min_proto_version(ctx.native_handle()) == TLS1_2_VERSION);
  BOOST_TEST((SSL_CTX_get_verify_mode(ctx.native_handle()) & SSL_VERIFY_PEER) != 0);
}

BOOST_AUTO_TEST_CASE(default_server_context) {
  REQUIRE_TLS_FILES(f);
  auto ctx = tornado::ssl_default_server_context(f->cert, f->key);
  BOOST_TEST(SSL_CTX_get_min_proto_version(ctx.native_handle()) == TLS1_2_VERSION);
  BOOST_TEST(SSL_CTX_get0_certificate(ctx.native_handle()) != nullptr);
  // The key may sit in the certificate file.
  auto combined = tornado::ssl_default_server_context(f->combined);
  BOOST_TEST(SSL_CTX_get0_certificate(combined.native_handle()) != nullptr);
}

BOOST_AUTO_TEST_CASE(bad_files_throw_naming_the_file) {
  REQUIRE_TLS_FILES(f);
  const std::string missing = f->dir / "missing.pem";
  std::string what = what_of([&] { tornado::ssl_default_server_context(missing, f->key); });
  BOOST_TEST(what.find(missing) != std::string::npos);
  what = what_of([&] { tornado::ssl_default_server_context(f->cert, missing); });
  BOOST_TEST(what.find(missing) != std::string::npos);
  // A key that is not the certificate's.
  what = what_of([&] { tornado::ssl_default_server_context(f->cert, f->other_key); });
  BOOST_TEST(what.find(f->other_key) != std::string::npos);
  // Not a certificate at all.
  what = what_of([&] { tornado::ssl_default_server_context(f->key, f->key); });
  BOOST_TEST(what.find("certificate chain from '" + f->key + "'") != std::string::npos);
  tornado::ssl_options opts;
  opts.ca_certs = missing;
  what = what_of([&] { tornado::ssl_options_to_context(opts, false); });
  BOOST_TEST(what.find(missing) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(ssl_options_to_context_server) {
  REQUIRE_TLS_FILES(f);
  tornado::ssl_options opts;
  opts.certfile = f->cert;
  opts.keyfile = f->key;
  auto ctx = tornado::ssl_options_to_context(opts, true);
  BOOST_TEST(SSL_CTX_get_verify_mode(ctx.native_handle()) == SSL_VERIFY_NONE);
  BOOST_TEST(SSL_CTX_get_min_proto_version(ctx.native_handle()) == TLS1_2_VERSION);
  opts.cert_reqs = tornado::cert_requirement::required;
  opts.ca_certs = f->cert;
  auto mutual = tornado::ssl_options_to_context(opts, true);
  BOOST_TEST(SSL_CTX_get_verify_mode(mutual.native_handle()) ==
             (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT));
  opts.cert_reqs = tornado::cert_requirement::optional;
  auto optional = tornado::ssl_options_to_context(opts, true);
  BOOST_TEST(SSL_CTX_get_verify_mode(optional.native_handle()) == SSL_VERIFY_PEER);
}

BOOST_AUTO_TEST_CASE(ssl_options_to_context_client) {
  tornado::ssl_options opts;
  auto ctx = tornado::ssl_options_to_context(opts, false);
  BOOST_TEST((SSL_CTX_get_verify_mode(ctx.native_handle()) & SSL_VERIFY_PEER) != 0);
  opts.cert_reqs = tornado::cert_requirement::none;
  auto unverified = tornado::ssl_options_to_context(opts, false);
  BOOST_TEST(SSL_CTX_get_verify_mode(unverified.native_handle()) == SSL_VERIFY_NONE);
  opts.ssl_version = asio::ssl::context::tlsv13_client;
  auto v13 = tornado::ssl_options_to_context(opts, false);
  BOOST_TEST(SSL_CTX_get_min_proto_version(v13.native_handle()) == TLS1_3_VERSION);
}

BOOST_AUTO_TEST_CASE(ciphers) {
  tornado::ssl_options opts;
  opts.ciphers = "ECDHE+AESGCM";
  tornado::ssl_options_to_context(opts, false);
  opts.ciphers = "NO-SUCH-CIPHER";
  BOOST_TEST(what_of([&] { tornado::ssl_options_to_context(opts, false); }).find("NO-SUCH-CIPHER") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(keyfile_without_certfile_throws) {
  tornado::ssl_options opts;
  opts.keyfile = "key.pem";
  BOOST_CHECK_THROW(tornado::ssl_options_to_context(opts, true), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(contexts_complete_a_handshake) {
  REQUIRE_TLS_FILES(f);
  auto server_ctx = tornado::ssl_default_server_context(f->cert, f->key);
  tornado::ssl_options client_opts;
  client_opts.ca_certs = f->cert;  // trusts the self-signed certificate, and only it
  auto client_ctx = tornado::ssl_options_to_context(client_opts, false);

  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  std::optional<asio::ssl::stream<tcp::socket>> server;
  std::optional<error_code> server_result, client_result;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket s, tcp::endpoint) {
    server.emplace(std::move(s), server_ctx);
    server->async_handshake(asio::ssl::stream_base::server, [&](error_code ec) { server_result = ec; });
  });
  asio::ssl::stream<tcp::socket> client(loop.context(), client_ctx);
  client.set_verify_callback(asio::ssl::host_name_verification("localhost"));
  client.next_layer().connect(local_endpoint(sockets[0]));
  client.async_handshake(asio::ssl::stream_base::client, [&](error_code ec) { client_result = ec; });
  BOOST_TEST_REQUIRE(run_until([&] { return server_result && client_result; }));
  BOOST_TEST(!*server_result);
  BOOST_TEST(!*client_result);
  remove();
}

BOOST_AUTO_TEST_CASE(default_client_context_rejects_an_unknown_certificate) {
  REQUIRE_TLS_FILES(f);
  auto server_ctx = tornado::ssl_default_server_context(f->cert, f->key);
  auto client_ctx = tornado::ssl_default_client_context();
  auto sockets = tornado::bind_sockets(ex(), 0, "127.0.0.1");
  std::optional<asio::ssl::stream<tcp::socket>> server;
  std::optional<error_code> server_result, client_result;
  auto remove = tornado::add_accept_handler(sockets[0], [&](tcp::socket s, tcp::endpoint) {
    server.emplace(std::move(s), server_ctx);
    server->async_handshake(asio::ssl::stream_base::server, [&](error_code ec) { server_result = ec; });
  });
  asio::ssl::stream<tcp::socket> client(loop.context(), client_ctx);
  client.next_layer().connect(local_endpoint(sockets[0]));
  client.async_handshake(asio::ssl::stream_base::client, [&](error_code ec) { client_result = ec; });
  BOOST_TEST_REQUIRE(run_until([&] { return server_result && client_result; }));
  BOOST_TEST(bool(*client_result));  // self-signed: not in the system's CAs
  remove();
}

BOOST_AUTO_TEST_SUITE_END()
