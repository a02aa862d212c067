// The asynchronous model shared by every operation in Boost.Tornado: Asio's universal model
// (a completion token last), a default token for `co_await` that raises Tornado's typed
// exceptions, and Tornado's timeouts (absolute deadline or relative duration).
#ifndef BOOST_TORNADO_ASYNC_HPP
#define BOOST_TORNADO_ASYNC_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/error.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace boost::tornado {

namespace detail {

// A duration in the steady clock's ticks, saturating: one beyond about 146 years (a count of
// hours near its maximum, an infinite or NaN number of seconds) is the largest, "forever",
// where a plain duration_cast would overflow (undefined for a floating-point count).
template <class Rep, class Period>
constexpr std::chrono::steady_clock::duration saturating_ticks(std::chrono::duration<Rep, Period> d) noexcept {
  using ticks = std::chrono::steady_clock::duration;
  const std::chrono::duration<double> x = d, half = ticks::max() / 2;
  if (!(x < half)) return ticks::max();
  if (!(x > -half)) return ticks::min();
  return std::chrono::duration_cast<ticks>(d);
}

// `from` + `d`, at most the clock's last time point.
inline std::chrono::steady_clock::time_point saturating_add(std::chrono::steady_clock::time_point from,
                                                            std::chrono::steady_clock::duration d) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  if (d > std::chrono::steady_clock::duration::zero() && d > time_point::max() - from) return time_point::max();
  return from + d;
}

} // namespace detail

// A timeout as Tornado takes it: nothing (wait forever), an absolute deadline on the steady
// clock, a number of seconds on IOLoop::time() (absolute, as Tornado's float deadlines), or a
// duration relative to the moment the Deadline is made (Tornado's timedelta).
class Deadline {
public:
  using clock = std::chrono::steady_clock;

  constexpr Deadline() noexcept = default;
  constexpr Deadline(clock::time_point when) noexcept : when_(when), set_(true) {}
  template <class Rep, class Period>
  Deadline(std::chrono::duration<Rep, Period> relative)
      : when_(detail::saturating_add(clock::now(), detail::saturating_ticks(relative))), set_(true) {}
  // Seconds on IOLoop::time(), i.e. on the steady clock's epoch. Durations and times too large
  // for the clock (an infinite number of seconds, say) mean "never".
  Deadline(double ioloop_time) noexcept
      : when_(clock::time_point(detail::saturating_ticks(std::chrono::duration<double>(ioloop_time)))), set_(true) {}

  constexpr bool has_value() const noexcept { return set_; }
  constexpr explicit operator bool() const noexcept { return set_; }
  constexpr clock::time_point when() const noexcept { return when_; }

private:
  clock::time_point when_{};
  bool set_ = false;
};

// The default completion token of every Boost.Tornado operation: the operation returns an
// asio::awaitable, so `co_await op(...)` inside an asio::awaitable coroutine resumes with the
// result and throws Tornado's typed exception (TimeoutError, CancelledError, ...) on error. Any other Asio token (callbacks, asio::use_awaitable, deferred, use_future,
// yield_context, as_tuple, redirect_error) receives the error_code instead.
struct use_awaitable_t {
  constexpr use_awaitable_t() noexcept = default;
};
inline constexpr use_awaitable_t use_awaitable{};

namespace detail {

template <class Token>
inline constexpr bool is_default_token = std::is_same_v<std::decay_t<Token>, use_awaitable_t>;

// What `co_await` of a default-token operation resumes with: nothing, one value, or a tuple.
template <class... T> struct value_of { using type = std::tuple<T...>; };
template <> struct value_of<> { using type = void; };
template <class T> struct value_of<T> { using type = T; };

// The outcome of a default-token operation, handed to the waiting coroutine in one argument:
// the exception `co_await` raises, or the value it returns.
template <class V>
struct outcome {
  std::exception_ptr error;
  std::optional<V> value;
};
template <>
struct outcome<void> {
  std::exception_ptr error;
};

// Turns an operation's error_code into the exception `co_await` raises (throw_error's).
struct typed_error {
  template <class... T>
  std::exception_ptr operator()(const boost::system::error_code& ec, const T&...) const {
    return tornado::make_exception_ptr(ec);
  }
};

// An operation's signature seen from the default token: its value type, and how it fails.
enum class failure { none, error_code, exception };
template <class Sig> struct awaited_signature;
template <class... Ts>
struct awaited_signature<void(boost::system::error_code, Ts...)> {
  using value_type = typename value_of<std::decay_t<Ts>...>::type;
  static constexpr failure fails = failure::error_code;
};
template <class... Ts>
struct awaited_signature<void(std::exception_ptr, Ts...)> {
  using value_type = typename value_of<std::decay_t<Ts>...>::type;
  static constexpr failure fails = failure::exception;
};
template <class... Ts>
struct awaited_signature<void(Ts...)> {
  using value_type = typename value_of<std::decay_t<Ts>...>::type;
  static constexpr failure fails = failure::none;
};

template <class V, class... T>
void set_value(outcome<V>& o, T&&... v) {
  if constexpr (sizeof...(T) > 0) o.value.emplace(std::forward<T>(v)...);
}

// Receives the operation's own completion and hands the coroutine its outcome.
template <class Handler, class Sig, class ErrorMap>
class outcome_handler {
public:
  using value_type = typename awaited_signature<Sig>::value_type;

