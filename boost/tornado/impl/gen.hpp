#ifndef BOOST_TORNADO_IMPL_GEN_HPP
#define BOOST_TORNADO_IMPL_GEN_HPP

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/post.hpp>

namespace boost::tornado::gen {
namespace detail {

struct initiate_sleep {
  template <class Handler>
  void operator()(Handler&& handler, Deadline::clock::time_point when) const {
    auto ex = boost::asio::get_associated_executor(handler, IOLoop::current().get_executor());
    auto timer = std::make_unique<boost::asio::steady_timer>(ex, when);
    auto& t = *timer;
    t.async_wait(boost::asio::consign(std::forward<Handler>(handler), std::move(timer)));
  }
};

struct initiate_moment {
  template <class Handler>
  void operator()(Handler&& handler) const {
    auto ex = boost::asio::get_associated_executor(handler, IOLoop::current().get_executor());
    boost::asio::post(ex, std::forward<Handler>(handler));
  }
};

template <class E> E timeout_error();
template <> inline boost::system::error_code timeout_error<boost::system::error_code>() {
  return make_error_code(error::timeout);
}
template <> inline std::exception_ptr timeout_error<std::exception_ptr>() {
  return std::make_exception_ptr(TimeoutError());
}

// One operation racing a timer. Both inner handlers run on the outer handler's executor; the
// outer handler is called once both have finished, so nothing is left running.
template <class Handler, class Executor, class Error, class... Ts>
struct timeout_state {
  template <class H>
  timeout_state(H&& h, const Executor& ex) : handler(std::forward<H>(h)), timer(ex) {}

  Handler handler;
  boost::asio::steady_timer timer;
  boost::asio::cancellation_signal op_cancel;
  std::optional<std::tuple<Error, Ts...>> result;
  std::function<void()> on_timeout;
  int pending = 2;
  bool finished = false;
  bool timed_out = false;

  void done_one() {
    if (--pending) return;
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) slot.clear();
    Handler h(std::move(handler));
    auto r = std::move(*result);
    delete this;
    std::apply(std::move(h), std::move(r));
  }
};

template <class Sig> struct initiate_with_timeout;

template <class Error, class... Ts>
struct initiate_with_timeout<void(Error, Ts...)> {
  // launch(handler) starts the operation; on_timeout() runs when the timer wins.
  template <class Handler, class Launch>
  void operator()(Handler&& handler, Deadline deadline, Launch launch,
                  std::function<void()> on_timeout) const {
    using H = std::decay_t<Handler>;
    if (!deadline) {
      std::move(launch)(std::forward<Handler>(handler));
      return;
    }
    auto ex = boost::asio::get_associated_executor(handler, IOLoop::current().get_executor());
    using state = timeout_state<H, decltype(ex), Error, Ts...>;
    auto* st = new state(std::forward<Handler>(handler), ex);
    st->on_timeout = std::move(on_timeout);

    auto slot = boost::asio::get_associated_cancellation_slot(st->handler);
    if (slot.is_connected()) {
      slot.assign([st](boost::asio::cancellation_type type) {
        if (st->finished) return;
        st->finished = true;
        st->op_cancel.emit(type);
        st->timer.cancel();
      });
    }
    st->timer.expires_at(deadline.when());
    st->timer.async_wait(boost::asio::bind_executor(ex, [st](boost::system::error_code ec) {
      if (!ec && !st->finished) {
        st->finished = true;
        st->timed_out = true;
        if (st->on_timeout) st->on_timeout();
        st->op_cancel.emit(boost::asio::cancellation_type::terminal);
      }
      st->done_one();
    }));
    std::move(launch)(boost::asio::bind_executor(
        ex, boost::asio::bind_cancellation_slot(st->op_cancel.slot(), [st](Error e, Ts... ts) {
          if (st->timed_out) e = timeout_error<Error>();
          st->result.emplace(std::move(e), std::move(ts)...);
          if (!st->finished) {
            st->finished = true;
            st->timer.cancel();
          }
          st->done_one();
        })));
  }
};

} // namespace detail

template <class Rep, class Period, class Token>
auto sleep(std::chrono::duration<Rep, Period> duration, Token&& token) {
  auto when = tornado::detail::saturating_add(Deadline::clock::now(), tornado::detail::saturating_ticks(duration));
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
      detail::initiate_sleep{}, token, when);
}

template <class Token>
auto sleep(double seconds, Token&& token) {
  return gen::sleep(std::chrono::duration<double>(seconds), std::forward<Token>(token));
}

template <class Token>
auto moment(Token&& token) {
  return boost::asio::async_initiate<Token, void()>(detail::initiate_moment{}, token);
}

template <class T, class Token>
auto with_timeout(Deadline timeout, Future<T> future, Token&& token) {
  using Sig = typename Future<T>::signature;
  auto launch = [future](auto&& handler) {
    future.async_wait(std::forward<decltype(handler)>(handler));
  };
  std::function<void()> on_timeout = [future]() mutable {
    future.add_done_callback([](Future<T> f) {
      if (f.cancelled()) return;
      if (auto e = f.exception()) log_exception(app_log, "Exception in Future after timeout", e);
    });
  };
  return boost::asio::async_initiate<Token, Sig>(detail::initiate_with_timeout<Sig>{}, token,
                                                 timeout, std::move(launch), std::move(on_timeout));
}

template <class Op, class Token>
  requires boost::asio::is_async_operation<Op>::value
