#ifndef BOOST_TORNADO_IMPL_NETUTIL_IPP
#define BOOST_TORNADO_IMPL_NETUTIL_IPP

#include <boost/tornado/netutil.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/ssl/error.hpp>
#include <algorithm>
#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <string>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace boost::tornado {
namespace detail {

#if defined(SO_REUSEPORT)
// Asio has no portable name for it.
class reuse_port_option {
public:
  explicit reuse_port_option(bool on) noexcept : value_(on ? 1 : 0) {}
  template <class Protocol> int level(const Protocol&) const noexcept { return SOL_SOCKET; }
  template <class Protocol> int name(const Protocol&) const noexcept { return SO_REUSEPORT; }
  template <class Protocol> const void* data(const Protocol&) const noexcept { return &value_; }
  template <class Protocol> std::size_t size(const Protocol&) const noexcept { return sizeof(value_); }

private:
  int value_;
};
#endif

inline std::string endpoint_string(const boost::asio::ip::tcp::endpoint& ep) {
  std::ostringstream out;
  out << ep;
  return out.str();
}

// Without Asio's source location, which would bury the message under a function signature.
inline void throw_if(const boost::system::error_code& ec, const std::string& what) {
  if (ec) throw boost::system::system_error(boost::system::error_code(ec.value(), ec.category()), what);
}

BOOST_TORNADO_DECL accept_action accept_error_action(const boost::system::error_code& ec) noexcept {
  namespace errc = boost::system::errc;
  if (ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
      ec == errc::no_buffer_space || ec == errc::not_enough_memory)
    return accept_action::back_off;
  // A connection that failed while it waited in the backlog, and, on Linux, a new connection's
  // pending network error: accept(2) advises to retry.
  if (ec == errc::connection_aborted || ec == errc::connection_reset || ec == errc::interrupted ||
      ec == errc::operation_would_block || ec == errc::resource_unavailable_try_again ||
      ec == errc::protocol_error || ec == errc::network_down || ec == errc::network_unreachable ||
      ec == errc::host_unreachable || ec == errc::no_protocol_option ||
      ec == errc::operation_not_supported || ec == errc::operation_not_permitted ||
      ec == errc::timed_out)
    return accept_action::retry;
#if defined(ENONET) && defined(EHOSTDOWN)
  if (ec.category() == boost::system::system_category() &&
      (ec.value() == ENONET || ec.value() == EHOSTDOWN))
    return accept_action::retry;
#endif
  return accept_action::stop;
}

// The last OpenSSL failure, for a function that reports none of its own.
inline boost::system::error_code openssl_error() {
  const unsigned long e = ::ERR_get_error();
  ::ERR_clear_error();
  if (e == 0) return make_error_code(boost::system::errc::invalid_argument);
  return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
}

inline void require_tls12(boost::asio::ssl::context& ctx) {
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1)
    throw boost::system::system_error(openssl_error(), "cannot require TLS 1.2");
}

inline void load_cert_chain(boost::asio::ssl::context& ctx, const std::string& certfile,
                            const std::string& keyfile) {
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(certfile, ec);
  throw_if(ec, "cannot load a certificate chain from '" + certfile + "'");
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  ctx.use_private_key_file(key, boost::asio::ssl::context::pem, ec);
  throw_if(ec, "cannot load a private key from '" + key + "'");
  if (::SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw boost::system::system_error(openssl_error(), "the private key in '" + key +
                                                           "' does not match the certificate in '" +
                                                           certfile + "'");
}

} // namespace detail