  outcome_handler(Handler h, ErrorMap map) : handler_(std::move(h)), map_(std::move(map)) {}

  template <class First, class... T>
    requires(awaited_signature<Sig>::fails == failure::error_code)
  void operator()(const First& ec, T&&... v) {
    deliver([&](outcome<value_type>& o) {
      if (ec) o.error = map_(ec, v...);
      else set_value(o, std::forward<T>(v)...);
    });
  }
  template <class First, class... T>
    requires(awaited_signature<Sig>::fails == failure::exception)
  void operator()(First ex, T&&... v) {
    deliver([&](outcome<value_type>& o) {
      if (ex) o.error = std::move(ex);
      else set_value(o, std::forward<T>(v)...);
    });
  }
  template <class... T>
    requires(awaited_signature<Sig>::fails == failure::none)
  void operator()(T&&... v) {
    deliver([&](outcome<value_type>& o) { set_value(o, std::forward<T>(v)...); });
  }

  Handler handler_;

private:
  // The coroutine's own handler lets the outcome be made where the coroutine will read it;
  // any other handler is given one.
  template <class Fill>
  void deliver(Fill&& fill) {
    if constexpr (requires { std::move(handler_).fill_and_resume(fill); }) {
      std::move(handler_).fill_and_resume(fill);
    } else {
      outcome<value_type> o;
      fill(o);
      std::move(handler_)(std::move(o));
    }
  }

  ErrorMap map_;
};

template <class Sig, class Initiation, class ErrorMap>
struct outcome_initiation {
  Initiation init_;
  ErrorMap map_;
  template <class Handler, class... Args>
  void operator()(Handler&& h, Args&&... args) && {
    std::move(init_)(outcome_handler<std::decay_t<Handler>, Sig, ErrorMap>(std::forward<Handler>(h), std::move(map_)),
                     std::forward<Args>(args)...);
  }
};

// What an operation returns for the default token: an Asio asynchronous operation (as
// `deferred` gives) whose single-argument completion carries the outcome. `co_await` in an
// `asio::awaitable` runs it with no coroutine frame of its own and resumes with the value or
// raises the exception. Converts to `asio::awaitable<T>` where one is needed (a container of
// awaitables), and asio::co_spawn takes it as it is; either costs one frame.
template <class Sig, class Initiation, class ErrorMap, class... Args>
class [[nodiscard]] awaited_op {
public:
  using value_type = typename awaited_signature<Sig>::value_type;
  using signature = void(outcome<value_type>);

  awaited_op(Initiation init, ErrorMap map, std::tuple<Args...> args)
      : init_(std::move(init)), map_(std::move(map)), args_(std::move(args)) {}

  template <class Token>
    requires boost::asio::completion_token_for<Token, signature>
  auto operator()(Token&& token) && {
    return std::apply(
        [&](auto&&... args) {
          return boost::asio::async_initiate<Token, signature>(
              outcome_initiation<Sig, Initiation, ErrorMap>{std::move(init_), std::move(map_)}, token,
              std::move(args)...);
        },
        std::move(args_));
  }

  boost::asio::awaitable<value_type> as_awaitable() && { return run(std::move(*this)); }
  operator boost::asio::awaitable<value_type>() && { return run(std::move(*this)); }
  // As a function returning its awaitable, so that asio::co_spawn(ex, op, token) starts it.
  boost::asio::awaitable<value_type> operator()() { return run(std::move(*this)); }

private:
  static boost::asio::awaitable<value_type> run(awaited_op op) {
    if constexpr (std::is_void_v<value_type>) co_await std::move(op);
    else co_return co_await std::move(op);
  }

