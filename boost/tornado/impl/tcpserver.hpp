#ifndef BOOST_TORNADO_IMPL_TCPSERVER_HPP
#define BOOST_TORNADO_IMPL_TCPSERVER_HPP

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace boost::tornado {
namespace detail {
template <class T>
struct is_awaitable_void : std::false_type {};
template <class Executor>
struct is_awaitable_void<boost::asio::awaitable<void, Executor>> : std::true_type {};
template <class T>
struct is_some_awaitable : std::false_type {};
template <class T, class Executor>
struct is_some_awaitable<boost::asio::awaitable<T, Executor>> : std::true_type {};
// A handler is a coroutine returning nothing, or a plain callback.
template <class R>
inline constexpr bool valid_stream_handler_result = !is_some_awaitable<R>::value || is_awaitable_void<R>::value;

// How the server holds its handler. A connection's coroutine can outlive the server, and a
// coroutine lambda's captures live in the lambda, not in the coroutine's frame: a handler with
// state is shared with every coroutine it starts. One without (a function, a lambda capturing
// nothing) is held as it is, and idle connections carry nothing for it.
template <class Handler>
struct stream_handler_holder {
  static constexpr bool shared = std::is_class_v<Handler> && !std::is_empty_v<Handler>;
  std::conditional_t<shared, std::shared_ptr<Handler>, Handler> h;
  explicit stream_handler_holder(Handler handler) : h(hold(std::move(handler))) {}
  static auto hold(Handler&& handler) {
    if constexpr (shared) return std::make_shared<Handler>(std::move(handler));
    else return Handler(std::move(handler));
  }
  Handler& get() noexcept {
    if constexpr (shared) return *h;
    else return h;
  }
  // What a coroutine keeps while it runs.
  auto keep() const {
    if constexpr (shared) return h;
    else return nullptr;
  }
};
} // namespace detail

// Hands the stream to the handler: a coroutine is spawned on the server's executor, a plain
// callback runs here; what escapes either is logged.
template <class Handler, class Stream>
void TCPServer::run_handler(detail::stream_handler_holder<Handler>& holder, Stream stream,
                            const boost::asio::ip::tcp::endpoint& address) {
  Handler& handler = holder.get();
  using result_t = std::invoke_result_t<Handler&, Stream, boost::asio::ip::tcp::endpoint>;
  static_assert(detail::valid_stream_handler_result<result_t>, "a coroutine handler must return asio::awaitable<void>");
  if constexpr (detail::is_awaitable_void<result_t>::value) {
    detail::spawn(ex_, handler(std::move(stream), address), [keep = holder.keep()](std::exception_ptr e) {
      if (e) log_exception(app_log, "Exception in stream handler", e);
    });
  } else {
    try {
      handler(std::move(stream), address);
    } catch (...) {
      log_exception(app_log, "Error in connection callback", std::current_exception());
    }
  }
}

template <class Handler>
TCPServer::TCPServer(const boost::asio::any_io_executor& ex, Handler handler, stream_options options) : ex_(ex) {
  on_connection_ = [this, handler = detail::stream_handler_holder<Handler>(std::move(handler)), options](
                       boost::asio::ip::tcp::socket socket, boost::asio::ip::tcp::endpoint address) mutable {
    run_handler(handler, IOStream(std::move(socket), options), address);
  };
}

template <class Handler>
TCPServer::TCPServer(const boost::asio::any_io_executor& ex, Handler handler, boost::asio::ssl::context& ssl_context,
                     stream_options options)
    : ex_(ex) {
  on_connection_ = [this, handler = detail::stream_handler_holder<Handler>(std::move(handler)), options,
                    ctx = &ssl_context](
                       boost::asio::ip::tcp::socket socket, boost::asio::ip::tcp::endpoint address) mutable {
    // The handshake starts now; the handler's first I/O waits for it, as Tornado's lazy one.
    run_handler(handler, SSLIOStream(std::move(socket), *ctx, true, {}, true, options), address);
  };
}

inline void TCPServer::add_socket(boost::asio::ip::tcp::acceptor socket) {
  auto& s = sockets_.emplace_back(std::move(socket));
  removers_.push_back(add_accept_handler(
      s, [this](boost::asio::ip::tcp::socket conn, boost::asio::ip::tcp::endpoint address) {
        on_connection_(std::move(conn), address);
      }));
}

inline void TCPServer::stop() {
  auto removers = std::move(removers_);
  removers_.clear();
  for (auto& remove : removers) remove();
  for (auto& s : sockets_) {
    boost::system::error_code ignored;
    s.close(ignored);
  }
  sockets_.clear();
  pending_.clear();
}

inline std::vector<boost::asio::ip::tcp::endpoint> TCPServer::endpoints() const {
  std::vector<boost::asio::ip::tcp::endpoint> out;
  auto add = [&](const boost::asio::ip::tcp::acceptor& s) {
    boost::system::error_code ec;
    auto ep = s.local_endpoint(ec);
    if (!ec) out.push_back(ep);
  };
  for (auto& s : sockets_) add(s);
  for (auto& s : pending_) add(s);  // bound, not started yet
  return out;
}

} // namespace boost::tornado

#endif
