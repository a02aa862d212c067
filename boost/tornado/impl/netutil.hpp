#ifndef BOOST_TORNADO_IMPL_NETUTIL_HPP
#define BOOST_TORNADO_IMPL_NETUTIL_HPP

// wait_list.hpp also says which of the library's handler wrappers resume a coroutine: every
// translation unit must see that before completion_work is instantiated.
#include <boost/tornado/detail/wait_list.hpp>
#include <boost/tornado/detail/waiter.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace boost::tornado {
namespace detail {

// ---- add_accept_handler ----

enum class accept_action { retry, back_off, stop };
BOOST_TORNADO_DECL accept_action accept_error_action(const boost::system::error_code& ec) noexcept;

// The accept loop's state: one allocation per add_accept_handler, owned by the copies of the
// remover and by the operation in flight (an accept, or the pause after running out of
// descriptors). Single-threaded, as the acceptor.
template <class Acceptor, class Callback>
class accept_loop {
public:
  accept_loop(Acceptor& acceptor, Callback callback)
      : acceptor_(acceptor), callback_(std::move(callback)) {}

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  void accept() {
    accepting_ = true;
    acceptor_.async_accept(peer_, boost::asio::bind_cancellation_slot(
                                      cancel_.slot(), on_accepted{op_ref(this)}));
  }

  void remove() {
    if (removed_) return;
    removed_ = true;
    if (accepting_) cancel_.emit(boost::asio::cancellation_type::terminal);
    if (pausing_) timer_->cancel();
  }

private:
  // The reference held by the operation in flight. Destroyed without having run (its
  // io_context went away), it leaves nothing pending behind.
  class op_ref {
  public:
    explicit op_ref(accept_loop* loop) noexcept : loop_(loop) { loop->add_ref(); }
    op_ref(op_ref&& other) noexcept : loop_(std::exchange(other.loop_, nullptr)) {}
    op_ref& operator=(op_ref&&) = delete;
    ~op_ref() {
      if (!loop_) return;
      loop_->accepting_ = loop_->pausing_ = false;
      loop_->cancel_.slot().clear();
      loop_->release();
    }
    // Hands the reference to the returned owner: the loop outlives the handler's run even if
    // the callback drops every remover.
    struct running {
      accept_loop* loop;
      ~running() { loop->release(); }
    };
    running run() noexcept { return {std::exchange(loop_, nullptr)}; }

  private:
    accept_loop* loop_;
  };

  struct on_accepted {
    op_ref ref;
    template <class Socket>
    void operator()(const boost::system::error_code& ec, Socket socket) {
      auto running = ref.run();
      running.loop->accepted(ec, std::move(socket));
    }
  };

  struct on_paused {
    op_ref ref;
    void operator()(const boost::system::error_code& ec) {
      auto running = ref.run();
      running.loop->pausing_ = false;
      // The acceptor closed during the pause: the loop ends quietly, as it does when the
      // acceptor closes under a pending accept.
      if (!ec && !running.loop->removed_ && running.loop->acceptor_.is_open()) running.loop->accept();
    }
  };

  template <class Socket>
  void accepted(const boost::system::error_code& ec, Socket socket) {
    accepting_ = false;
    cancel_.slot().clear();
    if (removed_) return;  // a connection accepted just before the removal closes here
    if (!ec) {
      backoff_ = {};
      try {
        callback_(std::move(socket), peer_);
      } catch (...) {
        log_exception(app_log, "Exception in accept callback", std::current_exception());
      }
      // The callback may have removed the loop, or closed the acceptor: either ends it quietly.
      if (!removed_ && acceptor_.is_open()) accept();
      return;
    }
    // Closing or cancelling the acceptor ends the loop quietly.
    if (ec == boost::asio::error::operation_aborted) return;
    switch (accept_error_action(ec)) {
    case accept_action::retry:
      accept();
      return;
    case accept_action::back_off:
      pause(ec);
      return;
    case accept_action::stop:
      boost::tornado::log(log_level::error, gen_log, describe(ec) + "; no longer accepting");
      return;
    }
  }

  // Out of descriptors or memory: accepting again at once would spin until some are freed.
  void pause(const boost::system::error_code& ec) {
    using namespace std::chrono_literals;
    backoff_ = backoff_ == backoff_.zero() ? 5ms : std::min<std::chrono::milliseconds>(backoff_ * 2, 1s);
    boost::tornado::log(log_level::error, gen_log,
                        describe(ec) + "; retrying in " + std::to_string(backoff_.count()) + " ms");
    if (!timer_) timer_.emplace(acceptor_.get_executor());
    timer_->expires_after(backoff_);
    pausing_ = true;
    timer_->async_wait(on_paused{op_ref(this)});
  }

  std::string describe(const boost::system::error_code& ec) const {
    std::ostringstream out;
    boost::system::error_code ignored;
    out << "Error accepting a connection on " << acceptor_.local_endpoint(ignored) << ": "
        << ec.message();
    return out.str();
  }

