// Waiters of the Futures, locks and queues: nodes of an intrusive list with an optional
// timeout timer and a cancellation slot. The primitive (the "owner") holds its lock while it links, unlinks
// and completes nodes; a node leaves the list exactly once -- handed a permit or item, timed
// out, cancelled, or flushed when the owner is destroyed -- so a handed-over permit or item is
// never lost to a late cancellation.
#ifndef BOOST_TORNADO_DETAIL_WAIT_LIST_HPP
#define BOOST_TORNADO_DETAIL_WAIT_LIST_HPP

#include <boost/tornado/async.hpp>
#include <boost/tornado/detail/list.hpp>
#include <boost/tornado/detail/waiter.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

namespace boost::tornado::detail {

// The default token's wrapper around a coroutine's handler resumes that coroutine too.
template <class Handler, class Sig, class ErrorMap>
struct resumes_coroutine<outcome_handler<Handler, Sig, ErrorMap>> : resumes_coroutine<Handler> {};

// Completes an operation from inside the call that starts it. A coroutine that started it
// with `co_await` and the default token is suspended in that very call, on this thread: it is
// handed its outcome and continues as soon as the call returns, with no trip through the
// scheduler (as awaiting a finished Future in Tornado). Every other handler is posted (Asio's
// rule: never called from the initiating function).
template <class Handler, class Executor, class... Args>
void complete_initiation(Handler&& handler, const Executor& ex, Args&&... args) {
  if constexpr (awaited_now<std::decay_t<Handler>>::value) {
    std::decay_t<Handler> h(std::forward<Handler>(handler));
    struct flag {
      flag() noexcept { resume_in_place = true; }
      ~flag() { resume_in_place = false; }
    } in_place;
    std::move(h)(std::forward<Args>(args)...);
  } else {
    post_completion(std::forward<Handler>(handler), ex, std::forward<Args>(args)...);
  }
}

// The single-thread primitives' lock: costs nothing.
struct null_mutex {
  void lock() noexcept {}
  void unlock() noexcept {}
};

// Room inside an owner for the one waiter it can have at a time (a stream's read): a node
// that fits is made there, with no allocation.
struct waiter_storage {
  static constexpr std::size_t size = 104;  // a coroutine's read waiter
  static constexpr std::size_t align = alignof(void*);
  alignas(align) unsigned char bytes[size];
  bool busy = false;
};

template <class... Args>
class prim_waiter : public list_node {
public:
  struct ops {
    void (*complete)(prim_waiter*, Args&&...);
    void (*dispatch)(prim_waiter*, Args&&...);
    void (*destroy)(prim_waiter*) noexcept;
  };

  // Completes a node the owner has just unlinked (the owner's lock is held): the handler is
  // posted, never called here.
  void complete(Args&&... args) { ops_->complete(this, std::move(args)...); }
  // The same from an intermediate completion handler already running on the owner's
  // executor (a stream's I/O handler): the handler runs at once if its executor allows it.
  void dispatch(Args&&... args) { ops_->dispatch(this, std::move(args)...); }
  // Frees an unlinked node without calling its handler (a Future whose last handle is gone).
  void destroy() noexcept { ops_->destroy(this); }

protected:
  explicit prim_waiter(const ops* o) noexcept : ops_(o) {}

private:
  const ops* ops_;
};

// Owner requirements, all called with the owner's lock held and the node still linked:
//   void on_waiter_timeout(Base* w);   unlink w and complete it as timed out
//   void on_waiter_cancel(Base* w);    unlink w and complete it as cancelled
//   Mutex& waiter_mutex();
// DefaultExecutor runs handlers that have no associated executor: Asio's system executor for
// the primitives (bound to no executor), the loop's for a Future.
template <class Base, class Handler, class Owner, class DefaultExecutor>
class prim_waiter_node final : public Base {
  using work_t = completion_work<Handler, DefaultExecutor>;

public:
  // Allocates the node with the handler's allocator, or makes it in `storage` when it fits.
  template <class H, class... BaseArgs>
  static prim_waiter_node* create(waiter_storage* storage, H&& h, Owner* owner, const DefaultExecutor& ex,
                                  BaseArgs&&... base_args) {
    if constexpr (sizeof(prim_waiter_node) <= waiter_storage::size &&
                  alignof(prim_waiter_node) <= waiter_storage::align) {
      if (storage && !storage->busy) {
        auto* p = ::new (static_cast<void*>(storage->bytes))
            prim_waiter_node(std::forward<H>(h), owner, ex, std::forward<BaseArgs>(base_args)...);
        storage->busy = true;
        p->storage_ = storage;
        return p;
      }
    }
    prim_waiter_node* p = allocate_node<prim_waiter_node>(h);
    try {
      ::new (static_cast<void*>(p))
          prim_waiter_node(std::forward<H>(h), owner, ex, std::forward<BaseArgs>(base_args)...);
    } catch (...) {
      deallocate_node(p, h);
      throw;
    }
    return p;
  }

