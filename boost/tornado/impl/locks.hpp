#ifndef BOOST_TORNADO_IMPL_LOCKS_HPP
#define BOOST_TORNADO_IMPL_LOCKS_HPP

#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <stdexcept>
#include <type_traits>

namespace boost::tornado {
namespace detail {
inline boost::system::error_code aborted() noexcept { return boost::asio::error::operation_aborted; }
} // namespace detail

// ---- Condition ----

template <class Mutex>
struct basic_condition<Mutex>::initiate_wait {
  basic_condition* self;
  template <class Handler>
  void operator()(Handler&& handler, Deadline timeout) const {
    std::lock_guard lock(self->mutex_);
    detail::enqueue_waiter<waiter_base>(std::forward<Handler>(handler), self, self->waiters_, timeout);
    ++self->count_;
  }
};

template <class Mutex>
basic_condition<Mutex>::~basic_condition() {
  std::lock_guard lock(mutex_);
  detail::complete_all<waiter_base>(waiters_, [] { return std::make_tuple(detail::aborted(), false); });
}

template <class Mutex>
template <class Token>
auto basic_condition<Mutex>::wait(Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, bool)>(
      initiate_wait{this}, token, timeout);
}

template <class Mutex>
void basic_condition<Mutex>::notify(std::size_t n) {
  std::lock_guard lock(mutex_);
  for (; n && !waiters_.empty(); --n) {
    --count_;
    static_cast<waiter_base*>(waiters_.pop_front())->complete({}, true);
  }
}

template <class Mutex>
void basic_condition<Mutex>::notify_all() {
  notify(static_cast<std::size_t>(-1));
}

template <class Mutex>
std::size_t basic_condition<Mutex>::waiters() const {
  std::lock_guard lock(mutex_);
  return count_;
}

template <class Mutex>
void basic_condition<Mutex>::on_waiter_timeout(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  --count_;
  w->complete({}, false);  // a timed-out wait is not an error for a Condition
}

template <class Mutex>
void basic_condition<Mutex>::on_waiter_cancel(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  --count_;
  w->complete(detail::aborted(), false);
}

// ---- Event ----

template <class Mutex>
struct basic_event<Mutex>::initiate_wait {
  basic_event* self;
  template <class Handler>
  void operator()(Handler&& handler, Deadline timeout) const {
    std::unique_lock lock(self->mutex_);
    if (self->value_) {
      lock.unlock();
      detail::complete_initiation(std::forward<Handler>(handler), boost::asio::system_executor(),
                                  boost::system::error_code());
      return;
    }
    detail::enqueue_waiter<waiter_base>(std::forward<Handler>(handler), self, self->waiters_, timeout);
  }
};

template <class Mutex>
basic_event<Mutex>::~basic_event() {
  std::lock_guard lock(mutex_);
  detail::complete_all<waiter_base>(waiters_, [] { return std::make_tuple(detail::aborted()); });
}

template <class Mutex>
bool basic_event<Mutex>::is_set() const {
  std::lock_guard lock(mutex_);
  return value_;
}

template <class Mutex>
void basic_event<Mutex>::set() {
  std::lock_guard lock(mutex_);
  if (value_) return;
  value_ = true;
  detail::complete_all<waiter_base>(waiters_, [] { return std::make_tuple(boost::system::error_code()); });
}

template <class Mutex>
void basic_event<Mutex>::clear() {
  std::lock_guard lock(mutex_);
  value_ = false;
}

template <class Mutex>
template <class Token>
auto basic_event<Mutex>::wait(Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(initiate_wait{this}, token, timeout);
}

template <class Mutex>
void basic_event<Mutex>::on_waiter_timeout(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(make_error_code(error::timeout));
}

template <class Mutex>
void basic_event<Mutex>::on_waiter_cancel(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(detail::aborted());
}

// ---- Semaphore ----

template <class Mutex>
struct basic_semaphore<Mutex>::initiate_acquire {
  basic_semaphore* self;
  template <class Handler>
  void operator()(Handler&& handler, Deadline timeout) const {
    std::unique_lock lock(self->mutex_);
    if (self->value_ > 0) {
      --self->value_;
      lock.unlock();
      detail::complete_initiation(std::forward<Handler>(handler), boost::asio::system_executor(),
                                  boost::system::error_code(), guard(*self));
      return;
    }
    detail::enqueue_waiter<waiter_base>(std::forward<Handler>(handler), self, self->waiters_, timeout);
    ++self->count_;
  }
};