BOOST_TORNADO_DECL std::vector<boost::asio::ip::tcp::acceptor>
bind_sockets(const boost::asio::any_io_executor& ex, unsigned short port, std::string_view address,
             int family, int backlog, bool reuse_port) {
  using boost::asio::ip::tcp;
  using boost::system::error_code;
#if !defined(SO_REUSEPORT)
  if (reuse_port) throw std::invalid_argument("the platform doesn't support SO_REUSEPORT");
#endif
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
    throw std::invalid_argument("bind_sockets: family must be AF_UNSPEC, AF_INET or AF_INET6");

  const std::string host(address);
  const std::string service = std::to_string(port);
  const auto flags = tcp::resolver::passive | tcp::resolver::numeric_service;
  tcp::resolver resolver(ex);
  error_code ec;
  auto results = family == AF_UNSPEC
                     ? resolver.resolve(host, service, flags, ec)
                     : resolver.resolve(family == AF_INET ? tcp::v4() : tcp::v6(), host, service, flags, ec);
  detail::throw_if(ec, "bind_sockets: cannot resolve '" + host + "'");

  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : results)
    if (std::find(endpoints.begin(), endpoints.end(), entry.endpoint()) == endpoints.end())
      endpoints.push_back(entry.endpoint());
  std::stable_sort(endpoints.begin(), endpoints.end(), [](const tcp::endpoint& a, const tcp::endpoint& b) {
    return a.protocol().family() < b.protocol().family();
  });

  std::vector<tcp::acceptor> sockets;
  unsigned short bound_port = 0;
  for (tcp::endpoint ep : endpoints) {
    tcp::acceptor sock(ex);
    sock.open(ep.protocol(), ec);
    if (ec == boost::asio::error::address_family_not_supported) continue;  // no IPv6 here
    detail::throw_if(ec, "bind_sockets: cannot open a socket for " + detail::endpoint_string(ep));
#if !defined(_WIN32)
    // Windows' SO_REUSEADDR would let another process steal the port.
    sock.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ec != boost::asio::error::no_protocol_option)
      detail::throw_if(ec, "bind_sockets: cannot set SO_REUSEADDR");
#endif
#if defined(SO_REUSEPORT)
    if (reuse_port) {
      sock.set_option(detail::reuse_port_option(true), ec);
      detail::throw_if(ec, "bind_sockets: cannot set SO_REUSEPORT");
    }
#endif
    // Linux's IPv6 sockets take IPv4 too, which would keep "::" and "0.0.0.0" from both
    // binding the same port; elsewhere they must be separate anyway.
    if (ep.address().is_v6()) {
      sock.set_option(boost::asio::ip::v6_only(true), ec);
      detail::throw_if(ec, "bind_sockets: cannot set IPV6_V6ONLY");
    }
    if (ep.port() == 0 && bound_port != 0) ep.port(bound_port);
    sock.bind(ep, ec);
    // Where IPv6 is half disabled (Docker's default), "localhost" resolves to ::1 but ::1
    // cannot be bound. Tornado skips it in this one case; anywhere else it is a real error.
    if (ec == boost::system::errc::address_not_available && host == "localhost" &&
        ep.address() == boost::asio::ip::address_v6::loopback())
      continue;
    detail::throw_if(ec, "bind_sockets: cannot bind to " + detail::endpoint_string(ep));
    bound_port = sock.local_endpoint().port();
    sock.listen(backlog, ec);
    detail::throw_if(ec, "bind_sockets: cannot listen on " + detail::endpoint_string(ep));
    sockets.push_back(std::move(sock));
  }
  return sockets;
}

