#ifndef BOOST_TORNADO_IMPL_TCPCLIENT_HPP
#define BOOST_TORNADO_IMPL_TCPCLIENT_HPP

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace boost::tornado {
namespace detail {

// Tornado's _Connector.split: the addresses of the first address's family form the primary
// list, the others the secondary, each in the order given. With `family` other than AF_UNSPEC
// the addresses of the other family are dropped.
template <class Endpoints>
std::array<std::vector<boost::asio::ip::tcp::endpoint>, 2> split_families(const Endpoints& endpoints, int family) {
  std::array<std::vector<boost::asio::ip::tcp::endpoint>, 2> lists;
  for (const boost::asio::ip::tcp::endpoint ep : endpoints) {
    if (family != AF_UNSPEC && family != (ep.address().is_v4() ? AF_INET : AF_INET6)) continue;
    const bool primary = lists[0].empty() || lists[0].front().address().is_v4() == ep.address().is_v4();
    lists[primary ? 0 : 1].push_back(ep);
  }
  return lists;
}

// One connect(): resolution, the racing attempts and the optional handshake, under one
// deadline. Shared by the attempts' and timers' handlers, which outlive each other in any
// order; freed when the last lets go.
template <class Result, class Handler>
class tcp_connector : public std::enable_shared_from_this<tcp_connector<Result, Handler>> {
public:
  tcp_connector(const boost::asio::any_io_executor& ex, connect_options opts, boost::asio::ssl::context* tls,
                Handler handler)
      : ex_(ex), opts_(std::move(opts)), tls_(tls), handler_(std::move(handler)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, ex_),
                                  boost::asio::execution::outstanding_work.tracked)),
        resolver_(ex), family_timer_(ex), deadline_(ex) {}

  void start(std::string host, unsigned short port) {
    arm(std::move(host));
    // No host by the empty name (getaddrinfo would answer with loopback), as Resolver.
    if (host_.empty()) return finish(boost::asio::error::host_not_found, std::nullopt);
    resolver_.async_resolve(host_, std::to_string(port),
                            [self = this->shared_from_this()](const boost::system::error_code& ec,
                                                              boost::asio::ip::tcp::resolver::results_type r) {
                              if (self->finished_) return;
                              if (ec) return self->finish(ec, std::nullopt);
                              self->connect_to(r);
                            });
  }

  // As start, with the addresses a resolution gave, in its order. (Tornado's tests drive its
  // _Connector this way, without a resolver; so do ours.)
  void start_resolved(std::string host, const std::vector<boost::asio::ip::tcp::endpoint>& endpoints) {
    arm(std::move(host));
    connect_to(endpoints);
  }

private:
  // The cancellation slot and the deadline, for the whole operation.
  void arm(std::string host) {
    host_ = std::move(host);
    auto self = this->shared_from_this();
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.assign([weak = std::weak_ptr<tcp_connector>(self)](boost::asio::cancellation_type) {
        if (auto c = weak.lock()) c->finish(boost::asio::error::operation_aborted, std::nullopt);
      });
    if (opts_.timeout > std::chrono::steady_clock::duration::zero()) {
      deadline_.expires_after(opts_.timeout);
      deadline_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) self->finish(make_error_code(error::timeout), std::nullopt);
      });
    }
  }

  // `endpoints`: resolver results or endpoints, in the resolver's order.
  template <class Endpoints>
  void connect_to(const Endpoints& endpoints) {
    lists_ = split_families(endpoints, opts_.family);
    remaining_ = static_cast<int>(lists_[0].size() + lists_[1].size());
    if (!remaining_) return finish(boost::asio::error::host_not_found, std::nullopt);
    try_connect(0);
    if (!lists_[1].empty() && !secondary_started_ && !finished_) {
      family_timer_.expires_after(TCPClient::happy_eyeballs_delay);
      family_timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->start_secondary();
      });
    }
  }

  // Attempts start only while no connection has won: with TLS the operation goes on after the
  // win, through the handshake, and a loser's failure or the family timer's queued expiry must
  // not start another attempt then (Tornado's connector is done once it has a stream).
  bool racing() const noexcept { return !finished_ && !won_; }

  void start_secondary() {
    if (secondary_started_ || !racing()) return;
    secondary_started_ = true;
    family_timer_.cancel();
    try_connect(1);
  }

  void try_connect(int which) {
    if (!racing()) return;
    auto& list = lists_[which];
    if (next_[which] >= list.size()) {
      if (remaining_ == 0) finish(last_error_ ? last_error_ : make_error_code(error::stream_closed), std::nullopt);
      return;
    }
    auto ep = list[next_[which]++];
    boost::asio::ip::tcp::socket socket(ex_);
    boost::system::error_code ec;
    socket.open(ep.protocol(), ec);
    if (!ec && (!opts_.source_ip.empty() || opts_.source_port)) {
      auto addr = opts_.source_ip.empty()
                      ? (ep.address().is_v4() ? boost::asio::ip::address(boost::asio::ip::address_v4::any())
                                              : boost::asio::ip::address(boost::asio::ip::address_v6::any()))
                      : boost::asio::ip::make_address(opts_.source_ip, ec);
      // The IPv6 wildcard alone: bound dual-stack it would hold the port for IPv4 too, and the
      // other family's attempt could not bind the same source port.
      if (!ec && opts_.source_ip.empty() && ep.address().is_v6() && !ep.address().to_v6().is_v4_mapped())
        socket.set_option(boost::asio::ip::v6_only(true), ec);
      if (!ec) socket.bind(boost::asio::ip::tcp::endpoint(addr, opts_.source_port), ec);
    }
    if (ec) {
      --remaining_;
      last_error_ = ec;
      try_connect(which);
      if (which == 0 && !lists_[1].empty()) start_secondary();  // as for an attempt that fails later
      return;
    }
    auto it = attempts_.emplace(attempts_.end(), std::move(socket), opts_.stream);
    it->connect(ep, [self = this->shared_from_this(), which, it](const boost::system::error_code& ec) {
      self->on_attempt(which, it, ec);
    });
  }

  void on_attempt(int which, std::list<IOStream>::iterator it, const boost::system::error_code& ec) {
    if (!racing()) return;
    if (ec) {
      --remaining_;
      last_error_ = it->error() ? it->error() : ec;
      attempts_.erase(it);
      try_connect(which);
      // A failed first attempt need not wait for the timer to try the other family.
      if (which == 0 && !lists_[1].empty()) start_secondary();
      return;
    }
    IOStream stream = std::move(*it);
    attempts_.erase(it);
    won_ = true;
    family_timer_.cancel();
    close_attempts();
    if constexpr (std::is_same_v<Result, IOStream>) {
      finish({}, std::move(stream));
    } else {
      // The handshake's stream stays reachable, so that a timeout or a cancellation closes it.
      boost::asio::ip::tcp::socket socket(std::move(stream.socket()));
      handshaking_.emplace(std::move(socket), *tls_, false, host_, opts_.verify, opts_.stream);
      handshaking_->wait_for_handshake([self = this->shared_from_this()](const boost::system::error_code& ec) {
        if (self->finished_) return;
        if (ec) return self->finish(self->handshaking_->error() ? self->handshaking_->error() : ec, std::nullopt);
        Result done = std::move(*self->handshaking_);
        self->handshaking_.reset();
        self->finish({}, std::move(done));
      });
    }
  }

  void close_attempts() {
    for (auto& s : attempts_) s.close();
    if constexpr (!std::is_same_v<Result, IOStream>) {
      if (handshaking_ && !handshaking_->closed()) handshaking_->close(boost::asio::error::operation_aborted);
    }
  }

  void finish(boost::system::error_code ec, std::optional<Result> result) {
    if (finished_) return;
    finished_ = true;
    family_timer_.cancel();
    deadline_.cancel();
    resolver_.cancel();
    close_attempts();
    if (!result) {
      if constexpr (std::is_same_v<Result, IOStream>)
        result.emplace(ex_);
      else
        result.emplace(boost::asio::ip::tcp::socket(ex_), *tls_);
    }
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    // From one of this operation's own handlers, or a cancellation: posted, never inline.
    auto h = std::move(handler_);
    auto work = std::move(work_);
    boost::asio::post(work, boost::asio::append(std::move(h), ec, std::move(*result)));
  }

  boost::asio::any_io_executor ex_;
  connect_options opts_;
  boost::asio::ssl::context* tls_;
  Handler handler_;
  std::decay_t<decltype(boost::asio::prefer(std::declval<boost::asio::associated_executor_t<Handler, boost::asio::any_io_executor>>(),
                                            boost::asio::execution::outstanding_work.tracked))>
      work_;
  std::string host_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer family_timer_, deadline_;
  std::array<std::vector<boost::asio::ip::tcp::endpoint>, 2> lists_;
  std::size_t next_[2] = {0, 0};
  int remaining_ = 0;
  boost::system::error_code last_error_;
  bool finished_ = false, secondary_started_ = false;
  bool won_ = false;  // a connection won; with TLS its handshake is under way
  std::list<IOStream> attempts_;
  std::optional<Result> handshaking_;  // the TLS stream while its handshake runs
};

