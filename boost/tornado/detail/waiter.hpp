// What every waiting operation needs from its handler: the handler's executor kept busy while
// it waits, the completion posted there (never called inline), and node memory from the
// handler's allocator. The waiters themselves are in wait_list.hpp.
#ifndef BOOST_TORNADO_DETAIL_WAITER_HPP
#define BOOST_TORNADO_DETAIL_WAITER_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution/allocator.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

namespace boost::tornado::detail {

// Handlers that resume an asio::awaitable thread. Whatever started that thread (co_spawn or
// detail::spawn) keeps its executor busy for as long as the thread lives, so waiting on their
// behalf needs no work of its own.
template <class Handler>
struct resumes_coroutine : std::false_type {};
template <class Executor, class... T>
struct resumes_coroutine<boost::asio::detail::awaitable_handler<Executor, T...>> : std::true_type {};
template <class Signature, class Executor>
struct resumes_coroutine<boost::asio::detail::awaitable_async_op_handler<Signature, Executor>> : std::true_type {};

// The io_context executor behind ex, when there is one: ex itself, or what a type-erased
// any_io_executor holds. Going through it instead of the type-erased executor copies and
// queries nothing through function pointers.
template <class E>
const boost::asio::io_context::executor_type* io_context_target(const E& ex) noexcept {
  using io_executor = boost::asio::io_context::executor_type;
  if constexpr (std::is_same_v<E, io_executor>) return &ex;
  else if constexpr (std::is_same_v<E, boost::asio::any_io_executor>) return ex.template target<io_executor>();
  else return nullptr;
}

// Keeps the handler's executor busy while an operation waits, and posts the completion
// there. When the handler runs on an io_context executor (the usual case for a coroutine on
// the loop), it goes through the concrete executor: no type-erased executor is copied or
// queried on the way. A coroutine's handler needs nothing kept: its spawn keeps its executor
// busy, and the handler knows that executor, so nothing is stored for it.
template <class Handler, class Executor>
class completion_work {
public:
  using executor_type = boost::asio::associated_executor_t<Handler, Executor>;
  using io_executor = boost::asio::io_context::executor_type;
  static constexpr bool keeps_work = resumes_coroutine<Handler>::value;
  using work_type = std::decay_t<decltype(boost::asio::prefer(std::declval<executor_type>(),
                                                              boost::asio::execution::outstanding_work.tracked))>;
  static constexpr bool may_be_fast = std::is_same_v<executor_type, boost::asio::any_io_executor> ||
                                      std::is_same_v<executor_type, io_executor>;
  using fast_executor = std::decay_t<decltype(boost::asio::require(
      std::declval<io_executor>(), boost::asio::execution::outstanding_work.tracked,
      boost::asio::execution::blocking.never))>;

  completion_work(const Handler& handler, const Executor& ex) {
    if constexpr (!keeps_work) {
      auto hex = boost::asio::get_associated_executor(handler, ex);
      if constexpr (may_be_fast) {
        if (const io_executor* target = io_context_target(hex)) {
          fast_.emplace(fast(*target));
          return;
        }
      }
      work_.emplace(boost::asio::prefer(hex, boost::asio::execution::outstanding_work.tracked));
    }
  }

  // Posts handler(args...); consumes this object's work.
  template <class... Args>
  void post(Handler&& handler, Args&&... args) {
    complete<false>(std::move(handler), std::move(args)...);
  }

  // Runs handler(args...) at once when its executor allows (the caller is already running on
  // it), posts it otherwise; consumes this object's work.
  template <class... Args>
  void dispatch(Handler&& handler, Args&&... args) {
    complete<true>(std::move(handler), std::move(args)...);
  }

  // The executor the handler runs on (for timers).
  executor_type handler_executor(const Handler& handler, const Executor& ex) const {
    return boost::asio::get_associated_executor(handler, ex);
  }

private:
  template <bool Dispatch, class... Args>
  void complete(Handler&& handler, Args&&... args) {
    if constexpr (keeps_work) {
      const auto& hex = coroutine_executor(handler);
      if constexpr (may_be_fast) {
        if (const io_executor* target = io_context_target(hex)) {
          // Dispatched from the io_context's own thread: what its dispatch would do, without
          // packaging the handler and its arguments first. As there, what the handler throws
          // leaves run() once the current handler is done, not through the code completing
          // the operation (a stream's read path, say).
          if (Dispatch && target->running_in_this_thread()) {
            try {
              std::move(handler)(std::move(args)...);
            } catch (...) {
              boost::asio::use_service<boost::asio::detail::io_context_impl>(target->context())
                  .capture_current_exception();
            }
            return;
          }
          return execute<Dispatch>(*target, bind(std::move(handler), std::move(args)...));
        }
      }
      submit<Dispatch>(hex, boost::asio::append(std::move(handler), std::move(args)...));
    } else {
      if constexpr (may_be_fast) {
        if (fast_) {
          fast_executor ex(std::move(*fast_));
          fast_.reset();
          return execute<Dispatch>(std::move(ex), bind(std::move(handler), std::move(args)...));
        }
      }
      work_type work(std::move(*work_));
      submit<Dispatch>(work, boost::asio::append(std::move(handler), std::move(args)...));
    }
  }

