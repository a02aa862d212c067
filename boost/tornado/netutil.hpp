// Tornado's network utilities (tornado.netutil): listening sockets for servers, an accept
// loop, asynchronous name resolution, IP address validation and TLS contexts.
#ifndef BOOST_TORNADO_NETUTIL_HPP
#define BOOST_TORNADO_NETUTIL_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/detail/list.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::tornado {

// The listen backlog Tornado uses by default.
inline constexpr int default_backlog = 128;

// Listening sockets for `port` on every address `address` resolves to (passive: an empty
// address means every interface, IPv4 and IPv6). family AF_INET or AF_INET6 restricts the
// addresses. Port 0 picks a free port, the same for all the sockets. reuse_port sets
// SO_REUSEPORT (std::invalid_argument where the platform lacks it). Errors throw
// boost::system::system_error naming the address.
BOOST_TORNADO_DECL std::vector<boost::asio::ip::tcp::acceptor>
bind_sockets(const boost::asio::any_io_executor& ex, unsigned short port, std::string_view address = {},
             int family = AF_UNSPEC, int backlog = default_backlog, bool reuse_port = false);

#if defined(BOOST_ASIO_HAS_LOCAL_SOCKETS)
// A listening unix socket at `file`, with permissions `mode`. A stale socket file is replaced;
// any other existing file is refused (std::invalid_argument).
BOOST_TORNADO_DECL boost::asio::local::stream_protocol::acceptor
bind_unix_socket(const boost::asio::any_io_executor& ex, const std::string& file, int mode = 0600,
                 int backlog = default_backlog);
#endif

// Accepts connections on `acceptor` until the returned remover is called, running
// callback(socket, peer_endpoint) on the acceptor's executor for each. The remover is
// idempotent, may be called from inside the callback, and no callback runs after it. Use it on
// the acceptor's thread and while the acceptor exists. The loop refers to the acceptor: it must
// not move (keep acceptors in a std::list, not a growing vector). Transient errors are retried.
template <class Acceptor, class Callback>
std::function<void()> add_accept_handler(Acceptor& acceptor, Callback callback);

// Whether `ip` is a numeric IPv4 or IPv6 address (as getaddrinfo's AI_NUMERICHOST reads it).
BOOST_TORNADO_DECL bool is_valid_ip(std::string_view ip);

// Asynchronous getaddrinfo (Tornado's DefaultLoopResolver). Use it on its executor's thread.
class Resolver {
public:
  using executor_type = boost::asio::any_io_executor;
  using endpoints = std::vector<boost::asio::ip::tcp::endpoint>;

  explicit Resolver(const executor_type& ex);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  // Pending resolves complete with operation_aborted.
  ~Resolver();

  executor_type get_executor() noexcept { return resolver_.get_executor(); }

  // The addresses of host:port, restricted to `family` unless AF_UNSPEC:
  // void(error_code, endpoints). Cancellable at once, although the lookup itself runs on.
  template <class Token = use_awaitable_t>
  auto resolve(std::string host, unsigned short port, int family = AF_UNSPEC, Token&& token = {});

  // Completes the pending resolves with operation_aborted. The Resolver stays usable.
  void close();

private:
  struct initiate_resolve;
  boost::asio::ip::tcp::resolver resolver_;
  detail::intrusive_list pending_;
};

// ---- TLS ----

// Python's ssl.CERT_NONE, CERT_OPTIONAL and CERT_REQUIRED.
enum class cert_requirement { none, optional, required };

// Tornado's ssl_options dictionary. Empty strings and unset values leave OpenSSL's default.
struct ssl_options {
  std::string certfile;  // PEM certificate chain
  std::string keyfile;   // PEM private key; empty: the key is in certfile
  std::string ca_certs;  // PEM CA certificates to verify the peer with
  std::string ciphers;   // OpenSSL cipher list (TLS 1.2 and older)
  // Unset: required for a client, none for a server.
  std::optional<cert_requirement> cert_reqs;
  // Unset: TLS 1.2 or newer, negotiated.
  std::optional<boost::asio::ssl::context::method> ssl_version;
};

// A context for one side from Tornado's ssl_options. A verifying client without ca_certs uses
// the system's CAs. Hostname checking belongs to the stream.
BOOST_TORNADO_DECL boost::asio::ssl::context ssl_options_to_context(const ssl_options& opts,
                                                                    bool server_side);
// TLS 1.2 or newer, the server's certificate verified against the system's CAs.
BOOST_TORNADO_DECL boost::asio::ssl::context ssl_default_client_context();
// TLS 1.2 or newer, with this certificate chain and key (keyfile empty: in certfile).
BOOST_TORNADO_DECL boost::asio::ssl::context ssl_default_server_context(const std::string& certfile,
                                                                        const std::string& keyfile = {});

} // namespace boost::tornado

#include <boost/tornado/impl/netutil.hpp>

#ifdef BOOST_TORNADO_HEADER_ONLY
#include <boost/tornado/impl/netutil.ipp>
#endif

#endif
