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
#include <tuple>
#include <type_traits>
#include <utility>

namespace boost::tornado {

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
      : when_(clock::now() + std::chrono::duration_cast<clock::duration>(relative)), set_(true) {}
  // Seconds on IOLoop::time(), i.e. on the steady clock's epoch.
  Deadline(double ioloop_time) noexcept
      : when_(clock::time_point(
            std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(ioloop_time)))),
        set_(true) {}

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

// void(error_code, Ts...) becomes void(exception_ptr, Ts...) for the default token; other
// signatures pass through.
template <class Sig> struct typed_signature { using type = Sig; };
template <class... Ts>
struct typed_signature<void(boost::system::error_code, Ts...)> {
  using type = void(std::exception_ptr, Ts...);
};

template <class Handler>
struct rethrow_handler {
  Handler handler_;
  template <class... Ts>
  void operator()(const boost::system::error_code& ec, Ts&&... ts) {
    std::move(handler_)(ec ? tornado::make_exception_ptr(ec) : std::exception_ptr(),
                        std::forward<Ts>(ts)...);
  }
};

template <class Sig> struct is_error_code_signature : std::false_type {};
template <class... Ts>
struct is_error_code_signature<void(boost::system::error_code, Ts...)> : std::true_type {};

template <class Sig, class Initiation>
struct typed_initiation {
  Initiation init_;
  template <class Handler, class... Args>
  void operator()(Handler&& h, Args&&... args) && {
    if constexpr (is_error_code_signature<Sig>::value)
      std::move(init_)(rethrow_handler<std::decay_t<Handler>>{std::forward<Handler>(h)},
                       std::forward<Args>(args)...);
    else
      std::move(init_)(std::forward<Handler>(h), std::forward<Args>(args)...);
  }
};

template <class Token>
inline constexpr bool is_default_token = std::is_same_v<std::decay_t<Token>, use_awaitable_t>;

// The outcome of an operation as one value, for the library's own coroutines: Boost 1.81's
// awaitable resumes a one-argument operation without an extra coroutine frame.
template <class... T>
struct op_result;
template <>
struct op_result<> {
  boost::system::error_code ec;
};
template <class T>
struct op_result<T> {
  boost::system::error_code ec;
  T value;
};

template <class Handler, class... T>
struct result_handler {
  Handler handler_;
  void operator()(const boost::system::error_code& ec, T... v) {
    std::move(handler_)(op_result<T...>{ec, std::move(v)...});
  }
};

// An operation object completing with op_result<T...>: `auto r = co_await direct_op<T...>(...)`
// inside the library's coroutines (never handed to users).
template <class Initiation, class Args, class... T>
class direct_op {
public:
  direct_op(Initiation init, Args args) : init_(std::move(init)), args_(std::move(args)) {}

  template <class Token>
    requires boost::asio::completion_token_for<Token, void(op_result<T...>)>
  auto operator()(Token&& token) && {
    return std::apply(
        [&](auto&&... args) {
          return boost::asio::async_initiate<Token, void(op_result<T...>)>(
              [init = std::move(init_)](auto handler, auto&&... a) mutable {
                std::move(init)(result_handler<decltype(handler), T...>{std::move(handler)},
                                std::forward<decltype(a)>(a)...);
              },
              token, std::move(args)...);
        },
        std::move(args_));
  }

private:
  Initiation init_;
  Args args_;
};

template <class... T, class Initiation, class... Args>
auto make_direct_op(Initiation init, Args&&... args) {
  return direct_op<Initiation, std::tuple<std::decay_t<Args>...>, T...>(
      std::move(init), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...));
}

} // namespace detail
} // namespace boost::tornado

namespace boost::asio {

template <template <class, class> class Associator, class Handler, class... T, class DefaultCandidate>
struct associator<Associator, boost::tornado::detail::result_handler<Handler, T...>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type
  get(const boost::tornado::detail::result_handler<Handler, T...>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }
  static auto get(const boost::tornado::detail::result_handler<Handler, T...>& h,
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
    return async_initiate<const use_awaitable_t<>&,
                          typename boost::tornado::detail::typed_signature<Sig>::type>(
        boost::tornado::detail::typed_initiation<Sig, std::decay_t<Initiation>>{
            std::forward<Initiation>(init)},
        boost::asio::use_awaitable, std::forward<Args>(args)...);
  }
};

template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct associator<Associator, boost::tornado::detail::rethrow_handler<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type
  get(const boost::tornado::detail::rethrow_handler<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler_);
  }
  static auto get(const boost::tornado::detail::rethrow_handler<Handler>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler_, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
  }
};

} // namespace boost::asio

#endif
