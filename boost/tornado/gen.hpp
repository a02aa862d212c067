// Tornado's gen helpers for coroutines: sleep, moment, with_timeout, multi and WaitIterator.
#ifndef BOOST_TORNADO_GEN_HPP
#define BOOST_TORNADO_GEN_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/concurrent.hpp>
#include <boost/tornado/ioloop.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace boost::tornado::gen {

// Completes after `duration` (void(error_code); cancellable). Runs on the handler's executor,
// else on IOLoop::current().
template <class Rep, class Period, class Token = use_awaitable_t>
auto sleep(std::chrono::duration<Rep, Period> duration, Token&& token = {});
template <class Token = use_awaitable_t>
auto sleep(double seconds, Token&& token = {});

// Yields exactly one loop iteration: `co_await gen::moment();` (void()).
template <class Token = use_awaitable_t>
auto moment(Token&& token = {});

// Waits for the Future with a timeout: its result, or TimeoutError. As in Tornado the Future
// is NOT cancelled on timeout; an exception it raises later is logged.
// void(std::exception_ptr, T).
template <class T, class Token = use_awaitable_t>
auto with_timeout(Deadline timeout, Future<T> future, Token&& token = {});

// Runs an Asio asynchronous operation (e.g. `socket.async_read_some(buf, asio::deferred)`)
// with a timeout: on timeout the operation IS cancelled through its cancellation slot, and
// completes with error::timeout once it has finished. Signature void(error_code, Ts...).
template <class Op, class Token = use_awaitable_t>
  requires boost::asio::is_async_operation<Op>::value
auto with_timeout(Deadline timeout, Op&& op, Token&& token = {});

// Waits for every child; the result lists their results in input order. The first exception
// in input order is raised and the others are logged.
template <class T>
auto multi_future(std::vector<Future<T>> children)
    -> Future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>;
template <class K, class T>
Future<std::map<K, T>> multi_future(std::map<K, Future<T>> children);
template <class T, class Token = use_awaitable_t>
auto multi(std::vector<Future<T>> children, Token&& token = {});
template <class K, class T, class Token = use_awaitable_t>
auto multi(std::map<K, Future<T>> children, Token&& token = {});

// Delivers results in the order the futures finish:
//   WaitIterator<int> it(futures);
//   while (!it.done()) { int r = co_await it.next(); use(it.current_index(), r); }
template <class T>
class WaitIterator {
public:
  explicit WaitIterator(std::vector<Future<T>> futures);

  bool done() const noexcept;
  // The next finished future, as a Future (Tornado's next()).
  Future<T> next_future();
  // Waits for the next finished future and delivers its outcome (void(exception_ptr, T)).
  template <class Token = use_awaitable_t>
  auto next(Token&& token = {}) {
    return next_future().async_wait(std::forward<Token>(token));
  }
  // Index in the input of the future whose result was delivered last; nullopt before.
  std::optional<std::size_t> current_index() const noexcept;
  std::optional<Future<T>> current_future() const;

private:
  struct state;
  std::shared_ptr<state> state_;
};

} // namespace boost::tornado::gen

#include <boost/tornado/impl/gen.hpp>

#endif
