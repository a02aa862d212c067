#ifndef BOOST_TORNADO_IMPL_IOLOOP_HPP
#define BOOST_TORNADO_IMPL_IOLOOP_HPP

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/tornado/detail/spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <random>
#include <tuple>

namespace boost::tornado {
namespace detail {

// f bound to its arguments, as Tornado's callback(*args).
template <class F, class... Args>
auto bind_args(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return std::decay_t<F>(std::forward<F>(f));
  } else {
    return [fn = std::decay_t<F>(std::forward<F>(f)),
            tup = std::make_tuple(std::forward<Args>(args)...)]() mutable -> decltype(auto) {
      return std::apply(fn, tup);
    };
  }
}

template <class R> struct run_sync_value { using type = R; };
template <class T, class E> struct run_sync_value<boost::asio::awaitable<T, E>> { using type = T; };
template <class Sig, class I, class M, class... A>
struct run_sync_value<awaited_op<Sig, I, M, A...>> { using type = typename awaited_op<Sig, I, M, A...>::value_type; };
template <class T> struct run_sync_value<Future<T>> { using type = T; };

template <class T>
struct run_sync_state {
  std::optional<typename future_value<T>::type> value;
  std::exception_ptr error;
  bool done = false;
  bool timed_out = false;
  boost::asio::cancellation_signal cancel;
  std::function<void()> cancel_future;
};

BOOST_TORNADO_DECL bool is_cancellation(const std::exception_ptr& e) noexcept;

} // namespace detail

// A callback's failure is logged, its cancellation is not (Tornado's _run_callback passes over
// CancelledError, also from the coroutine or Future it returns). `keep` lives until the
// coroutine has ended (see invoke_callback).
template <class A, class Keep>
void IOLoop::spawn_awaitable(A&& aw, Keep keep) {
  detail::spawn(get_executor(), detail::as_awaitable(std::forward<A>(aw)), [keep = std::move(keep)](std::exception_ptr e) {
    if (e && !detail::is_cancellation(e)) log_exception(app_log, "Exception in callback", e);
  });
}

template <class F>
void IOLoop::invoke_callback(F& f) noexcept {
  try {
    using R = decltype(f());
    if constexpr (std::is_void_v<R>) {
      f();
    } else if constexpr (detail::is_awaitable<std::decay_t<R>>::value) {
      // A coroutine lambda's captures live in the lambda, not in the coroutine's frame: a
      // callable with state moves to the heap, where the coroutine finds it until it ends.
      // The callable is called once, so it is the loop's to move.
      if constexpr (std::is_class_v<F> && !std::is_empty_v<F>) {
        auto keep = std::make_shared<F>(std::move(f));
        spawn_awaitable((*keep)(), keep);
      } else {
        spawn_awaitable(f());
      }
    } else if constexpr (is_future_v<R>) {
      f().add_done_callback([](auto fut) {
        try {
          fut.result();
        } catch (...) {
          if (!detail::is_cancellation(std::current_exception())) throw;  // logged by the Future
        }
      });
    } else {
      (void)f();
    }
  } catch (...) {
    if (!detail::is_cancellation(std::current_exception()))
      log_exception(app_log, "Exception in callback", std::current_exception());
  }
}

template <class F, class... Args>
void IOLoop::add_callback(F&& callback, Args&&... args) {
  if (closed_.load(std::memory_order_relaxed)) return;
  boost::asio::post(*context_, [ref = ref_, fn = detail::bind_args(std::forward<F>(callback),
                                                                 std::forward<Args>(args)...)]() mutable {
    if (IOLoop* loop = ref.get()) loop->invoke_callback(fn);
  });
}

template <class F>
void IOLoop::add_callback_from_signal(F&& callback) noexcept {
  auto fn = [this, f = std::decay_t<F>(std::forward<F>(callback))]() mutable { invoke_callback(f); };
  static_assert(detail::callback::fits_inline<decltype(fn)>,
                "add_callback_from_signal: the callable must be small and nothrow-movable");
  signal_push(detail::callback(std::move(fn)));
}

