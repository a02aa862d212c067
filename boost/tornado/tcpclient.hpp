// A TCP client that resolves a host and connects to it, racing IPv4 against IPv6 as Tornado's
// "happy eyeballs" does, optionally finishing with a TLS handshake (tornado.tcpclient).
#ifndef BOOST_TORNADO_TCPCLIENT_HPP
#define BOOST_TORNADO_TCPCLIENT_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

namespace boost::tornado {

struct connect_options {
  int family = AF_UNSPEC;          // AF_INET or AF_INET6 to use one family only
  stream_options stream;           // for the stream handed back
  std::string source_ip;           // bind the local end to this address...
  unsigned short source_port = 0;  // ...and port, when set
  // TLS only: check the server's certificate and name. Turning it off is an explicit choice.
  bool verify = true;
  // One relative timeout for resolution, connection and handshake together (TimeoutError).
  std::chrono::steady_clock::duration timeout = std::chrono::steady_clock::duration::zero();  // zero: none
};

// connect() completes with the connected stream. Addresses are tried in the resolver's order,
// one family first; the other family's first attempt starts after 0.3 s, or as soon as an
// attempt fails. The first connection wins and the others are closed. A failure completes
// with the last attempt's error -- a coroutine sees StreamClosedError whose real_error() is it
// (connection refused, ...), TimeoutError on timeout, and a resolution failure as the
// resolver's system_error.
class TCPClient {
public:
  using executor_type = boost::asio::any_io_executor;
  // How long one family has before the other is tried too.
  static constexpr std::chrono::milliseconds happy_eyeballs_delay{300};

  explicit TCPClient(const executor_type& ex) : ex_(ex) {}
  executor_type get_executor() const noexcept { return ex_; }

  // void(error_code, IOStream). (Overloads rather than a defaulted options argument: GCC 12
  // miscompiles a defaulted class-type argument of a call inside a co_await expression.)
  template <class Token = use_awaitable_t>
    requires(!std::is_same_v<std::decay_t<Token>, connect_options>)
  auto connect(std::string_view host, unsigned short port, Token&& token = {}) {
    return connect(host, port, connect_options(), std::forward<Token>(token));
  }
  template <class Token = use_awaitable_t>
  auto connect(std::string_view host, unsigned short port, const connect_options& options, Token&& token = {});
  // The same, then a client TLS handshake verifying the peer as `host`: void(error_code, SSLIOStream)
  template <class Token = use_awaitable_t>
    requires(!std::is_same_v<std::decay_t<Token>, connect_options>)
  auto connect(std::string_view host, unsigned short port, boost::asio::ssl::context& ssl_context, Token&& token = {}) {
    return connect(host, port, ssl_context, connect_options(), std::forward<Token>(token));
  }
  template <class Token = use_awaitable_t>
  auto connect(std::string_view host, unsigned short port, boost::asio::ssl::context& ssl_context,
               const connect_options& options, Token&& token = {});

private:
  executor_type ex_;
};

} // namespace boost::tornado

#include <boost/tornado/impl/tcpclient.hpp>

#endif
