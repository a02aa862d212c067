// A TCP server handing each accepted connection to a handler as an IOStream, or as an
// SSLIOStream when given a TLS context (tornado.tcpserver).
#ifndef BOOST_TORNADO_TCPSERVER_HPP
#define BOOST_TORNADO_TCPSERVER_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/detail/spawn.hpp>
#include <boost/tornado/iostream.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/netutil.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <list>
#include <string_view>
#include <type_traits>
#include <vector>

namespace boost::tornado {

namespace detail {
template <class Handler> struct stream_handler_holder;
} // namespace detail

// handler(stream, address) runs for every connection: a coroutine (returning
// asio::awaitable<void>, spawned on the server's executor) or a plain callback. Exceptions
// escaping it are logged and go no further. With a TLS context the stream is an SSLIOStream
// whose handshake is under way: its first read or write waits for it (or wait_for_handshake()).
class TCPServer {
public:
  template <class Handler>
  TCPServer(const boost::asio::any_io_executor& ex, Handler handler, stream_options options = {});
  template <class Handler>
  TCPServer(const boost::asio::any_io_executor& ex, Handler handler, boost::asio::ssl::context& ssl_context,
            stream_options options = {});
  TCPServer(const TCPServer&) = delete;
  TCPServer& operator=(const TCPServer&) = delete;
  ~TCPServer() { stop(); }

  // bind_sockets(...) and accept on them now.
  void listen(unsigned short port, std::string_view address = {}, int family = AF_UNSPEC,
              int backlog = default_backlog, bool reuse_port = false) {
    add_sockets(bind_sockets(ex_, port, address, family, backlog, reuse_port));
  }
  // Accepts on listening sockets made elsewhere (bind_sockets, bind_unix_socket is not TCP).
  void add_sockets(std::vector<boost::asio::ip::tcp::acceptor> sockets) {
    for (auto& s : sockets) add_socket(std::move(s));
  }
  void add_socket(boost::asio::ip::tcp::acceptor socket);
  // Binds now and accepts from start() (Tornado's bind + start, in this one process).
  void bind(unsigned short port, std::string_view address = {}, int family = AF_UNSPEC,
            int backlog = default_backlog, bool reuse_port = false) {
    for (auto& s : bind_sockets(ex_, port, address, family, backlog, reuse_port)) pending_.push_back(std::move(s));
  }
  void start() {
    auto pending = std::move(pending_);
    pending_.clear();
    add_sockets(std::move(pending));
  }
  // Stops accepting and closes the listening sockets; open connections are left alone.
  // Idempotent.
  void stop();

  // The addresses the server accepts (or, bound, will accept) on: a port 0 listen's real port, say.
  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;

private:
  template <class Handler, class Stream>
  void run_handler(detail::stream_handler_holder<Handler>& holder, Stream stream,
                   const boost::asio::ip::tcp::endpoint& address);

  boost::asio::any_io_executor ex_;
  std::function<void(boost::asio::ip::tcp::socket, boost::asio::ip::tcp::endpoint)> on_connection_;
  std::list<boost::asio::ip::tcp::acceptor> sockets_;  // stable: the accept loops refer to them
  std::vector<std::function<void()>> removers_;
  std::vector<boost::asio::ip::tcp::acceptor> pending_;
};

} // namespace boost::tornado

#include <boost/tornado/impl/tcpserver.hpp>

#endif