template <class F, class... Args>
void IOLoop::spawn_callback(F&& callback, Args&&... args) {
  if constexpr (sizeof...(Args) == 0 && detail::is_awaitable<std::decay_t<F>>::value) {
    if (closed_.load(std::memory_order_relaxed)) return;
    boost::asio::post(*context_, [ref = ref_, aw = std::forward<F>(callback)]() mutable {
      if (IOLoop* loop = ref.get()) loop->spawn_awaitable(std::move(aw));
    });
  } else {
    add_callback(std::forward<F>(callback), std::forward<Args>(args)...);
  }
}

template <class F, class... Args>
TimeoutHandle IOLoop::add_timeout(Deadline deadline, F&& callback, Args&&... args) {
  if (!deadline) throw std::invalid_argument("add_timeout needs a deadline");
  return schedule(deadline.when(),
                  detail::callback([this, fn = detail::bind_args(std::forward<F>(callback),
                                                                 std::forward<Args>(args)...)]() mutable {
                    invoke_callback(fn);
                  }));
}

template <class Rep, class Period, class F, class... Args>
TimeoutHandle IOLoop::call_later(std::chrono::duration<Rep, Period> delay, F&& callback, Args&&... args) {
  return add_timeout(Deadline(delay), std::forward<F>(callback), std::forward<Args>(args)...);
}

template <class F, class... Args>
TimeoutHandle IOLoop::call_later(double delay_seconds, F&& callback, Args&&... args) {
  return add_timeout(Deadline(std::chrono::duration<double>(delay_seconds)),
                     std::forward<F>(callback), std::forward<Args>(args)...);
}

template <class F, class... Args>
TimeoutHandle IOLoop::call_at(Deadline when, F&& callback, Args&&... args) {
  return add_timeout(when, std::forward<F>(callback), std::forward<Args>(args)...);
}

template <class T, class F>
void IOLoop::add_future(Future<T> future, F&& callback) {
  // The Future may be settled after the loop is gone (and its io_context with it).
  future.add_done_callback([this, alive = std::weak_ptr<const bool>(alive_),
                            cb = std::decay_t<F>(std::forward<F>(callback))](Future<T> f) mutable {
    if (alive.expired()) return;
    auto call = [cb = std::move(cb), f]() mutable { return cb(f); };  // owns what it uses
    invoke_callback(call);
  });
}

template <class Executor, class F, class... Args>
auto IOLoop::run_in_executor(const Executor& executor, F&& fn, Args&&... args)
    -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  Future<R> future(get_executor());
  auto job = [future, work = detail::bind_args(std::forward<F>(fn),
                                                                std::forward<Args>(args)...)]() mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        work();
        future_set_result_unless_cancelled(future);
      } else {
        future_set_result_unless_cancelled(future, work());
      }
    } catch (...) {
      future_set_exception_unless_cancelled(future, std::current_exception());
    }
  };
  // An executor that cannot promise not to block (DummyExecutor) runs the job inline.
  if constexpr (boost::asio::can_require<Executor, boost::asio::execution::blocking_t::never_t>::value)
    boost::asio::post(executor, std::move(job));
  else
    boost::asio::dispatch(executor, std::move(job));
  return future;
}

template <class F, class... Args>
auto IOLoop::run_in_executor(std::nullptr_t, F&& fn, Args&&... args)
    -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
  return run_in_executor(default_executor(), std::forward<F>(fn), std::forward<Args>(args)...);
}

