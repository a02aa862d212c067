// Tornado's IOLoop over asio::io_context: the thread's current loop, start/stop/close,
// run_sync, readiness handlers for file descriptors, timeouts, thread-safe callbacks and
// executors; and PeriodicCallback.
#ifndef BOOST_TORNADO_IOLOOP_HPP
#define BOOST_TORNADO_IOLOOP_HPP

#include <boost/tornado/detail/config.hpp>
#include <boost/tornado/async.hpp>
#include <boost/tornado/error.hpp>
#include <boost/tornado/log.hpp>
#include <boost/tornado/detail/callback.hpp>
#include <boost/tornado/detail/timer_queue.hpp>
#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace boost::tornado {

template <class T> class Future;
class IOLoop;

namespace detail {
struct fd_entry;
struct fd_watcher;
struct signal_slots;
// An asio::awaitable, or what an operation returns for the default token.
template <class T> struct is_awaitable : std::false_type {};
template <class T, class E> struct is_awaitable<boost::asio::awaitable<T, E>> : std::true_type {};
template <class Sig, class I, class M, class... A> struct is_awaitable<awaited_op<Sig, I, M, A...>> : std::true_type {};
// Either of them as an asio::awaitable (for co_spawn).
template <class A>
auto as_awaitable(A&& a) {
  if constexpr (is_awaited_op<std::decay_t<A>>::value)
    return std::move(a).as_awaitable();
  else
    return std::decay_t<A>(std::forward<A>(a));
}

// On each io_context an IOLoop rides: which loop that is (at most one). The generation moves
// on whenever a loop attaches or goes.
struct ioloop_service : boost::asio::execution_context::service {
  static inline boost::asio::execution_context::id id;
  explicit ioloop_service(boost::asio::execution_context& ctx) : service(ctx) {}
  void shutdown() override {}
  IOLoop* loop = nullptr;
  std::uint64_t generation = 0;
};

// What the loop's handlers on its io_context hold instead of the loop. An application's
// io_context (AsyncIOMainLoop) can run them after the loop is gone: get() then finds no loop.
// The service lives as long as the io_context, so as long as any handler can run. What may
// outlive the io_context itself (a PeriodicCallback, a Future's callback) holds IOLoop::alive_.
struct loop_ref {
  ioloop_service* svc = nullptr;
  std::uint64_t generation = 0;
  IOLoop* get() const noexcept { return svc->generation == generation ? svc->loop : nullptr; }
};
} // namespace detail

// Returned by add_timeout/call_later/call_at; pass it to remove_timeout. Copyable, and safe
// to remove after the timeout ran or was removed.
class TimeoutHandle {
public:
  TimeoutHandle() noexcept = default;
  explicit operator bool() const noexcept { return h_.index != UINT32_MAX; }

private:
  friend class IOLoop;
  explicit TimeoutHandle(detail::timer_queue::handle h) noexcept : h_(h) {}
  detail::timer_queue::handle h_;
};

class IOLoop {
public:
  using executor_type = boost::asio::io_context::executor_type;
  using clock = std::chrono::steady_clock;

  // Events for add_handler. ERROR is EPOLLERR|EPOLLHUP as in Tornado 6; the summary's 0x008
  // is accepted too.
  static constexpr int NONE = 0;
  static constexpr int READ = 0x001;
  static constexpr int WRITE = 0x004;
  static constexpr int ERROR = 0x018;

  using fd_handler = std::function<void(int fd, int events)>;
  using factory = std::function<std::unique_ptr<IOLoop>()>;

  // An IOLoop that owns its io_context. As Tornado 6's IOLoop(make_current=True), it becomes
  // the thread's current loop unless make_current is false.
  explicit IOLoop(bool make_current = true);
  // An IOLoop over an io_context the application owns (see AsyncIOMainLoop). At most one
  // IOLoop per io_context: a second one throws std::logic_error.
  explicit IOLoop(boost::asio::io_context& context, bool make_current = true);
  IOLoop(const IOLoop&) = delete;
  IOLoop& operator=(const IOLoop&) = delete;
  virtual ~IOLoop();