#if defined(BOOST_ASIO_HAS_LOCAL_SOCKETS)
BOOST_TORNADO_DECL boost::asio::local::stream_protocol::acceptor
bind_unix_socket(const boost::asio::any_io_executor& ex, const std::string& file, int mode, int backlog) {
  using boost::asio::local::stream_protocol;
  using boost::system::error_code;
  const auto fail = [&file](int err, const char* what) {
    throw boost::system::system_error(err, boost::system::system_category(),
                                      std::string("bind_unix_socket: ") + what + " " + file);
  };
  // Made first: a path too long for a socket fails before a stale socket is removed.
  stream_protocol::endpoint ep;
  try {
    ep = stream_protocol::endpoint(file);
  } catch (const boost::system::system_error& e) {
    throw boost::system::system_error(e.code(), "bind_unix_socket: invalid path " + file);
  }
  stream_protocol::acceptor sock(ex, stream_protocol());
  error_code ec;
  sock.set_option(stream_protocol::acceptor::reuse_address(true), ec);
  if (ec != boost::asio::error::no_protocol_option)
    detail::throw_if(ec, "bind_unix_socket: cannot set SO_REUSEADDR");
  struct stat st;
  if (::stat(file.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::invalid_argument("File " + file + " exists and is not a socket");
    if (::unlink(file.c_str()) != 0 && errno != ENOENT) fail(errno, "cannot remove the stale socket");
  } else if (errno != ENOENT) {
    fail(errno, "cannot stat");
  }
  sock.bind(ep, ec);
  detail::throw_if(ec, "bind_unix_socket: cannot bind to " + file);
  if (::chmod(file.c_str(), static_cast<mode_t>(mode)) != 0) fail(errno, "cannot chmod");
  sock.listen(backlog, ec);
  detail::throw_if(ec, "bind_unix_socket: cannot listen on " + file);
  return sock;
}
#endif

BOOST_TORNADO_DECL bool is_valid_ip(std::string_view ip) {
  // getaddrinfo takes an empty string for localhost and stops at a NUL.
  if (ip.empty() || ip.find('\0') != std::string_view::npos) return false;
  const std::string host(ip);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), "0", &hints, &res);
  if (res) ::freeaddrinfo(res);
  if (rc == EAI_MEMORY) throw std::bad_alloc();
  return rc == 0;
}

BOOST_TORNADO_DECL Resolver::Resolver(const executor_type& ex) : resolver_(ex) {}

BOOST_TORNADO_DECL Resolver::~Resolver() { close(); }

BOOST_TORNADO_DECL void Resolver::close() {
  // Each completion unlinks its node.
  while (detail::list_node* n = pending_.front()) {
    auto* op = static_cast<detail::resolve_op_base*>(n);
    op->abort(op);
  }
  resolver_.cancel();
}

BOOST_TORNADO_DECL boost::asio::ssl::context ssl_options_to_context(const ssl_options& opts,
                                                                    bool server_side) {
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(opts.ssl_version.value_or(server_side ? ssl::context::tls_server
                                                         : ssl::context::tls_client));
  if (!opts.ssl_version) detail::require_tls12(ctx);
  if (!opts.certfile.empty())
    detail::load_cert_chain(ctx, opts.certfile, opts.keyfile);
  else if (!opts.keyfile.empty())
    throw std::invalid_argument("ssl_options: keyfile '" + opts.keyfile + "' without a certfile");
  const cert_requirement reqs =
      opts.cert_reqs.value_or(server_side ? cert_requirement::none : cert_requirement::required);
  switch (reqs) {
  case cert_requirement::none: ctx.set_verify_mode(ssl::verify_none); break;
  case cert_requirement::optional: ctx.set_verify_mode(ssl::verify_peer); break;
  case cert_requirement::required:
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    break;
  }
  boost::system::error_code ec;
  if (!opts.ca_certs.empty()) {
    ctx.load_verify_file(opts.ca_certs, ec);
    detail::throw_if(ec, "cannot load CA certificates from '" + opts.ca_certs + "'");
  } else if (!server_side && reqs != cert_requirement::none) {
    // A verifying client with no CA of its own would trust nobody: use the system's.
    ctx.set_default_verify_paths(ec);
    detail::throw_if(ec, "cannot load the system's CA certificates");
  }
  if (!opts.ciphers.empty() && ::SSL_CTX_set_cipher_list(ctx.native_handle(), opts.ciphers.c_str()) != 1)
    throw boost::system::system_error(detail::openssl_error(),
                                      "invalid cipher list '" + opts.ciphers + "'");
  return ctx;
}

BOOST_TORNADO_DECL boost::asio::ssl::context ssl_default_client_context() {
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(ssl::context::tls_client);
  detail::require_tls12(ctx);
  boost::system::error_code ec;
  ctx.set_default_verify_paths(ec);
  detail::throw_if(ec, "cannot load the system's CA certificates");
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

BOOST_TORNADO_DECL boost::asio::ssl::context ssl_default_server_context(const std::string& certfile,
                                                                        const std::string& keyfile) {
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_server);
  detail::require_tls12(ctx);
  detail::load_cert_chain(ctx, certfile, keyfile);
  return ctx;
}

} // namespace boost::tornado

#endif
