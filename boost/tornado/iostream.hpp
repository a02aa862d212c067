// Buffered asynchronous streams (tornado.iostream): delimiter, regex, byte-count, into-buffer
// and until-close reads, queued gathered writes, over any Asio stream -- TCP and local
// sockets (IOStream), TLS (SSLIOStream) and pipes (PipeIOStream).
#ifndef BOOST_TORNADO_IOSTREAM_HPP
#define BOOST_TORNADO_IOSTREAM_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/error.hpp>
#include <boost/tornado/detail/stream_state.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/regex.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace boost::tornado {

// (Optional arguments of class type are trivial ones, or overloads: GCC 12 miscompiles a
// defaulted std::string argument of a call inside a co_await expression.)

// The stream's reads and writes complete with void(error_code, std::string) (reads),
// void(error_code, std::size_t) (read_into) and void(error_code) (writes). A stream that is
// or gets closed fails them with error::stream_closed -- StreamClosedError for a coroutine,
// whose real_error() (and the stream's error()) says why it closed.
//
// A stream is used from one thread at a time (as an Asio socket). It is movable; destroying it
// closes it, and its pending operations then fail with StreamClosedError.
template <class Stream>
class BaseIOStream {
public:
  using next_layer_type = Stream;
  using executor_type = typename Stream::executor_type;
  using streaming_callback = std::function<void(std::string_view)>;

  explicit BaseIOStream(Stream stream, stream_options options = {});
  BaseIOStream(BaseIOStream&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  BaseIOStream& operator=(BaseIOStream&& other) noexcept;
  ~BaseIOStream();

  executor_type get_executor() const { return state_->stream_.get_executor(); }
  // The underlying stream (Tornado's `stream.socket`).
  Stream& socket() noexcept { return state_->stream_; }
  const stream_options& options() const noexcept { return state_->opts_; }

  // Exactly n bytes; with partial, 1..n bytes as soon as any are buffered. read_bytes(0)
  // completes with an empty string.
  template <class Token = use_awaitable_t>
  auto read_bytes(std::size_t n, bool partial = false, Token&& token = {});
  // n bytes handed to `chunk` as they arrive; completes with an empty string.
  template <class Chunk, class Token = use_awaitable_t>
    requires std::is_invocable_v<Chunk&, std::string_view>
  auto read_bytes(std::size_t n, Chunk chunk, Token&& token = {});
  // Up to and including the delimiter. Unsatisfiable (the stream is closed with
  // UnsatisfiableReadError as its error) when the delimiter ends past max_bytes, or is not
  // found with more than max_bytes buffered.
  template <class Token = use_awaitable_t>
  auto read_until(std::string_view delimiter, std::size_t max_bytes = no_limit, Token&& token = {});
  // Up to and including the first match of `regex` (Boost.Regex, partial matching: the search
  // resumes where it stopped).
  template <class Token = use_awaitable_t>
  auto read_until_regex(const boost::regex& regex, std::size_t max_bytes = no_limit, Token&& token = {});
  // Fills `buffer` (which must outlive the read): buffered data first; completes with the
  // count, all of it or, with partial, as soon as there is any.
  template <class Token = use_awaitable_t>
  auto read_into(boost::asio::mutable_buffer buffer, bool partial = false, Token&& token = {});
  // Everything until the peer closes; at once with what is left when already closed.
  template <class Token = use_awaitable_t>
    requires(!std::is_invocable_v<Token&, std::string_view>)
  auto read_until_close(Token&& token = {});
  template <class Chunk, class Token = use_awaitable_t>
    requires std::is_invocable_v<Chunk&, std::string_view>
  auto read_until_close(Chunk chunk, Token&& token = {});

  // Queues data; completes when every byte up to and including this write has been handed to
  // the kernel. Views are copied; owned strings and vectors over 2 KiB are taken as they are.
  template <class Token = use_awaitable_t>
  auto write(std::string_view data, Token&& token = {});
  template <class Token = use_awaitable_t>
  auto write(boost::asio::const_buffer data, Token&& token = {});
  template <class Owned, class Token = use_awaitable_t>
    requires detail::owned_bytes<Owned>
  auto write(Owned&& data, Token&& token = {});

  // Closes the stream, keeping `error` as the reason.
  void close(boost::system::error_code error = {}) { state_->close(error); }
  const boost::system::error_code& error() const noexcept { return state_->error_; }
  // Runs once, on the stream's executor, when the stream closes (also while a read waits).
  void set_close_callback(std::function<void()> callback) { state_->set_close_callback(std::move(callback)); }
  bool closed() const noexcept { return state_->closed_; }
  bool reading() const noexcept { return state_->kind_ != detail::read_kind::none; }
  bool writing() const noexcept { return !state_->closed_ && !state_->wq_.empty(); }
  // TCP_NODELAY on a TCP stream (ignored by streams without it).
  void set_nodelay(bool value);

protected:
  explicit BaseIOStream(detail::stream_state<Stream>* state) noexcept : state_(state) {}
  detail::stream_state<Stream>* state_;

  // The default token's operation for this stream: StreamClosedError carries its real error.
  template <class Sig, class Init, class... Args>
  auto awaited(Init init, Args&&... args) const;
};

// A stream over a connected (or connecting) socket: TCP (IOStream) or local (LocalIOStream).
template <class Protocol>
class basic_iostream : public BaseIOStream<boost::asio::basic_stream_socket<Protocol>> {
  using base = BaseIOStream<boost::asio::basic_stream_socket<Protocol>>;

public:
  using socket_type = boost::asio::basic_stream_socket<Protocol>;
  using endpoint_type = typename Protocol::endpoint;
  using base::base;
  // A stream whose socket connect() opens.
  explicit basic_iostream(const boost::asio::any_io_executor& ex, stream_options options = {})
      : base(socket_type(ex), options) {}

