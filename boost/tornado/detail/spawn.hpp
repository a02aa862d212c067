// Starting a coroutine nobody awaits: a connection handler, a coroutine callback, a periodic
// coroutine. asio::co_spawn would do, but its entry frame (464 B with GCC 12) keeps two work
// guards, the executor, the handler and the awaitables of its dispatch and post for the whole
// life of the coroutine; for a server that is memory held by every idle connection. This entry
// frame keeps the work, the body and what to do at the end: 224 B.
//
// It stands on Asio internals, as async.hpp's handler does: awaitable_thread (the pump that
// resumes a stack of awaitable frames) and awaitable_thread_entry_point (the type of its bottom
// frame). Both are what co_spawn itself uses, with the same members in Boost 1.81 and Asio's
// current head.
#ifndef BOOST_TORNADO_DETAIL_SPAWN_HPP
#define BOOST_TORNADO_DETAIL_SPAWN_HPP

#include <boost/tornado/detail/waiter.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/prefer.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace boost::tornado::detail {

// Keeps the executor's context running while the coroutine lives, so that it can wait on
// something that holds no work of its own (a lock, a queue: see resumes_coroutine in
// waiter.hpp). For the usual executor, an io_context's behind any_io_executor, that is the
// io_context's own executor (8 B) rather than a second type-erased one (56 B).
template <class Executor>
class spawn_work {
  using tracked = std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(),
                                                            boost::asio::execution::outstanding_work.tracked))>;
  using io_tracked = std::decay_t<decltype(boost::asio::prefer(
      std::declval<const boost::asio::io_context::executor_type&>(), boost::asio::execution::outstanding_work.tracked))>;

public:
  explicit spawn_work(const Executor& ex) {
    if (const auto* io = io_context_target(ex)) {
      io_.emplace(boost::asio::prefer(*io, boost::asio::execution::outstanding_work.tracked));
      return;
    }
    other_ = std::make_unique<tracked>(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked));
  }

private:
  std::optional<io_tracked> io_;
  std::unique_ptr<tracked> other_;
};

// The bottom frame: runs the body, then hands done() what escaped it (null when nothing did).
template <class T, class Executor, class Done>
boost::asio::awaitable<boost::asio::detail::awaitable_thread_entry_point, Executor>
spawn_entry(spawn_work<Executor> work, boost::asio::awaitable<T, Executor> body, Done done) {
  try {
    (void)co_await std::move(body);
  } catch (...) {
    done(std::current_exception());
    co_return;
  }
  (void)work;
  done(std::exception_ptr());
}

template <class Executor>
struct spawn_launch {
  boost::asio::awaitable<boost::asio::detail::awaitable_thread_entry_point, Executor> entry;
  Executor ex;
  void operator()() {
    boost::asio::detail::awaitable_thread<Executor>(std::move(entry), ex, boost::asio::cancellation_slot(),
                                                     boost::asio::cancellation_state())
        .launch();
  }
};

// Runs body on spawn_ex (at once when called on its thread, else posted there) until its first
// suspension; done(exception_ptr) is called when it ends, inside the coroutine's last step.
template <class SpawnExecutor, class T, class Executor, class Done>
void spawn(const SpawnExecutor& spawn_ex, boost::asio::awaitable<T, Executor> body, Done done) {
  Executor ex(spawn_ex);
  auto entry = spawn_entry<T, Executor, Done>(spawn_work<Executor>(ex), std::move(body), std::move(done));
  boost::asio::dispatch(ex, spawn_launch<Executor>{std::move(entry), ex});
}

} // namespace boost::tornado::detail

#endif
