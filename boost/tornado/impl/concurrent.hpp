#ifndef BOOST_TORNADO_IMPL_CONCURRENT_HPP
#define BOOST_TORNADO_IMPL_CONCURRENT_HPP

#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/tornado/detail/spinlock.hpp>
#include <boost/tornado/detail/wait_list.hpp>
#include <functional>
#include <vector>

namespace boost::tornado {
namespace detail {

template <class T>
struct future_state {
  using value_type = typename future_value<T>::type;
  using executor_type = IOLoop::executor_type;
  using waiter_type = std::conditional_t<std::is_void_v<T>, prim_waiter<std::exception_ptr>,
                                         prim_waiter<std::exception_ptr, T>>;
  enum status_t : unsigned char { pending, finished, cancelled_ };

  explicit future_state(executor_type ex) noexcept : loop(ex) {}

  ~future_state() {
    // Waiters left when the last handle goes: their handlers are destroyed, never called.
    while (list_node* n = waiters.pop_front()) static_cast<waiter_type*>(n)->destroy();
  }

  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }

  // States come from Asio's per-thread recycling allocator: making a Future costs no malloc
  // in steady state.
  using allocator = boost::asio::recycling_allocator<future_state>;
  static future_state* create(executor_type ex) {
    allocator a;
    future_state* p = a.allocate(1);
    ::new (static_cast<void*>(p)) future_state(ex);
    return p;
  }
  static void destroy(future_state* p) noexcept {
    p->~future_state();
    allocator().deallocate(p, 1);
  }

  bool is_done() const noexcept { return status.load(std::memory_order_acquire) != pending; }

  std::exception_ptr outcome_error() const {
    if (status.load(std::memory_order_relaxed) == cancelled_)
      return std::make_exception_ptr(CancelledError());
    return error;
  }

  // Completes a waiter with the outcome (the lock is held).
  void complete_waiter(waiter_type* w) {
    std::exception_ptr e = outcome_error();
    if constexpr (std::is_void_v<T>) {
      w->complete(std::move(e));
    } else {
      if (e) w->complete(std::move(e), T{});
      else w->complete(nullptr, T(*value));
    }
  }

  template <class Handler>
  void wait(Handler&& handler) {
    std::unique_lock lock(mutex);
    // Done, with no delivery to earlier waiters still to run (settled off the loop): complete
    // now. Otherwise join them, so that everything registered runs in registration order.
    if (is_done() && waiters.empty()) {
      std::exception_ptr e = outcome_error();
      lock.unlock();
      if constexpr (std::is_void_v<T>) {
        post_completion(std::forward<Handler>(handler), loop, std::move(e));
      } else {
        if (e) post_completion(std::forward<Handler>(handler), loop, std::move(e), T{});
        else post_completion(std::forward<Handler>(handler), loop, std::exception_ptr(), T(*value));
      }
      return;
    }
    // The same waiter as the locks' and queues', without a timer; handlers with no executor
    // of their own run on the loop.
    enqueue_waiter_on<waiter_type>(loop, std::forward<Handler>(handler), this, waiters, Deadline());
  }

  // Waiter-list hooks (the lock is held, the node linked). Cancelling a wait leaves the Future
  // as it is.
  spinlock& waiter_mutex() const noexcept { return mutex; }
  void on_waiter_cancel(waiter_type* w) {
    intrusive_list::unlink(w);
    if constexpr (std::is_void_v<T>) w->complete(std::make_exception_ptr(CancelledError()));
    else w->complete(std::make_exception_ptr(CancelledError()), T{});
  }
  void on_waiter_timeout(waiter_type* w) { on_waiter_cancel(w); }  // waits here have no timer

  // Called with the lock held once the status left `pending`.
  void notify_locked() {
    if (waiters.empty()) return;
    if (loop.running_in_this_thread()) {
      deliver_locked();
      return;
    }
    // Settled from another thread (or outside the running loop): deliver on the loop. The
    // handle keeps the state alive, and releases it if the loop never runs the delivery.
    add_ref();
    boost::asio::post(loop, [self = Future<T>(typename Future<T>::adopt_tag{}, this)] {
      std::lock_guard guard(self.state_->mutex);
      self.state_->deliver_locked();
    });
  }