template <class F>
auto IOLoop::run_sync_impl(F&& func, std::optional<clock::duration> timeout) {
  using R = std::decay_t<std::invoke_result_t<std::decay_t<F>&>>;
  using T = typename detail::run_sync_value<R>::type;
  check_startable();
  auto st = std::make_shared<detail::run_sync_state<T>>();

  // No captures: the coroutine may start after this function returned (a stop already asked
  // for ends the run first), and a lambda's captures live in its closure, not in the frame.
  auto body = [](std::shared_ptr<detail::run_sync_state<T>> st, std::decay_t<F> f) -> boost::asio::awaitable<T> {
    if constexpr (detail::is_awaitable<R>::value) {
      co_return co_await f();
    } else if constexpr (is_future_v<R>) {
      R fut = f();
      st->cancel_future = [fut]() mutable { fut.cancel(); };
      co_return co_await fut.async_wait();
    } else if constexpr (std::is_void_v<R>) {
      f();
      co_return;
    } else {
      co_return f();
    }
  };
  // The coroutine can outlive this call (a stop() ended the run first) and the loop too.
  auto done = [ref = ref_, st](std::exception_ptr e, auto&&... v) {
    st->error = std::move(e);
    if constexpr (sizeof...(v) == 0) st->value.emplace();
    else if (!st->error) st->value.emplace(std::move(v)...);
    st->done = true;
    if (IOLoop* loop = ref.get()) loop->stop();
  };
  boost::asio::co_spawn(get_executor(), body(st, std::forward<F>(func)),
                        boost::asio::bind_cancellation_slot(st->cancel.slot(), std::move(done)));
  TimeoutHandle th;
  if (timeout) {
    th = call_later(*timeout, [st] {
      st->timed_out = true;
      if (st->cancel_future) st->cancel_future();
      st->cancel.emit(boost::asio::cancellation_type::terminal);
    });
  }
  start();
  remove_timeout(th);
  if (st->timed_out && (!st->done || detail::is_cancellation(st->error))) throw TimeoutError("Operation timed out");
  if (!st->done) throw boost::system::system_error(make_error_code(error::loop_stopped));
  if (st->error) std::rethrow_exception(st->error);
  if constexpr (!std::is_void_v<T>) return std::move(*st->value);
}

// ---- PeriodicCallback ----

struct PeriodicCallback::state : std::enable_shared_from_this<PeriodicCallback::state> {
  detail::periodic_schedule schedule;
  IOLoop* loop = nullptr;
  std::weak_ptr<const bool> loop_alive;  // the loop may go first (a thread's current loop, say)
  bool running = false;
  TimeoutHandle timeout;
  std::function<void(const std::shared_ptr<state>&)> run;

  BOOST_TORNADO_DECL void schedule_next();
  BOOST_TORNADO_DECL void fire();
};

template <class F>
PeriodicCallback::PeriodicCallback(F callback, double callback_time_ms, double jitter)
    : state_(std::make_shared<state>()) {
  if (!(callback_time_ms > 0))
    throw std::invalid_argument("Periodic callback must have a positive callback_time");
  state_->schedule.callback_time_ms = callback_time_ms;
  state_->schedule.jitter = jitter;
  using R = std::invoke_result_t<F&>;
  if constexpr (detail::is_awaitable<std::decay_t<R>>::value) {
    // The coroutine may outlive this PeriodicCallback (a run still going is left to finish), and
    // a coroutine lambda's captures live in the lambda: each run keeps the lambda alive.
    state_->run = [f = std::make_shared<F>(std::move(callback))](const std::shared_ptr<state>& st) {
      std::weak_ptr<state> weak = st;
      try {
        detail::spawn(st->loop->get_executor(), detail::as_awaitable((*f)()), [weak, f](std::exception_ptr e) {
          if (e) log_exception(app_log, "Exception in callback", e);
          if (auto s = weak.lock()) s->schedule_next();
        });
      } catch (...) {
        log_exception(app_log, "Exception in callback", std::current_exception());
        st->schedule_next();
      }
    };
  } else {
    state_->run = [f = std::move(callback)](const std::shared_ptr<state>& st) mutable {
      try {
        f();
      } catch (...) {
        log_exception(app_log, "Exception in callback", std::current_exception());
      }
      st->schedule_next();
    };
  }
}

} // namespace boost::tornado

#endif