  Initiation init_;
  ErrorMap map_;
  std::tuple<Args...> args_;
};

template <class T> struct is_awaited_op : std::false_type {};
template <class Sig, class I, class M, class... A> struct is_awaited_op<awaited_op<Sig, I, M, A...>> : std::true_type {};

// The default token's operation with a mapping of error codes of its own (a stream's errors
// carry the stream's real error).
template <class Sig, class ErrorMap, class Initiation, class... Args>
auto make_awaited_op(Initiation&& init, ErrorMap map, Args&&... args) {
  return awaited_op<Sig, std::decay_t<Initiation>, ErrorMap, std::decay_t<Args>...>(
      std::forward<Initiation>(init), std::move(map), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
}

// The default token's handler when `co_await` started the operation in this very call: the
// coroutine is suspended on this thread and may be resumed at once.
template <class Handler>
struct awaited_now : std::false_type {};
template <class Signature, class Executor, class Sig, class ErrorMap>
struct awaited_now<outcome_handler<boost::asio::detail::awaitable_async_op_handler<Signature, Executor>, Sig, ErrorMap>>
    : std::true_type {};

// Set while such a handler is called from inside the call that started its operation: it
// hands the coroutine back to the loop iteration that is running it instead of running it
// from within the call.
inline thread_local bool resume_in_place = false;

} // namespace detail

// What an operation returns for the default token: `co_await` it inside an asio::awaitable
// coroutine, or turn it into an `asio::awaitable<T>` with `std::move(op).as_awaitable()` (or
// by conversion) to keep it or hand it to code that takes awaitables.
template <class Op>
concept awaited_operation = detail::is_awaited_op<std::decay_t<Op>>::value;

} // namespace boost::tornado

namespace boost::asio {

template <template <class, class> class Associator, class Handler, class Sig, class ErrorMap, class DefaultCandidate>
struct associator<Associator, boost::tornado::detail::outcome_handler<Handler, Sig, ErrorMap>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type
  get(const boost::tornado::detail::outcome_handler<Handler, Sig, ErrorMap>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }
  static auto get(const boost::tornado::detail::outcome_handler<Handler, Sig, ErrorMap>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler_, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

template <class Sig>
class async_result<boost::tornado::use_awaitable_t, Sig> {
public:
  template <class Initiation, class... Args>
  static auto initiate(Initiation&& init, boost::tornado::use_awaitable_t, Args&&... args) {
    return boost::tornado::detail::make_awaited_op<Sig>(std::forward<Initiation>(init),
                                                        boost::tornado::detail::typed_error{},
                                                        std::forward<Args>(args)...);
  }
};

namespace detail {

// Resumes a coroutine awaiting a default-token operation with its outcome: the value, or the
// exception raised. (Asio's own handler for a two-argument void(exception_ptr, T) signature
// does not compile in Boost 1.80-1.81, and would need a second argument besides.) Written
// as Asio's own awaitable_async_op_handler specialisations are.
template <class R, class V, class Executor>
class awaitable_async_op_handler<R(boost::tornado::detail::outcome<V>), Executor> : public awaitable_thread<Executor> {
public:
  // Kept in the awaiting coroutine's frame, where the handler writes the outcome.
  using result_type = boost::tornado::detail::outcome<V>;

  awaitable_async_op_handler(awaitable_thread<Executor>* h, result_type& result)
      : awaitable_thread<Executor>(std::move(*h)), result_(result), origin_(h) {}

  void operator()(boost::tornado::detail::outcome<V>&& o) {
    result_ = std::move(o);
    continue_coroutine();
  }

  // outcome_handler's way in: the outcome is made in the awaiting coroutine's frame, where it
  // is read, instead of being built elsewhere and moved there.
  template <class Fill>
  void fill_and_resume(Fill& fill) {
    fill(result_);
    continue_coroutine();
  }

  // The coroutine's executor where it lives (its entry frame), not a copy.
  const Executor& thread_executor() noexcept { return this->entry_point()->u_.executor_; }

  static V resume(result_type& result) {
    if (result.error) std::rethrow_exception(std::exchange(result.error, nullptr));
    if constexpr (!std::is_void_v<V>) return std::move(*result.value);
  }

private:
  void continue_coroutine() {
    if (std::exchange(boost::tornado::detail::resume_in_place, false)) {
      // Called from inside the call that started the operation, which runs within the
      // coroutine thread `origin_` is pumping: the thread goes back there, and the coroutine
      // resumes once the starting call has returned, without nesting a second pump.
      auto stack = &awaitable_async_op_handler::bottom_of_stack_;
      origin_->*stack = std::move(this->*stack);
      origin_->entry_point()->top_of_stack_->attach_thread(origin_);
      origin_->entry_point()->top_of_stack_->clear_cancellation_slot();
      return;
    }
    this->entry_point()->top_of_stack_->attach_thread(this);
    this->entry_point()->top_of_stack_->clear_cancellation_slot();
    this->pump();
  }

  result_type& result_;
  awaitable_thread<Executor>* origin_;
};

} // namespace detail
} // namespace boost::asio

#endif