  // Called once the node is linked (owner's lock held). The timer is a separate allocation:
  // most waits have none, and a waiting node should stay small. What throws here leaves the
  // wait unarmed and the handler untouched: the caller then unlinks and destroys the node.
  void arm(const Deadline& deadline, const DefaultExecutor& ex) {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.template emplace<cancel_handler>(this);
    if (!deadline) return;
    timer_ = std::make_unique<boost::asio::steady_timer>(boost::asio::get_associated_executor(handler_, ex),
                                                         deadline.when());
    refs_.fetch_add(1, std::memory_order_relaxed);  // the timer's handler holds one
    arming_ = true;
    timer_handler h(this);
    try {
      timer_->async_wait(std::move(h));
    } catch (...) {
      // Asio made no operation, or destroyed it with our handler inside (which, arming_, only
      // gave its reference back): either way the wait never began.
      if (h.give_back()) refs_.fetch_sub(1, std::memory_order_relaxed);
      arming_ = false;
      timer_.reset();
      throw;
    }
    arming_ = false;
  }

private:
  struct cancel_handler {
    prim_waiter_node* self;
    explicit cancel_handler(prim_waiter_node* s) noexcept : self(s) {}
    void operator()(boost::asio::cancellation_type) {
      prim_waiter_node* node = self;  // completing the node destroys this handler
      Owner* owner = node->owner_;
      std::lock_guard lock(owner->waiter_mutex());
      if (node->linked()) owner->on_waiter_cancel(node);
    }
  };

  static const typename Base::ops node_ops;

  template <class H, class... BaseArgs>
  prim_waiter_node(H&& h, Owner* owner, const DefaultExecutor& ex, BaseArgs&&... base_args)
      : Base(&node_ops, std::forward<BaseArgs>(base_args)...), handler_(std::forward<H>(h)),
        work_(handler_, ex), owner_(owner) {}

  // The timer's handler keeps the node alive until it has run -- or, if the io_context is
  // destroyed with it still queued, until it is destroyed -- so the node is freed exactly once,
  // by whichever of it and the completion lets go last.
  class timer_handler {
  public:
    explicit timer_handler(prim_waiter_node* n) noexcept : node_(n) {}
    timer_handler(timer_handler&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
    timer_handler& operator=(timer_handler&&) = delete;
    // Destroyed without having run: its io_context is going away. The wait ends as cancelled,
    // so that the waiting coroutine's completion is destroyed with the context's other work
    // instead of keeping the primitive -- and whatever owns it -- alive.
    ~timer_handler() {
      if (!node_) return;
      if (!node_->arming_) node_->on_context_shutdown();  // arming: see arm()
      node_->release();
    }
    // Lets go of the node without touching it: true if this handler still held it.
    bool give_back() noexcept { return std::exchange(node_, nullptr) != nullptr; }
    void operator()(const boost::system::error_code& ec) {
      prim_waiter_node* n = std::exchange(node_, nullptr);
      if (!ec) n->on_timer();
      n->release();
    }

  private:
    prim_waiter_node* node_;
  };

  void on_context_shutdown() {
    if (completed_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(owner_->waiter_mutex());
    if (!completed_.load(std::memory_order_relaxed) && this->linked()) owner_->on_waiter_cancel(this);
  }

  void on_timer() {
    if (completed_.load(std::memory_order_acquire)) return;
    std::lock_guard lock(owner_->waiter_mutex());
    if (!completed_.load(std::memory_order_relaxed)) owner_->on_waiter_timeout(this);
  }

  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) free_self();
  }

  static void do_complete(typename Base::prim_waiter* base, auto&&... args) {
    finish_and<false>(base, std::forward<decltype(args)>(args)...);
  }
  static void do_dispatch(typename Base::prim_waiter* base, auto&&... args) {
    finish_and<true>(base, std::forward<decltype(args)>(args)...);
  }