auto with_timeout(Deadline timeout, Op&& op, Token&& token) {
  using Sig = boost::asio::completion_signature_of_t<Op>;
  auto launch = [op = std::forward<Op>(op)](auto&& handler) mutable {
    std::move(op)(std::forward<decltype(handler)>(handler));
  };
  return boost::asio::async_initiate<Token, Sig>(detail::initiate_with_timeout<Sig>{}, token,
                                                 timeout, std::move(launch),
                                                 std::function<void()>());
}

template <class T>
auto multi_future(std::vector<Future<T>> children)
    -> Future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> {
  using R = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  Future<R> result(children.empty() ? IOLoop::current().get_executor()
                                    : children.front().get_executor());
  if (children.empty()) {
    if constexpr (std::is_void_v<R>) result.set_result();
    else result.set_result(R{});
    return result;
  }
  struct shared {
    std::vector<Future<T>> children;
    std::size_t remaining;
  };
  auto sh = std::make_shared<shared>(shared{children, children.size()});
  // As Tornado's future_add_done_callback: a child already done counts at once, so the result
  // of children all done is done on return.
  for (auto& child : children) {
    future_add_done_callback(child, [result, sh](Future<T>) mutable {
      if (--sh->remaining) return;
      std::exception_ptr first;
      std::conditional_t<std::is_void_v<T>, std::monostate, std::vector<T>> values{};
      for (auto& f : sh->children) {
        std::exception_ptr e = f.cancelled() ? std::make_exception_ptr(CancelledError()) : f.exception();
        if (e) {
          if (!first) first = e;
          else log_exception(app_log, "Multiple exceptions in yield list", e);
        } else if constexpr (!std::is_void_v<T>) {
          values.push_back(f.result());
        }
      }
      if (first) {
        future_set_exception_unless_cancelled(result, first);
      } else if constexpr (std::is_void_v<R>) {
        future_set_result_unless_cancelled(result);
      } else {
        future_set_result_unless_cancelled(result, std::move(values));
      }
    });
  }
  return result;
}

template <class K, class T>
Future<std::map<K, T>> multi_future(std::map<K, Future<T>> children) {
  std::vector<K> keys;
  std::vector<Future<T>> futures;
  for (auto& [k, f] : children) {
    keys.push_back(k);
    futures.push_back(f);
  }
  Future<std::map<K, T>> result(futures.empty() ? IOLoop::current().get_executor()
                                                : futures.front().get_executor());
  auto all = multi_future(std::move(futures));
  future_add_done_callback(all, [result, keys](Future<std::vector<T>> f) mutable {
    if (auto e = f.exception()) {
      future_set_exception_unless_cancelled(result, e);
      return;
    }
    std::map<K, T> out;
    for (std::size_t i = 0; i < keys.size(); ++i) out.emplace(keys[i], f.result()[i]);
    future_set_result_unless_cancelled(result, std::move(out));
  });
  return result;
}

template <class T, class Token>
auto multi(std::vector<Future<T>> children, Token&& token) {
  return multi_future(std::move(children)).async_wait(std::forward<Token>(token));
}

template <class K, class T, class Token>
auto multi(std::map<K, Future<T>> children, Token&& token) {
  return multi_future(std::move(children)).async_wait(std::forward<Token>(token));
}

// ---- WaitIterator ----

// As Tornado's: one Future is handed out at a time (a new next() replaces one still pending,
// which is then left alone), and an outcome goes to it only while it is pending, else it waits
// in `finished` for the next call. The futures' done callbacks hold the state, so a Future
// handed out completes even when the iterator itself is gone (Tornado's test_no_ref); the
// state holds only futures that are done, so nothing pending refers back to itself.
template <class T>
struct WaitIterator<T>::state {
  std::optional<IOLoop::executor_type> loop;
  std::deque<std::pair<std::size_t, Future<T>>> finished;
  std::optional<Future<T>> running;
  std::size_t unfinished = 0;  // not yet handed out
  std::optional<std::size_t> current;
  std::optional<Future<T>> current_future;

  Future<T> return_result(std::size_t i, Future<T> done) {
    Future<T> target = std::move(*running);
    running.reset();
    current = i;
    current_future = done;
    --unfinished;
    if (done.cancelled()) {
      target.cancel();
    } else if (auto e = done.exception()) {
      target.set_exception(e);
    } else if constexpr (std::is_void_v<T>) {
      target.set_result();
    } else {
      target.set_result(done.result());
    }
    return target;
  }
};

template <class T>
WaitIterator<T>::WaitIterator(std::vector<Future<T>> futures) : state_(std::make_shared<state>()) {
  state_->unfinished = futures.size();
  if (!futures.empty()) state_->loop = futures.front().get_executor();
  for (std::size_t i = 0; i < futures.size(); ++i) {
    // A future already done is ready for the first next() (Tornado's future_add_done_callback).
    future_add_done_callback(futures[i], [st = state_, i](Future<T> done) {
      if (st->running && !st->running->done()) st->return_result(i, std::move(done));
      else st->finished.emplace_back(i, std::move(done));
    });
  }
}

template <class T>
bool WaitIterator<T>::done() const noexcept {
  return state_->unfinished == 0;
}

template <class T>
Future<T> WaitIterator<T>::next_future() {
  if (done()) throw std::out_of_range("WaitIterator has no more futures");
  state_->running.emplace(*state_->loop);
  if (!state_->finished.empty()) {
    auto [i, f] = std::move(state_->finished.front());
    state_->finished.pop_front();
    return state_->return_result(i, std::move(f));
  }
  return *state_->running;
}

template <class T>
std::optional<std::size_t> WaitIterator<T>::current_index() const noexcept {
  return state_->current;
}

template <class T>
std::optional<Future<T>> WaitIterator<T>::current_future() const {
  return state_->current_future;
}

} // namespace boost::tornado::gen

#endif
