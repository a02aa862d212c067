// Tornado's (asyncio's) Future and the tornado.concurrent helpers: a result settable from any
// thread, delivered on its loop; co_await-able and waitable with any completion token.
#ifndef BOOST_TORNADO_CONCURRENT_HPP
#define BOOST_TORNADO_CONCURRENT_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/detail/wait_list.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/system_executor.hpp>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <variant>
#include <type_traits>

namespace boost::tornado {

namespace detail {
template <class T> struct future_state;
struct future_access;
template <class T> struct future_value { using type = T; };
template <> struct future_value<void> { using type = std::monostate; };
template <class T> struct future_signature { using type = void(std::exception_ptr, T); };
template <> struct future_signature<void> { using type = void(std::exception_ptr); };
} // namespace detail

// A handle to a shared result (copies share it). Done callbacks and waiters run on the loop
// the Future belongs to (IOLoop::current() when made), never inside set_result.
template <class T>
class Future {
public:
  using value_type = T;
  using executor_type = IOLoop::executor_type;
  // The completion signature of waiting: void(std::exception_ptr, T), or
  // void(std::exception_ptr) for Future<void>.
  using signature = typename detail::future_signature<T>::type;

  // A pending Future on IOLoop::current().
  Future();
  explicit Future(executor_type loop);
  Future(const Future& other) noexcept;
  // A moved-from Future may only be assigned to or destroyed.
  Future(Future&& other) noexcept;
  Future& operator=(Future other) noexcept;
  ~Future();

  executor_type get_executor() const noexcept;

  bool done() const;
  bool cancelled() const;
  // The result; rethrows the exception; CancelledError when cancelled; InvalidStateError
  // when not done.
  std::add_lvalue_reference_t<std::add_const_t<T>> result() const
    requires(!std::is_void_v<T>);
  void result() const
    requires std::is_void_v<T>;
  // The exception (null on success); CancelledError when cancelled; InvalidStateError when
  // not done.
  std::exception_ptr exception() const;

  // Each throws InvalidStateError when the Future is already done.
  template <class U = T>
    requires(!std::is_void_v<T> && std::is_constructible_v<T, U &&>)
  void set_result(U&& value);
  void set_result()
    requires std::is_void_v<T>;
  void set_exception(std::exception_ptr ex);
  template <class E>
    requires(!std::is_same_v<std::decay_t<E>, std::exception_ptr>)
  void set_exception(E&& e) { set_exception(std::make_exception_ptr(std::forward<E>(e))); }
  // Cancels a pending Future (waiters get CancelledError); false if it was already done.
  bool cancel();

  // callback(Future<T>) runs on the loop once the Future is done (posted, even if it is done
  // already).
  template <class F>
  void add_done_callback(F&& callback);

  // Waits for the result: `T v = co_await future.async_wait();`. Cancelling this wait (per-operation cancellation) stops waiting and
  // completes with CancelledError; the Future itself is left as it is.
  template <class Token = use_awaitable_t>
  auto async_wait(Token&& token = {}) const;

private:
  template <class> friend class Future;
  template <class> friend struct detail::future_state;
  friend struct detail::future_access;
  struct adopt_tag {};
  Future(adopt_tag, detail::future_state<T>* state) noexcept : state_(state) {}
  struct initiate_wait;
  detail::future_state<T>* state_;
};

template <class T> struct is_future : std::false_type {};
template <class T> struct is_future<Future<T>> : std::true_type {};
template <class T> inline constexpr bool is_future_v = is_future<std::decay_t<T>>::value;

// Copies a's result (or exception) to b when a completes, unless b is already done.
template <class T>
void chain_future(Future<T> a, Future<T> b);

template <class T, class U>
void future_set_result_unless_cancelled(Future<T>& future, U&& value);
inline void future_set_result_unless_cancelled(Future<void>& future);
// If the future was cancelled, logs the exception instead (Tornado does the same).
template <class T>
void future_set_exception_unless_cancelled(Future<T>& future, std::exception_ptr ex);

// Unlike add_done_callback, runs callback(future) at once when the future is already done.
template <class T, class F>
void future_add_done_callback(Future<T>& future, F&& callback);

// An Asio executor that runs work inline, in the calling thread (Tornado's DummyExecutor).
class DummyExecutor {
public:
  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept {
    return boost::asio::query(boost::asio::system_executor(), boost::asio::execution::context);
  }
  static constexpr boost::asio::execution::blocking_t
  query(boost::asio::execution::blocking_t) noexcept {
    return boost::asio::execution::blocking.always;
  }
  template <class F>
  void execute(F&& f) const {
    std::forward<F>(f)();
  }
  friend bool operator==(const DummyExecutor&, const DummyExecutor&) noexcept { return true; }
  friend bool operator!=(const DummyExecutor&, const DummyExecutor&) noexcept { return false; }
};

inline const DummyExecutor dummy_executor{};

// Tornado's @run_on_executor: wraps fn so that calling the wrapper runs fn on `executor` and
// returns a Future settled on the caller's current IOLoop.
template <class Executor, class F>
auto run_on_executor(Executor executor, F fn);

} // namespace boost::tornado

#include <boost/tornado/impl/concurrent.hpp>
#include <boost/tornado/impl/ioloop.hpp>
#ifdef BOOST_TORNADO_HEADER_ONLY
#include <boost/tornado/impl/ioloop.ipp>
#endif

#endif