  // The thread's current loop: the one made current, else the one whose io_context is running
  // on this thread, else (current()) a new one created on demand with the configured factory.
  static IOLoop& current();
  static IOLoop* current(bool instance);
  static IOLoop& instance() { return current(); }
  // The IOLoop attached to an io_context, if any.
  static IOLoop* from(boost::asio::io_context& context) noexcept;
  static void clear_current() noexcept;
  void make_current() noexcept;
  void install() noexcept { make_current(); }
  // Chooses what current() creates on demand (Tornado's IOLoop.configure(impl)); an empty
  // factory restores the default (a plain IOLoop).
  static void configure(factory f);

  boost::asio::io_context& context() noexcept { return *context_; }
  executor_type get_executor() noexcept { return context_->get_executor(); }

  // Runs until stop(). Throws std::logic_error if already running or closed. The loop is
  // current on this thread while it runs.
  void start();
  // Thread-safe. start() -- or the application's io_context::run() -- returns after the
  // handler being run (if any) finishes; queued work stays for the next start().
  void stop() noexcept;
  // Releases everything; with all_fds, closes the descriptors registered with add_handler.
  // The loop must not be used afterwards (callbacks added later are dropped).
  void close(bool all_fds = false);
  bool closed() const noexcept { return closed_.load(); }
  bool running() const noexcept { return running_.load(); }

  // Runs func -- returning asio::awaitable<T>, Future<T> or a plain T -- on the loop and
  // returns its result or rethrows its exception. On timeout the work is cancelled and
  // TimeoutError is thrown; if the loop is stopped first, a system_error(error::loop_stopped).
  // The timeout is relative, in seconds or as a duration, as Tornado's run_sync(timeout=...).
  template <class F>
  auto run_sync(F&& func) { return run_sync_impl(std::forward<F>(func), std::nullopt); }
  template <class F, class Rep, class Period>
  auto run_sync(F&& func, std::chrono::duration<Rep, Period> timeout) {
    return run_sync_impl(std::forward<F>(func), detail::saturating_ticks(timeout));
  }
  template <class F>
  auto run_sync(F&& func, double timeout_seconds) {
    return run_sync(std::forward<F>(func), std::chrono::duration<double>(timeout_seconds));
  }

  // IOLoop::time(): seconds on the steady clock, the clock of every deadline.
  static double time() noexcept {
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
  }

  // Readiness of any file descriptor. The handler runs as handler(fd, events) with only the
  // requested events, and again while the descriptor stays ready (level-triggered).
  void add_handler(int fd, fd_handler handler, int events);
  void update_handler(int fd, int events);
  void remove_handler(int fd) noexcept;

  template <class F, class... Args>
  TimeoutHandle add_timeout(Deadline deadline, F&& callback, Args&&... args);
  template <class Rep, class Period, class F, class... Args>
  TimeoutHandle call_later(std::chrono::duration<Rep, Period> delay, F&& callback, Args&&... args);
  template <class F, class... Args>
  TimeoutHandle call_later(double delay_seconds, F&& callback, Args&&... args);
  template <class F, class... Args>
  TimeoutHandle call_at(Deadline when, F&& callback, Args&&... args);
  // Safe after the timeout ran, for an unknown handle, and from inside another timeout.
  void remove_timeout(TimeoutHandle handle) noexcept;

  // Thread-safe, FIFO; wakes the loop. A callback returning an awaitable or a Future is
  // spawned and its exception logged.
  template <class F, class... Args>
  void add_callback(F&& callback, Args&&... args);
  // Async-signal-safe: the callable must fit the loop's small buffer and be nothrow-movable.
  // Delivered while the loop runs in start()/run_sync().
  template <class F>
  void add_callback_from_signal(F&& callback) noexcept;
  // Like add_callback; also accepts an asio::awaitable, which is spawned.
  template <class F, class... Args>
  void spawn_callback(F&& callback, Args&&... args);

  template <class T, class F>
  void add_future(Future<T> future, F&& callback);