template <class Result>
struct initiate_tcp_connect {
  boost::asio::any_io_executor ex;
  using executor_type = boost::asio::any_io_executor;
  executor_type get_executor() const { return ex; }
  template <class Handler>
  void operator()(Handler&& handler, std::string host, unsigned short port, connect_options opts,
                  boost::asio::ssl::context* tls) const {
    auto c = std::make_shared<tcp_connector<Result, std::decay_t<Handler>>>(ex, std::move(opts), tls,
                                                                          std::forward<Handler>(handler));
    c->start(std::move(host), port);
  }
};

// As Resolver and bind_sockets: a family that is neither is a mistake in the call.
inline void check_connect_family(int family) {
  if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
    throw std::invalid_argument("TCPClient::connect: family must be AF_UNSPEC, AF_INET or AF_INET6");
}

// What `co_await` raises when a connection fails: the timeout or cancellation as such, a
// failed lookup as a system_error, anything else as StreamClosedError.
struct connect_error {
  template <class Stream>
  std::exception_ptr operator()(const boost::system::error_code& ec, const Stream&) const {
    if (ec == error::timeout || ec == boost::asio::error::operation_aborted) return tornado::make_exception_ptr(ec);
    if (ec.category() == boost::asio::error::get_netdb_category() ||
        ec.category() == boost::asio::error::get_addrinfo_category())
      return std::make_exception_ptr(boost::system::system_error(ec, "resolve"));
    return std::make_exception_ptr(StreamClosedError(ec));
  }
};

} // namespace detail