template <class Mutex>
basic_semaphore<Mutex>::basic_semaphore(long value) : basic_semaphore(value, -1) {}

template <class Mutex>
basic_semaphore<Mutex>::basic_semaphore(long value, long bound) : value_(value), bound_(bound) {
  if (value < 0) throw std::invalid_argument("semaphore initial value must be >= 0");
}

template <class Mutex>
basic_semaphore<Mutex>::~basic_semaphore() {
  std::lock_guard lock(mutex_);
  detail::complete_all<waiter_base>(waiters_, [] { return std::make_tuple(detail::aborted(), guard()); });
}

template <class Mutex>
template <class Token>
auto basic_semaphore<Mutex>::acquire(Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, guard)>(initiate_acquire{this}, token,
                                                                                   timeout);
}

template <class Mutex>
void basic_semaphore<Mutex>::release() {
  std::lock_guard lock(mutex_);
  // The bound first, as Tornado checks it: a BoundedSemaphore(0) has no permit to give even
  // to a waiter.
  if (bound_ >= 0 && value_ >= bound_) throw std::invalid_argument("Semaphore released too many times");
  if (!waiters_.empty()) {
    // The permit goes straight to the first waiter: no barging.
    --count_;
    static_cast<waiter_base*>(waiters_.pop_front())->complete({}, guard(*this));
    return;
  }
  ++value_;
}

template <class Mutex>
long basic_semaphore<Mutex>::value() const {
  std::lock_guard lock(mutex_);
  return value_;
}

template <class Mutex>
std::size_t basic_semaphore<Mutex>::waiters() const {
  std::lock_guard lock(mutex_);
  return count_;
}

template <class Mutex>
void basic_semaphore<Mutex>::on_waiter_timeout(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  --count_;
  w->complete(make_error_code(error::timeout), guard());
}

template <class Mutex>
void basic_semaphore<Mutex>::on_waiter_cancel(waiter_base* w) {
  detail::intrusive_list::unlink(w);
  --count_;
  w->complete(detail::aborted(), guard());
}

// ---- Lock ----

namespace detail {
// A Lock waits on its semaphore; its waiter completes with the Lock's guard instead.
template <class Handler, class Lock>
struct lock_handler {
  Handler handler_;
  Lock* lock_;
  template <class SemaphoreGuard>
  void operator()(boost::system::error_code ec, SemaphoreGuard permit) {
    permit.detach();
    std::move(handler_)(ec, ec ? typename Lock::guard() : typename Lock::guard(*lock_));
  }
};
template <class Handler, class Lock>
struct resumes_coroutine<lock_handler<Handler, Lock>> : resumes_coroutine<Handler> {};
template <class Handler, class Lock>
struct awaited_now<lock_handler<Handler, Lock>> : awaited_now<Handler> {};
} // namespace detail

template <class Mutex>
struct basic_lock<Mutex>::initiate_acquire {
  basic_lock* self;
  template <class Handler>
  void operator()(Handler&& handler, Deadline timeout) const {
    using sem = basic_semaphore<Mutex>;
    typename sem::initiate_acquire{&self->block_}(
        detail::lock_handler<std::decay_t<Handler>, basic_lock>{std::forward<Handler>(handler), self}, timeout);
  }
};

template <class Mutex>
template <class Token>
auto basic_lock<Mutex>::acquire(Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, guard)>(initiate_acquire{this}, token,
                                                                                   timeout);
}

template <class Mutex>
void basic_lock<Mutex>::release() {
  try {
    block_.release();
  } catch (const std::invalid_argument&) {
    throw std::logic_error("release unlocked lock");
  }
}

} // namespace boost::tornado

template <template <class, class> class Associator, class Handler, class Lock, class DefaultCandidate>
struct boost::asio::associator<Associator, boost::tornado::detail::lock_handler<Handler, Lock>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type
  get(const boost::tornado::detail::lock_handler<Handler, Lock>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }
  static auto get(const boost::tornado::detail::lock_handler<Handler, Lock>& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler_, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

#endif