  // Runs fn(args...) on the executor and returns a Future settled on this loop. The nullptr
  // overload uses the default executor: a thread pool owned by the loop, or the one set with
  // set_default_executor.
  template <class Executor, class F, class... Args>
  auto run_in_executor(const Executor& executor, F&& fn, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;
  template <class F, class... Args>
  auto run_in_executor(std::nullptr_t, F&& fn, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;
  // Any Asio executor: a thread pool's, a strand, DummyExecutor.
  void set_default_executor(boost::asio::any_completion_executor executor);
  boost::asio::any_completion_executor default_executor();

private:
  friend class PeriodicCallback;
  template <class F>
  auto run_sync_impl(F&& func, std::optional<clock::duration> timeout);
  // Calls a callback once (it may be moved from).
  template <class F> void invoke_callback(F& f) noexcept;
  template <class A, class Keep = std::nullptr_t> void spawn_awaitable(A&& aw, Keep keep = nullptr);
  void check_startable() const;  // start()'s refusals, before run_sync() spawns anything
  TimeoutHandle schedule(clock::time_point when, detail::callback cb);
  void arm_timer(clock::time_point when);
  void on_timer(const boost::system::error_code& ec, std::uint64_t arm_id);
  void rearm_timer();
  void watch_fds();
  void poll_fds();
  void arm_signal_wait();
  void drain_signal_callbacks();
  bool signal_push(detail::callback&& cb) noexcept;
  void register_loop();

  std::unique_ptr<boost::asio::io_context> owned_context_;
  boost::asio::io_context* context_;
  detail::loop_ref ref_;  // for handlers left on context_ (see loop_ref)
  detail::timer_queue timers_;
  std::vector<detail::timer_queue::handle> due_;
  // Made on first use: Asio's reactor (and an epoll_wait per queue cycle) only when needed.
  std::optional<boost::asio::steady_timer> timer_;
  bool timer_armed_ = false;
  clock::time_point armed_at_{};
  std::uint64_t arm_id_ = 0;
  std::unordered_map<int, std::shared_ptr<detail::fd_entry>> handlers_;
  std::unique_ptr<detail::fd_watcher> fds_;
  std::atomic<bool> stop_requested_{false};  // stop() from another thread sets it
  std::uint64_t pass_ = 0;                    // numbers the one-pass runs (see start())
  std::atomic<bool> running_{false};
  std::atomic<bool> closed_{false};
  std::unique_ptr<boost::asio::thread_pool> default_pool_;
  std::optional<boost::asio::any_completion_executor> default_executor_;
  std::unique_ptr<detail::signal_slots> signals_;
  // Expires with the loop: what may outlive the loop and its io_context (a PeriodicCallback's
  // timeout handle, add_future's callback) checks it before touching the loop.
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

// Calls a callback periodically: every callback_time (milliseconds, or a duration), first at
// start + period; later runs keep the original schedule (no drift) and skip missed slots on
// overrun. A callback returning an awaitable is awaited before the next run is scheduled.
// jitter (0..1) varies each period by +-jitter/2 of it.
class PeriodicCallback {
public:
  template <class F>
  PeriodicCallback(F callback, double callback_time_ms, double jitter = 0);
  template <class F, class Rep, class Period>
  PeriodicCallback(F callback, std::chrono::duration<Rep, Period> callback_time, double jitter = 0)
      : PeriodicCallback(std::move(callback),
                         std::chrono::duration<double, std::milli>(callback_time).count(),
                         jitter) {}
  PeriodicCallback(const PeriodicCallback&) = delete;
  PeriodicCallback& operator=(const PeriodicCallback&) = delete;
  ~PeriodicCallback();

  // Starts on IOLoop::current() of the calling thread.
  void start();
  void stop();
  bool is_running() const noexcept;
  double callback_time() const noexcept;  // milliseconds
  double jitter() const noexcept;

private:
  struct state;
  std::shared_ptr<state> state_;
};

namespace detail {
// Tornado's PeriodicCallback schedule arithmetic, in seconds on IOLoop::time().
struct periodic_schedule {
  double callback_time_ms;
  double jitter = 0;
  double next_timeout = 0;
  // `random` in [0, 1) as Python's random.random().
  BOOST_TORNADO_DECL void update_next(double current_time, double random);
};
} // namespace detail

} // namespace boost::tornado

// Future and IOLoop depend on each other: concurrent.hpp completes both, then pulls in the
// template bodies of each.
#include <boost/tornado/concurrent.hpp>

#endif