template <class Token>
auto TCPClient::connect(std::string_view host_name, unsigned short port, const connect_options& options, Token&& token) {
  detail::check_connect_family(options.family);
  std::string host(host_name);
  using init_t = detail::initiate_tcp_connect<IOStream>;
  boost::asio::ssl::context* none = nullptr;
  if constexpr (detail::is_default_token<Token>)
    return detail::make_awaited_op<void(boost::system::error_code, IOStream)>(init_t{ex_}, detail::connect_error{},
                                                                              std::move(host), port, options, none);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code, IOStream)>(
        init_t{ex_}, token, std::move(host), port, options, none);
}

template <class Token>
auto TCPClient::connect(std::string_view host_name, unsigned short port, boost::asio::ssl::context& ssl_context,
                        const connect_options& options, Token&& token) {
  detail::check_connect_family(options.family);
  std::string host(host_name);
  using init_t = detail::initiate_tcp_connect<SSLIOStream>;
  if constexpr (detail::is_default_token<Token>)
    return detail::make_awaited_op<void(boost::system::error_code, SSLIOStream)>(
        init_t{ex_}, detail::connect_error{}, std::move(host), port, options, &ssl_context);
  else
    return boost::asio::async_initiate<Token, void(boost::system::error_code, SSLIOStream)>(
        init_t{ex_}, token, std::move(host), port, options, &ssl_context);
}

} // namespace boost::tornado

#endif