  Acceptor& acceptor_;
  Callback callback_;
  typename Acceptor::endpoint_type peer_;
  boost::asio::cancellation_signal cancel_;
  std::optional<boost::asio::steady_timer> timer_;
  std::chrono::milliseconds backoff_{};
  std::size_t refs_ = 1;  // the remover made by add_accept_handler
  bool removed_ = false;
  bool accepting_ = false;
  bool pausing_ = false;
};

template <class Loop>
class accept_remover {
public:
  explicit accept_remover(Loop* adopted) noexcept : loop_(adopted) {}
  accept_remover(const accept_remover& other) noexcept : loop_(other.loop_) { loop_->add_ref(); }
  accept_remover& operator=(const accept_remover&) = delete;
  ~accept_remover() { loop_->release(); }
  void operator()() const { loop_->remove(); }

private:
  Loop* loop_;
};

// ---- Resolver ----

// A pending resolve, linked in its Resolver's list until it completes.
struct resolve_op_base : list_node {
  void (*abort)(resolve_op_base*);
};

// Owned by the pending lookup's handler and by the user's completion: a cancelled (or closed)
// resolve completes at once and its node waits, unlinked, for the lookup to come back.
template <class Handler>
class resolve_op final : public resolve_op_base {
  using work_t = completion_work<Handler, boost::asio::any_io_executor>;

public:
  template <class H>
  static resolve_op* create(H&& handler, const boost::asio::any_io_executor& ex) {
    resolve_op* p = allocate_node<resolve_op>(handler);
    try {
      ::new (static_cast<void*>(p)) resolve_op(std::forward<H>(handler), ex);
    } catch (...) {
      deallocate_node(p, handler);
      throw;
    }
    return p;
  }

  void arm() {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.template emplace<cancel_handler>(this);
  }

  void complete(const boost::system::error_code& ec, Resolver::endpoints result) {
    if (!linked()) return;
    clear_slot();
    Handler handler(std::move(handler_));
    work_t work(std::move(work_));
    intrusive_list::unlink(this);
    release();
    work.post(std::move(handler), ec, std::move(result));
  }

  // The lookup's completion handler.
  class resolved {
  public:
    explicit resolved(resolve_op* op) noexcept : op_(op) { ++op->refs_; }
    resolved(resolved&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    resolved& operator=(resolved&&) = delete;
    ~resolved() {
      if (!op_) return;
      if (op_->linked()) {  // the io_context went away: the handler goes unrun with it
        op_->clear_slot();
        intrusive_list::unlink(op_);
        op_->release();
      }
      op_->release();
    }
    void operator()(const boost::system::error_code& ec,
                    const boost::asio::ip::tcp::resolver::results_type& results) {
      resolve_op* op = std::exchange(op_, nullptr);
      struct releaser {
        resolve_op* op;
        ~releaser() { op->release(); }
      } keep{op};
      if (!op->linked()) return;
      Resolver::endpoints eps;
      if (!ec) {
        eps.reserve(results.size());
        for (const auto& entry : results) eps.push_back(entry.endpoint());
      }
      op->complete(ec, std::move(eps));
    }

  private:
    resolve_op* op_;
  };

private:
  template <class H>
  resolve_op(H&& handler, const boost::asio::any_io_executor& ex)
      : handler_(std::forward<H>(handler)), work_(handler_, ex) {
    abort = [](resolve_op_base* base) {
      static_cast<resolve_op*>(base)->complete(boost::asio::error::operation_aborted, {});
    };
  }

  struct cancel_handler {
    resolve_op* op;
    explicit cancel_handler(resolve_op* o) noexcept : op(o) {}
    void operator()(boost::asio::cancellation_type type) {
      if (type == boost::asio::cancellation_type::none) return;
      resolve_op* self = op;  // completing clears the slot, destroying this handler
      self->complete(boost::asio::error::operation_aborted, {});
    }
  };

  void clear_slot() noexcept {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
  }

  void release() noexcept {
    if (--refs_ == 0) destroy_node(this, boost::asio::bind_allocator(alloc_, 0));
  }

  Handler handler_;
  work_t work_;
  node_allocator_t<Handler> alloc_{
      boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>())};
  int refs_ = 1;  // the user's completion, plus the lookup's handler while it exists
};

} // namespace detail

template <class Acceptor, class Callback>
std::function<void()> add_accept_handler(Acceptor& acceptor, Callback callback) {
  using loop_t = detail::accept_loop<Acceptor, Callback>;
  auto* loop = new loop_t(acceptor, std::move(callback));
  std::function<void()> remover = detail::accept_remover<loop_t>(loop);
  // Started once the remover exists: nothing can fail after the first accept is pending.
  loop->accept();
  return remover;
}

struct Resolver::initiate_resolve {
  Resolver* self;

  using executor_type = boost::asio::any_io_executor;
  executor_type get_executor() const noexcept { return self->get_executor(); }

  template <class Handler>
  void operator()(Handler&& handler, std::string host, unsigned short port, int family) const {
    using boost::asio::ip::tcp;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
      throw std::invalid_argument("Resolver::resolve: family must be AF_UNSPEC, AF_INET or AF_INET6");
    using op_t = detail::resolve_op<std::decay_t<Handler>>;
    op_t* op = op_t::create(std::forward<Handler>(handler), self->get_executor());
    self->pending_.push_back(op);
    op->arm();
    if (host.empty()) {
      // getaddrinfo() takes no name for the local host's loopback addresses; Tornado's
      // resolvers, and so this one, find no host by the empty name. Posted, as every answer.
      op->complete(boost::asio::error::host_not_found, {});
      return;
    }
    typename op_t::resolved done(op);
    // As Tornado: no AI_ADDRCONFIG, so that "localhost" keeps ::1 on hosts without a global
    // IPv6 address.
    const auto flags = tcp::resolver::numeric_service;
    if (family == AF_UNSPEC)
      self->resolver_.async_resolve(host, std::to_string(port), flags, std::move(done));
    else
      self->resolver_.async_resolve(family == AF_INET ? tcp::v4() : tcp::v6(), host,
                                    std::to_string(port), flags, std::move(done));
  }
};

template <class Token>
auto Resolver::resolve(std::string host, unsigned short port, int family, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, endpoints)>(
      initiate_resolve{this}, token, std::move(host), port, family);
}

} // namespace boost::tornado

#endif
