// Tornado's queues for coroutines (tornado.queues): Queue (FIFO), PriorityQueue (smallest
// first) and LifoQueue. Items are moved, never copied; a blocked put keeps its item outside the
// queue until there is room. The Concurrent* variants serve an io_context run by several threads.
#ifndef BOOST_TORNADO_QUEUES_HPP
#define BOOST_TORNADO_QUEUES_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/error.hpp>
#include <boost/tornado/locks.hpp>
#include <boost/tornado/detail/queue_store.hpp>
#include <boost/tornado/detail/wait_list.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <mutex>

namespace boost::tornado {

// Store: how items are kept (detail::fifo_store, priority_store, lifo_store).
// T must be movable and default-constructible (a failed get completes with T{}).
template <class T, class Store, class Mutex>
class basic_queue {
public:
  using value_type = T;

  // 0 means unbounded; a negative maxsize throws std::invalid_argument.
  explicit basic_queue(long maxsize = 0);
  basic_queue(const basic_queue&) = delete;
  basic_queue& operator=(const basic_queue&) = delete;
  // Pending getters and putters complete with operation_aborted; a blocked put's item is
  // destroyed, never enqueued.
  ~basic_queue();

  std::size_t maxsize() const noexcept { return maxsize_; }
  std::size_t qsize() const;
  bool empty() const;
  bool full() const;

  // Waits for room; void(error_code). TimeoutError on timeout: the item is then not enqueued.
  template <class Token = use_awaitable_t>
  auto put(T item, Deadline timeout = {}, Token&& token = {});
  // Waits for an item; void(error_code, T). TimeoutError on timeout.
  template <class Token = use_awaitable_t>
  auto get(Deadline timeout = {}, Token&& token = {});
  // Throws QueueFull.
  void put_nowait(T item);
  // Throws QueueEmpty.
  T get_nowait();
  // For each get, a task_done() tells join() the item was processed. More calls than items put
  // throw std::invalid_argument("task_done() called too many times").
  void task_done();
  // Waits until every item put has been matched by task_done(); void(error_code).
  template <class Token = use_awaitable_t>
  auto join(Deadline timeout = {}, Token&& token = {}) {
    return finished_.wait(timeout, std::forward<Token>(token));
  }

  // Waiter-list hooks (internal).
  using getter_base = detail::prim_waiter<boost::system::error_code, T>;
  struct putter_base : detail::prim_waiter<boost::system::error_code> {
    using base = detail::prim_waiter<boost::system::error_code>;
    putter_base(const typename base::ops* o, T&& v) : base(o), item(std::move(v)) {}
    T item;
  };
  Mutex& waiter_mutex() const noexcept { return mutex_; }
  void on_waiter_timeout(getter_base* w);
  void on_waiter_cancel(getter_base* w);
  void on_waiter_timeout(putter_base* w);
  void on_waiter_cancel(putter_base* w);

private:
  struct initiate_put;
  struct initiate_get;
  // Both with the lock held.
  bool try_put_locked(T& item);
  bool try_get_locked(T& out);
  void put_internal(T&& item);

  mutable Mutex mutex_;
  Store items_;
  std::size_t maxsize_;
  detail::intrusive_list getters_;
  detail::intrusive_list putters_;
  std::size_t unfinished_ = 0;
  basic_event<Mutex> finished_;
};

template <class T>
using Queue = basic_queue<T, detail::fifo_store<T>, detail::null_mutex>;
template <class T, class Compare = std::less<T>>
using PriorityQueue = basic_queue<T, detail::priority_store<T, Compare>, detail::null_mutex>;
template <class T>
using LifoQueue = basic_queue<T, detail::lifo_store<T>, detail::null_mutex>;

// For an io_context run by several threads.
template <class T>
using ConcurrentQueue = basic_queue<T, detail::fifo_store<T>, std::mutex>;
template <class T, class Compare = std::less<T>>
using ConcurrentPriorityQueue = basic_queue<T, detail::priority_store<T, Compare>, std::mutex>;
template <class T>
using ConcurrentLifoQueue = basic_queue<T, detail::lifo_store<T>, std::mutex>;

} // namespace boost::tornado

#include <boost/tornado/impl/queues.hpp>

#endif