  template <bool Dispatch>
  static void finish_and(typename Base::prim_waiter* base, auto&&... args) {
    auto* self = static_cast<prim_waiter_node*>(base);
    auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
    if (slot.is_connected()) slot.clear();
    self->alloc_ = boost::asio::get_associated_allocator(self->handler_, boost::asio::recycling_allocator<void>());
    Handler handler(std::move(self->handler_));
    work_t work(std::move(self->work_));
    self->finish();
    if constexpr (Dispatch)
      work.dispatch(std::move(handler), std::forward<decltype(args)>(args)...);
    else
      work.post(std::move(handler), std::forward<decltype(args)>(args)...);
  }

  static void do_destroy(typename Base::prim_waiter* base) noexcept {
    auto* self = static_cast<prim_waiter_node*>(base);
    auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
    if (slot.is_connected()) slot.clear();
    self->finish();
  }

  // Lets go of the completion's reference. Without a timer there is no other: free at once.
  void finish() noexcept {
    if (!timer_) return free_self();
    completed_.store(true, std::memory_order_release);
    timer_->cancel();
    release();
  }

  void free_self() noexcept {
    if (waiter_storage* storage = storage_) {
      this->~prim_waiter_node();
      storage->busy = false;
      return;
    }
    destroy_node(this, boost::asio::bind_allocator(alloc_, 0));
  }

  Handler handler_;
  work_t work_;
  Owner* owner_;
  waiter_storage* storage_ = nullptr;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  node_allocator_t<Handler> alloc_{boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>())};
  std::atomic<int> refs_{1};  // the list/completion, plus the timer's handler while armed
  std::atomic<bool> completed_{false};
  bool arming_ = false;  // arm() is starting the timer's wait
};

template <class Base, class Handler, class Owner, class DefaultExecutor>
const typename Base::ops prim_waiter_node<Base, Handler, Owner, DefaultExecutor>::node_ops{
    &prim_waiter_node::do_complete, &prim_waiter_node::do_dispatch, &prim_waiter_node::do_destroy};

// Starts a wait: makes the node, links it at the back of `list` and arms it. The owner's lock
// is held by the caller.
template <class Base, class Owner, class Handler, class DefaultExecutor, class... BaseArgs>
void enqueue_waiter_in(waiter_storage* storage, const DefaultExecutor& ex, Handler&& handler, Owner* owner,
                       intrusive_list& list, const Deadline& deadline, BaseArgs&&... base_args) {
  using node = prim_waiter_node<Base, std::decay_t<Handler>, Owner, DefaultExecutor>;
  node* n = node::create(storage, std::forward<Handler>(handler), owner, ex, std::forward<BaseArgs>(base_args)...);
  list.push_back(n);
  try {
    n->arm(deadline, ex);  // may allocate (the timer, the cancellation slot's handler)
  } catch (...) {
    // The wait never began (see arm): the exception is the caller's answer, and the handler
    // is never called.
    intrusive_list::unlink(n);
    n->destroy();
    throw;
  }
}

template <class Base, class Owner, class Handler, class DefaultExecutor, class... BaseArgs>
void enqueue_waiter_on(const DefaultExecutor& ex, Handler&& handler, Owner* owner, intrusive_list& list,
                       const Deadline& deadline, BaseArgs&&... base_args) {
  enqueue_waiter_in<Base>(nullptr, ex, std::forward<Handler>(handler), owner, list, deadline,
                          std::forward<BaseArgs>(base_args)...);
}

// The primitives are bound to no executor: handlers without one run on Asio's system executor.
template <class Base, class Owner, class Handler, class... BaseArgs>
void enqueue_waiter(Handler&& handler, Owner* owner, intrusive_list& list, const Deadline& deadline,
                    BaseArgs&&... base_args) {
  enqueue_waiter_on<Base>(boost::asio::system_executor(), std::forward<Handler>(handler), owner, list,
                          deadline, std::forward<BaseArgs>(base_args)...);
}

// Completes every waiter of `list` with the arguments make_args() returns as a tuple (the owner
// is going away, or releases everyone).
template <class Base, class MakeArgs>
void complete_all(intrusive_list& list, MakeArgs make_args) {
  while (list_node* n = list.pop_front())
    std::apply([n](auto&&... a) { static_cast<Base*>(n)->complete(std::move(a)...); }, make_args());
}

} // namespace boost::tornado::detail

#endif
