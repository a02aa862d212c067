// Tornado's asyncio bridge in Asio terms: an IOLoop over an io_context the application already
// owns and runs (AsyncIOMainLoop) or one that owns its own (AsyncIOLoop), and conversions
// between Asio operations and Futures.
#ifndef BOOST_TORNADO_PLATFORM_ASYNCIO_HPP
#define BOOST_TORNADO_PLATFORM_ASYNCIO_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/concurrent.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>

namespace boost::tornado {

// An IOLoop over an io_context the application owns and runs (io.run() or IOLoop::start()
// both drive it). At most one IOLoop per io_context: a second throws std::logic_error.
class AsyncIOMainLoop : public IOLoop {
public:
  explicit AsyncIOMainLoop(boost::asio::io_context& context, bool make_current = true)
      : IOLoop(context, make_current) {}
  boost::asio::io_context& asio_loop() noexcept { return context(); }
};

// An IOLoop that owns its io_context, reachable as asio_loop().
class AsyncIOLoop : public IOLoop {
public:
  explicit AsyncIOLoop(bool make_current = true) : IOLoop(make_current) {}
  boost::asio::io_context& asio_loop() noexcept { return context(); }
};

namespace detail {

template <class Sig> struct future_for_signature;
template <> struct future_for_signature<void()> { using type = void; };
template <> struct future_for_signature<void(boost::system::error_code)> { using type = void; };
template <> struct future_for_signature<void(std::exception_ptr)> { using type = void; };
template <class T> struct future_for_signature<void(T)> { using type = T; };
template <class T> struct future_for_signature<void(boost::system::error_code, T)> { using type = T; };
template <class T> struct future_for_signature<void(std::exception_ptr, T)> { using type = T; };

template <class T>
struct settle_future {
  Future<T> future;
  void operator()() { future_set_result_unless_cancelled(future); }
  template <class A>
  void operator()(A&& a) {
    if constexpr (std::is_same_v<std::decay_t<A>, boost::system::error_code>) {
      if (a) future_set_exception_unless_cancelled(future, tornado::make_exception_ptr(a));
      else future_set_result_unless_cancelled(future);
    } else if constexpr (std::is_same_v<std::decay_t<A>, std::exception_ptr>) {
      if (a) future_set_exception_unless_cancelled(future, a);
      else future_set_result_unless_cancelled(future);
    } else {
      future_set_result_unless_cancelled(future, std::forward<A>(a));
    }
  }
  template <class E, class A>
  void operator()(E&& e, A&& a) {
    std::exception_ptr ex;
    if constexpr (std::is_same_v<std::decay_t<E>, boost::system::error_code>) {
      if (e) ex = tornado::make_exception_ptr(e);
    } else {
      ex = e;
    }
    if (ex) future_set_exception_unless_cancelled(future, ex);
    else future_set_result_unless_cancelled(future, std::forward<A>(a));
  }
};

} // namespace detail

// Spawns an awaitable on IOLoop::current() and returns its Future.
template <class T, class Executor>
Future<T> to_tornado_future(boost::asio::awaitable<T, Executor> aw) {
  IOLoop& loop = IOLoop::current();
  Future<T> future(loop.get_executor());
  boost::asio::co_spawn(loop.get_executor(), std::move(aw), [future](std::exception_ptr e, auto&&... v) mutable {
    detail::settle_future<T>{future}(e, std::forward<decltype(v)>(v)...);
  });
  return future;
}

// Starts any Asio asynchronous operation (e.g. `timer.async_wait(asio::deferred)`) and returns
// a Future of its result; an error_code becomes the matching exception.
template <class Op>
  requires boost::asio::is_async_operation<Op>::value
auto to_tornado_future(Op&& op) {
  using Sig = boost::asio::completion_signature_of_t<Op>;
  using T = typename detail::future_for_signature<Sig>::type;
  Future<T> future(IOLoop::current().get_executor());
  std::forward<Op>(op)(detail::settle_future<T>{future});
  return future;
}

template <class T>
Future<T> to_tornado_future(Future<T> future) {
  return future;
}

// A Future as an Asio operation completing with its result: void(std::exception_ptr, T).
template <class T, class Token = use_awaitable_t>
auto to_asyncio_future(Future<T> future, Token&& token = {}) {
  return future.async_wait(std::forward<Token>(token));
}

} // namespace boost::tornado

#endif