  // On an io_context executor: never blocking (post), or possibly (dispatch).
  template <bool Dispatch, class E, class F>
  static void execute(E&& ex, F&& f) {
    if constexpr (Dispatch)
      boost::asio::require(std::forward<E>(ex), boost::asio::execution::blocking.possibly).execute(std::forward<F>(f));
    else
      boost::asio::require(std::forward<E>(ex), boost::asio::execution::blocking.never).execute(std::forward<F>(f));
  }
  template <bool Dispatch, class E, class F>
  static void submit(const E& ex, F&& f) {
    if constexpr (Dispatch) boost::asio::dispatch(ex, std::forward<F>(f));
    else boost::asio::post(ex, std::forward<F>(f));
  }

  template <class... Args>
  static auto bind(Handler&& handler, Args&&... args) {
    return [h = std::move(handler), tup = std::make_tuple(std::move(args)...)]() mutable {
      std::apply(std::move(h), std::move(tup));
    };
  }
  // A coroutine's executor: borrowed from its frame when the handler can say where it is (the
  // default token's), a copy otherwise.
  static decltype(auto) coroutine_executor(Handler& handler) noexcept {
    if constexpr (requires { handler.handler_.thread_executor(); })
      return (handler.handler_.thread_executor());
    else
      return boost::asio::get_associated_executor(handler);
  }
  static fast_executor fast(const io_executor& ex) {
    return boost::asio::require(ex, boost::asio::execution::outstanding_work.tracked,
                                boost::asio::execution::blocking.never);
  }

  struct none {};
  [[no_unique_address]] std::conditional_t<keeps_work, none, std::optional<work_type>> work_;
  [[no_unique_address]] std::conditional_t<keeps_work || !may_be_fast, none, std::optional<fast_executor>> fast_;
};

// Posts f on ex, its memory from alloc. When ex is type-erased and holds an io_context's
// executor (the usual case), f goes straight to that io_context: no type-erased executor is
// copied or preferred on the way, and f is allocated once (a type-erased post wraps it a
// second time).
template <class Executor, class F, class Alloc = std::allocator<void>>
void post_on(const Executor& ex, F&& f, const Alloc& alloc = {}) {
  if (const auto* io = io_context_target(ex)) {
    return boost::asio::require(*io, boost::asio::execution::blocking.never, boost::asio::execution::allocator(alloc))
        .execute(std::forward<F>(f));
  }
  if constexpr (!std::is_same_v<Executor, boost::asio::io_context::executor_type>)
    boost::asio::post(ex, boost::asio::bind_allocator(alloc, std::forward<F>(f)));
}

// Posts `handler(args...)` to the handler's associated executor (or `ex`), the same way a
// waiter's completion goes (an io_context behind a type-erased executor is used directly).
template <class Handler, class Executor, class... Args>
void post_completion(Handler&& handler, const Executor& ex, Args&&... args) {
  using handler_t = std::decay_t<Handler>;
  handler_t h(std::forward<Handler>(handler));
  completion_work<handler_t, Executor> work(h, ex);
  work.post(std::move(h), std::forward<Args>(args)...);
}

template <class Handler>
using node_allocator_t = boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;

template <class Node, class Handler>
Node* allocate_node(const Handler& h) {
  using alloc_t = typename std::allocator_traits<node_allocator_t<Handler>>::template rebind_alloc<Node>;
  alloc_t alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
  return std::allocator_traits<alloc_t>::allocate(alloc, 1);
}

template <class Node, class Handler>
void deallocate_node(Node* p, const Handler& h) noexcept {
  using alloc_t = typename std::allocator_traits<node_allocator_t<Handler>>::template rebind_alloc<Node>;
  alloc_t alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
  std::allocator_traits<alloc_t>::deallocate(alloc, p, 1);
}

// Destroys and frees a node whose handler may already have been moved out: the allocator is
// taken first.
template <class Node, class Handler>
void destroy_node(Node* p, const Handler& h) noexcept {
  using alloc_t = typename std::allocator_traits<node_allocator_t<Handler>>::template rebind_alloc<Node>;
  alloc_t alloc(boost::asio::get_associated_allocator(h, boost::asio::recycling_allocator<void>()));
  p->~Node();
  std::allocator_traits<alloc_t>::deallocate(alloc, p, 1);
}

} // namespace boost::tornado::detail

#endif
