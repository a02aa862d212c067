// Tornado's coroutine synchronization primitives (tornado.locks): Lock, Condition, Event,
// Semaphore and BoundedSemaphore. Bound to no executor: a waiter completes on its handler's
// associated executor. The plain types are for one thread (the loop's) and cost nothing for it;
// the Concurrent* variants serve an io_context run by several threads.
#ifndef BOOST_TORNADO_LOCKS_HPP
#define BOOST_TORNADO_LOCKS_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/detail/wait_list.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <mutex>

namespace boost::tornado {

// Returned by acquire(): releases the permit at the end of its scope (Tornado's
// `async with lock:`). detach() keeps the permit for a later manual release().
template <class Primitive>
class [[nodiscard]] release_guard {
public:
  release_guard() noexcept = default;
  explicit release_guard(Primitive& p) noexcept : p_(&p) {}
  release_guard(release_guard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  release_guard& operator=(release_guard&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  // A release that fails here (the permit was already released by hand) is logged, not thrown
  // out of the destructor.
  ~release_guard() {
    try {
      reset();
    } catch (...) {
      log_exception(app_log, "Exception releasing a guard", std::current_exception());
    }
  }

  bool owns() const noexcept { return p_ != nullptr; }
  explicit operator bool() const noexcept { return owns(); }
  // Releases now.
  void reset() {
    if (p_) std::exchange(p_, nullptr)->release();
  }
  // Gives up the guard without releasing.
  Primitive* detach() noexcept { return std::exchange(p_, nullptr); }

private:
  Primitive* p_ = nullptr;
};

// Waiters wait to be notified. wait() completes with true when notified and false on timeout
// (never a TimeoutError): void(error_code, bool). notify(n) wakes the first n waiters still
// waiting.
template <class Mutex>
class basic_condition {
public:
  basic_condition() = default;
  basic_condition(const basic_condition&) = delete;
  basic_condition& operator=(const basic_condition&) = delete;
  // Pending waiters complete with operation_aborted.
  ~basic_condition();

  template <class Token = use_awaitable_t>
  auto wait(Deadline timeout = {}, Token&& token = {});
  void notify(std::size_t n = 1);
  void notify_all();
  std::size_t waiters() const;

  // Waiter-list hooks (internal).
  using waiter_base = detail::prim_waiter<boost::system::error_code, bool>;
  Mutex& waiter_mutex() const noexcept { return mutex_; }
  void on_waiter_timeout(waiter_base* w);
  void on_waiter_cancel(waiter_base* w);

private:
  struct initiate_wait;
  mutable Mutex mutex_;
  detail::intrusive_list waiters_;
  std::size_t count_ = 0;
};

// A flag that coroutines wait for. wait() throws TimeoutError on timeout (void(error_code)).
template <class Mutex>
class basic_event {
public:
  basic_event() = default;
  basic_event(const basic_event&) = delete;
  basic_event& operator=(const basic_event&) = delete;
  ~basic_event();

  bool is_set() const;
  // Idempotent; wakes every waiter.
  void set();
  void clear();
  template <class Token = use_awaitable_t>
  auto wait(Deadline timeout = {}, Token&& token = {});

  using waiter_base = detail::prim_waiter<boost::system::error_code>;
  Mutex& waiter_mutex() const noexcept { return mutex_; }
  void on_waiter_timeout(waiter_base* w);
  void on_waiter_cancel(waiter_base* w);

private:
  struct initiate_wait;
  mutable Mutex mutex_;
  detail::intrusive_list waiters_;
  bool value_ = false;
};

// A counter of permits; acquire() waits for one, FIFO, and completes with a guard:
// void(error_code, guard). release() hands the permit to the first waiter (no barging).
template <class Mutex>
class basic_semaphore {
public:
  using guard = release_guard<basic_semaphore>;

  // A negative value is an error (std::invalid_argument).
  explicit basic_semaphore(long value = 1);
  basic_semaphore(const basic_semaphore&) = delete;
  basic_semaphore& operator=(const basic_semaphore&) = delete;
  ~basic_semaphore();

  template <class Token = use_awaitable_t>
  auto acquire(Deadline timeout = {}, Token&& token = {});
  void release();
  long value() const;
  std::size_t waiters() const;

  using waiter_base = detail::prim_waiter<boost::system::error_code, guard>;
  Mutex& waiter_mutex() const noexcept { return mutex_; }
  void on_waiter_timeout(waiter_base* w);
  void on_waiter_cancel(waiter_base* w);

protected:
  basic_semaphore(long value, long bound);

private:
  template <class> friend class basic_lock;
  struct initiate_acquire;
  mutable Mutex mutex_;
  detail::intrusive_list waiters_;
  long value_;
  long bound_;  // -1: unbounded
  std::size_t count_ = 0;
};

// A semaphore that may not be released more often than acquired: releasing above the initial
// value throws std::invalid_argument("Semaphore released too many times").
template <class Mutex>
class basic_bounded_semaphore : public basic_semaphore<Mutex> {
public:
  explicit basic_bounded_semaphore(long value = 1) : basic_semaphore<Mutex>(value, value) {}
};

// A lock for coroutines: acquire() waits (FIFO, ownership handed to the first waiter) and
// completes with a guard; an acquire that times out throws TimeoutError and leaves the lock as
// it was. Releasing an unlocked lock throws std::logic_error("release unlocked lock").
template <class Mutex>
class basic_lock {
public:
  using guard = release_guard<basic_lock>;

  basic_lock() = default;
  basic_lock(const basic_lock&) = delete;
  basic_lock& operator=(const basic_lock&) = delete;

  template <class Token = use_awaitable_t>
  auto acquire(Deadline timeout = {}, Token&& token = {});
  void release();
  bool locked() const { return block_.value() == 0; }

private:
  struct initiate_acquire;
  basic_bounded_semaphore<Mutex> block_{1};
};

using Condition = basic_condition<detail::null_mutex>;
using Event = basic_event<detail::null_mutex>;
using Semaphore = basic_semaphore<detail::null_mutex>;
using BoundedSemaphore = basic_bounded_semaphore<detail::null_mutex>;
using Lock = basic_lock<detail::null_mutex>;

// For an io_context run by several threads.
using ConcurrentCondition = basic_condition<std::mutex>;
using ConcurrentEvent = basic_event<std::mutex>;
using ConcurrentSemaphore = basic_semaphore<std::mutex>;
using ConcurrentBoundedSemaphore = basic_bounded_semaphore<std::mutex>;
using ConcurrentLock = basic_lock<std::mutex>;

} // namespace boost::tornado

#include <boost/tornado/impl/locks.hpp>

#endif