  // Connects; writes issued meanwhile are sent once connected. A failed connection closes the
  // stream and completes with StreamClosedError whose real_error() says why.
  template <class Token = use_awaitable_t>
  auto connect(const endpoint_type& endpoint, Token&& token = {});
  // Resolves host and port first (TCP only), then tries each address in turn.
  template <class Token = use_awaitable_t>
  auto connect(std::string host, unsigned short port, Token&& token = {});

  // Turns this idle stream (no pending operation, both buffers empty) into an SSLIOStream and
  // completes once the handshake is done. A client verifies the peer against `server_hostname`
  // unless `verify` is false. This stream is closed afterwards.
  template <class Token = use_awaitable_t>
  auto start_tls(bool server_side, boost::asio::ssl::context& context, std::string_view server_hostname = {},
                 bool verify = true, Token&& token = {});
};

using IOStream = basic_iostream<boost::asio::ip::tcp>;
using LocalIOStream = basic_iostream<boost::asio::local::stream_protocol>;

// Why a TLS handshake refused the peer's certificate: the error a stream closes with when
// OpenSSL's verification fails, its value OpenSSL's verify result -- X509_V_ERR_HOSTNAME_MISMATCH,
// X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_CERT_HAS_EXPIRED, ... (Python's
// SSLCertVerificationError.verify_code). Its message is "certificate verify failed: " and
// OpenSSL's reason.
inline const boost::system::error_category& certificate_category() noexcept;

// TLS over TCP. I/O issued before the handshake finishes waits for it.
class SSLIOStream : public BaseIOStream<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> {
  using base = BaseIOStream<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;

public:
  using ssl_stream_type = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

  // Over a socket that is not connected yet: call connect().
  SSLIOStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context,
              stream_options options = {});
  // Over a connected socket: the handshake starts now. A client checks the peer's certificate
  // and its name (sent as SNI) unless `verify` is false.
  SSLIOStream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context, bool server_side,
              std::string_view server_hostname = {}, bool verify = true, stream_options options = {});

  // Connects, then performs the client handshake.
  template <class Token = use_awaitable_t>
  auto connect(const boost::asio::ip::tcp::endpoint& endpoint, std::string_view server_hostname = {},
               bool verify = true, Token&& token = {});
  // Completes once the handshake is done (at once if it already is). A second wait while one is
  // pending fails with error::invalid_state.
  template <class Token = use_awaitable_t>
  auto wait_for_handshake(Token&& token = {});

private:
  template <class>
  friend class basic_iostream;
  explicit SSLIOStream(detail::stream_state<ssl_stream_type>* state) noexcept : base(state) {}
};

// One end of a pipe (Tornado's PipeIOStream): reads or writes, as the descriptor allows. The
// process ignores SIGPIPE once one exists (a closed reader makes the write fail instead).
class PipeIOStream : public BaseIOStream<boost::asio::posix::stream_descriptor> {
  using base = BaseIOStream<boost::asio::posix::stream_descriptor>;

public:
  PipeIOStream(const boost::asio::any_io_executor& ex, int fd, stream_options options = {});
  explicit PipeIOStream(boost::asio::posix::stream_descriptor descriptor, stream_options options = {});
};

} // namespace boost::tornado

#include <boost/tornado/impl/iostream.hpp>

#endif
