#ifndef BOOST_TORNADO_IMPL_QUEUES_HPP
#define BOOST_TORNADO_IMPL_QUEUES_HPP

#include <boost/asio/async_result.hpp>
#include <stdexcept>

namespace boost::tornado {

template <class T, class Store, class Mutex>
basic_queue<T, Store, Mutex>::basic_queue(long maxsize)
    : maxsize_(maxsize < 0 ? 0 : static_cast<std::size_t>(maxsize)) {
  if (maxsize < 0) throw std::invalid_argument("maxsize can't be negative");
  finished_.set();
}

template <class T, class Store, class Mutex>
basic_queue<T, Store, Mutex>::~basic_queue() {
  std::lock_guard lock(mutex_);
  detail::complete_all<getter_base>(getters_, [] { return std::make_tuple(detail::aborted(), T{}); });
  detail::complete_all<putter_base>(putters_, [] { return std::make_tuple(detail::aborted()); });
}

template <class T, class Store, class Mutex>
std::size_t basic_queue<T, Store, Mutex>::qsize() const {
  std::lock_guard lock(mutex_);
  return items_.size();
}

template <class T, class Store, class Mutex>
bool basic_queue<T, Store, Mutex>::empty() const {
  return qsize() == 0;
}

template <class T, class Store, class Mutex>
bool basic_queue<T, Store, Mutex>::full() const {
  std::lock_guard lock(mutex_);
  return maxsize_ != 0 && items_.size() >= maxsize_;
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::put_internal(T&& item) {
  ++unfinished_;
  finished_.clear();
  items_.push(std::move(item));
}

// With getters waiting the queue is empty: the item goes to the oldest getter.
template <class T, class Store, class Mutex>
bool basic_queue<T, Store, Mutex>::try_put_locked(T& item) {
  if (!getters_.empty()) {
    ++unfinished_;
    finished_.clear();
    static_cast<getter_base*>(getters_.pop_front())->complete({}, std::move(item));
    return true;
  }
  if (maxsize_ != 0 && items_.size() >= maxsize_) return false;
  put_internal(std::move(item));
  return true;
}

// With putters waiting the queue is full: the oldest putter's item moves in first.
template <class T, class Store, class Mutex>
bool basic_queue<T, Store, Mutex>::try_get_locked(T& out) {
  if (!putters_.empty()) {
    auto* p = static_cast<putter_base*>(putters_.pop_front());
    put_internal(std::move(p->item));
    p->complete({});
    out = items_.pop();
    return true;
  }
  if (items_.size() == 0) return false;
  out = items_.pop();
  return true;
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::put_nowait(T item) {
  std::lock_guard lock(mutex_);
  if (!try_put_locked(item)) throw QueueFull();
}

template <class T, class Store, class Mutex>
T basic_queue<T, Store, Mutex>::get_nowait() {
  std::lock_guard lock(mutex_);
  T out{};
  if (!try_get_locked(out)) throw QueueEmpty();
  return out;
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::task_done() {
  std::lock_guard lock(mutex_);
  if (unfinished_ == 0) throw std::invalid_argument("task_done() called too many times");
  if (--unfinished_ == 0) finished_.set();
}

template <class T, class Store, class Mutex>
struct basic_queue<T, Store, Mutex>::initiate_put {
  basic_queue* self;
  template <class Handler>
  void operator()(Handler&& handler, T item, Deadline timeout) const {
    std::unique_lock lock(self->mutex_);
    if (self->try_put_locked(item)) {
      lock.unlock();
      detail::complete_initiation(std::forward<Handler>(handler), boost::asio::system_executor(),
                                  boost::system::error_code());
      return;
    }
    detail::enqueue_waiter<putter_base>(std::forward<Handler>(handler), self, self->putters_, timeout,
                                        std::move(item));
  }
};

template <class T, class Store, class Mutex>
struct basic_queue<T, Store, Mutex>::initiate_get {
  basic_queue* self;
  template <class Handler>
  void operator()(Handler&& handler, Deadline timeout) const {
    std::unique_lock lock(self->mutex_);
    T out{};
    if (self->try_get_locked(out)) {
      lock.unlock();
      detail::complete_initiation(std::forward<Handler>(handler), boost::asio::system_executor(),
                                  boost::system::error_code(), std::move(out));
      return;
    }
    detail::enqueue_waiter<getter_base>(std::forward<Handler>(handler), self, self->getters_, timeout);
  }
};

template <class T, class Store, class Mutex>
template <class Token>
auto basic_queue<T, Store, Mutex>::put(T item, Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(initiate_put{this}, token,
                                                                             std::move(item), timeout);
}

template <class T, class Store, class Mutex>
template <class Token>
auto basic_queue<T, Store, Mutex>::get(Deadline timeout, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, T)>(initiate_get{this}, token, timeout);
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::on_waiter_timeout(getter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(make_error_code(error::timeout), T{});
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::on_waiter_cancel(getter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(detail::aborted(), T{});
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::on_waiter_timeout(putter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(make_error_code(error::timeout));  // the item is destroyed, never enqueued
}

template <class T, class Store, class Mutex>
void basic_queue<T, Store, Mutex>::on_waiter_cancel(putter_base* w) {
  detail::intrusive_list::unlink(w);
  w->complete(detail::aborted());
}

} // namespace boost::tornado

#endif