  void deliver_locked() {
    while (list_node* n = waiters.pop_front()) complete_waiter(static_cast<waiter_type*>(n));
  }

  // A done callback waits in the same list as the waiters, so everything registered on the
  // Future is scheduled in registration order, as asyncio does.
  struct callback_node final : waiter_type {
    static void do_complete(waiter_type* base, auto&&...) {
      auto* self = static_cast<callback_node*>(base);
      self->state->post_callback(std::move(self->cb));
      delete self;
    }
    static void do_destroy(waiter_type* base) noexcept { delete static_cast<callback_node*>(base); }
    static constexpr typename waiter_type::ops node_ops{&do_complete, &do_complete, &do_destroy};
    callback_node(future_state* st, std::function<void(Future<T>&)> f)
        : waiter_type(&node_ops), state(st), cb(std::move(f)) {}
    future_state* state;
    std::function<void(Future<T>&)> cb;
  };

  void add_callback(std::function<void(Future<T>&)> cb) {
    std::lock_guard guard(mutex);
    if (is_done() && waiters.empty()) post_callback(std::move(cb));
    else waiters.push_back(new callback_node(this, std::move(cb)));  // in order behind a pending delivery
  }

  void post_callback(std::function<void(Future<T>&)> cb) {
    add_ref();
    boost::asio::post(loop, [cb = std::move(cb), f = Future<T>(typename Future<T>::adopt_tag{}, this)]() mutable {
      try {
        cb(f);
      } catch (...) {
        log_exception(app_log, "Exception in callback", std::current_exception());
      }
    });
  }

  void set_outcome(status_t st) {
    status.store(st, std::memory_order_release);
    notify_locked();
  }

  std::atomic<unsigned> refs{1};
  std::atomic<status_t> status{pending};
  mutable spinlock mutex;
  std::exception_ptr error;
  std::optional<value_type> value;
  executor_type loop;
  intrusive_list waiters;  // waiters and done callbacks, in registration order
};

} // namespace detail

template <class T>
Future<T>::Future() : Future(IOLoop::current().get_executor()) {}

template <class T>
Future<T>::Future(executor_type loop) : state_(detail::future_state<T>::create(loop)) {}

template <class T>
Future<T>::Future(const Future& other) noexcept : state_(other.state_) {
  state_->add_ref();
}

template <class T>
Future<T>::Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

template <class T>
Future<T>& Future<T>::operator=(Future other) noexcept {
  std::swap(state_, other.state_);
  return *this;
}

template <class T>
Future<T>::~Future() {
  if (state_) state_->release();
}

template <class T>
typename Future<T>::executor_type Future<T>::get_executor() const noexcept {
  return state_->loop;
}

template <class T>
bool Future<T>::done() const {
  return state_->is_done();
}

template <class T>
bool Future<T>::cancelled() const {
  return state_->status.load(std::memory_order_acquire) == detail::future_state<T>::cancelled_;
}

template <class T>
std::exception_ptr Future<T>::exception() const {
  std::lock_guard guard(state_->mutex);
  switch (state_->status.load(std::memory_order_relaxed)) {
  case detail::future_state<T>::pending: throw InvalidStateError("Exception is not set.");
  case detail::future_state<T>::cancelled_: throw CancelledError();
  default: return state_->error;
  }
}

template <class T>
std::add_lvalue_reference_t<std::add_const_t<T>> Future<T>::result() const
  requires(!std::is_void_v<T>)
{
  if (auto e = exception()) std::rethrow_exception(e);
  return *state_->value;
}

template <class T>
void Future<T>::result() const
  requires std::is_void_v<T>
{
  if (auto e = exception()) std::rethrow_exception(e);
}

template <class T>
template <class U>
  requires(!std::is_void_v<T> && std::is_constructible_v<T, U &&>)
void Future<T>::set_result(U&& value) {
  std::lock_guard guard(state_->mutex);
  if (state_->is_done()) throw InvalidStateError("invalid state");
  state_->value.emplace(std::forward<U>(value));
  state_->set_outcome(detail::future_state<T>::finished);
}

template <class T>
void Future<T>::set_result()
  requires std::is_void_v<T>
{
  std::lock_guard guard(state_->mutex);
  if (state_->is_done()) throw InvalidStateError("invalid state");
  state_->value.emplace();
  state_->set_outcome(detail::future_state<T>::finished);
}

template <class T>
void Future<T>::set_exception(std::exception_ptr ex) {
  if (!ex) throw std::invalid_argument("set_exception needs an exception");
  std::lock_guard guard(state_->mutex);
  if (state_->is_done()) throw InvalidStateError("invalid state");
  state_->error = std::move(ex);
  state_->set_outcome(detail::future_state<T>::finished);
}

template <class T>
bool Future<T>::cancel() {
  std::lock_guard guard(state_->mutex);
  if (state_->is_done()) return false;
  state_->set_outcome(detail::future_state<T>::cancelled_);
  return true;
}

template <class T>
template <class F>
void Future<T>::add_done_callback(F&& callback) {
  state_->add_callback(std::function<void(Future<T>&)>(std::forward<F>(callback)));
}

// Holds a counted handle: a lazy operation (deferred, the default token's awaitable) may start
// after every other handle to the Future is gone.
template <class T>
struct Future<T>::initiate_wait {
  Future<T> self;
  using executor_type = IOLoop::executor_type;
  executor_type get_executor() const noexcept { return self.state_->loop; }
  template <class Handler>
  void operator()(Handler&& handler) const {
    self.state_->wait(std::forward<Handler>(handler));
  }
};

template <class T>
template <class Token>
auto Future<T>::async_wait(Token&& token) const {
  return boost::asio::async_initiate<Token, signature>(initiate_wait{*this}, token);
}

template <class T>
void chain_future(Future<T> a, Future<T> b) {
  a.add_done_callback([b](Future<T> done) mutable {
    if (b.done()) return;
    if (done.cancelled()) {
      b.cancel();
      return;
    }
    if (auto e = done.exception()) {
      b.set_exception(e);
    } else if constexpr (std::is_void_v<T>) {
      b.set_result();
    } else {
      b.set_result(done.result());
    }
  });
}

namespace detail {
// The check and the set happen under one lock: a Future cancelled by the loop while a worker
// thread settles it is not a race.
struct future_access {
  template <class T, class... U>
  static bool set_result_unless_cancelled(Future<T>& f, U&&... value) {
    std::lock_guard guard(f.state_->mutex);
    if (f.state_->status.load(std::memory_order_relaxed) == future_state<T>::cancelled_) return false;
    if (f.state_->is_done()) throw InvalidStateError("invalid state");
    f.state_->value.emplace(std::forward<U>(value)...);
    f.state_->set_outcome(future_state<T>::finished);
    return true;
  }
  template <class T>
  static bool set_exception_unless_cancelled(Future<T>& f, std::exception_ptr ex) {
    std::lock_guard guard(f.state_->mutex);
    if (f.state_->status.load(std::memory_order_relaxed) == future_state<T>::cancelled_) return false;
    if (f.state_->is_done()) throw InvalidStateError("invalid state");
    f.state_->error = std::move(ex);
    f.state_->set_outcome(future_state<T>::finished);
    return true;
  }
};
} // namespace detail

template <class T, class U>
void future_set_result_unless_cancelled(Future<T>& future, U&& value) {
  detail::future_access::set_result_unless_cancelled(future, std::forward<U>(value));
}

inline void future_set_result_unless_cancelled(Future<void>& future) {
  detail::future_access::set_result_unless_cancelled(future);
}

template <class T>
void future_set_exception_unless_cancelled(Future<T>& future, std::exception_ptr ex) {
  if (!ex) throw std::invalid_argument("set_exception needs an exception");
  if (!detail::future_access::set_exception_unless_cancelled(future, ex))
    log_exception(app_log, "Exception after Future was cancelled", ex);
}

template <class T, class F>
void future_add_done_callback(Future<T>& future, F&& callback) {
  if (future.done()) std::forward<F>(callback)(future);
  else future.add_done_callback(std::forward<F>(callback));
}

template <class Executor, class F>
auto run_on_executor(Executor executor, F fn) {
  return [executor, fn](auto&&... args) {
    return IOLoop::current().run_in_executor(executor, fn, std::forward<decltype(args)>(args)...);
  };
}

} // namespace boost::tornado

#endif
