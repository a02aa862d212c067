#ifndef BOOST_TORNADO_IMPL_IOLOOP_IPP
#define BOOST_TORNADO_IMPL_IOLOOP_IPP

#include <boost/tornado/ioloop.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <mutex>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace boost::tornado {
namespace detail {

struct loop_registry {
  std::mutex mutex;
  std::vector<IOLoop*> loops;
  IOLoop::factory factory;
};

inline loop_registry& registry() {
  static loop_registry r;
  return r;
}

inline thread_local IOLoop* thread_current = nullptr;
inline thread_local std::vector<std::unique_ptr<IOLoop>> thread_owned;

struct fd_entry {
  int fd;
  int events;
  IOLoop::fd_handler handler;
  bool edge_triggered = false;
};

// add_handler's descriptors live in a level-triggered epoll set of their own, whose descriptor
// Asio watches: a handler runs again on every loop iteration while its fd stays ready, the fd
// may also be used by other Asio objects, and the loop never closes it.
struct fd_watcher {
  explicit fd_watcher(boost::asio::io_context& ctx) : epoll(ctx) {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
      throw boost::system::system_error(errno, boost::system::system_category(), "epoll_create1");
    epoll.assign(fd);
  }
  boost::asio::posix::stream_descriptor epoll;
  bool armed = false;
  bool polling = false;
};

BOOST_TORNADO_DECL bool is_cancellation(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    return se.code() == make_error_code(error::cancelled) ||
           se.code() == boost::asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

// add_callback_from_signal: a fixed ring of slots claimed with atomics, and an eventfd to
// wake the loop; nothing in the signal path allocates or locks.
struct signal_slots {
  static constexpr std::size_t capacity = 64;
  signal_slots() : event_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (event_fd < 0)
      throw boost::system::system_error(errno, boost::system::system_category(), "eventfd");
  }
  enum : unsigned char { free_slot, writing, ready };
  std::array<std::atomic<unsigned char>, capacity> state{};
  std::array<std::uint64_t, capacity> seq{};
  std::array<callback, capacity> cbs;
  std::atomic<std::uint64_t> next_seq{0};
  int event_fd;
  // Watches a dup of event_fd, made when start() first arms it.
  std::optional<boost::asio::posix::stream_descriptor> wake;
  bool armed = false;
  // Counts the waits: a completion of an earlier one (queued when start() returned, run at
  // the next start()) is stale and must neither re-arm nor count as the current wait.
  std::uint64_t generation = 0;
};

BOOST_TORNADO_DECL void periodic_schedule::update_next(double current_time, double random) {
  double period = callback_time_ms / 1000.0;
  if (jitter != 0) period *= 1 + (jitter * (random - 0.5));
  if (next_timeout <= current_time)
    next_timeout += (std::floor((current_time - next_timeout) / period) + 1) * period;
  else
    next_timeout += period;  // the clock went backwards: still move forward
}

} // namespace detail

BOOST_TORNADO_DECL IOLoop::IOLoop(bool make_current)
    // One thread runs the loop and does all its I/O (Tornado's model): Asio queues what that
    // thread posts without locking and takes no lock per I/O operation; posting from other
    // threads stays safe (the scheduler keeps its lock).
    : owned_context_(std::make_unique<boost::asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO)), context_(owned_context_.get()) {
  register_loop();
  if (make_current) this->make_current();
}

BOOST_TORNADO_DECL IOLoop::IOLoop(boost::asio::io_context& context, bool make_current)
    : context_(&context) {
  register_loop();
  if (make_current) this->make_current();
}

BOOST_TORNADO_DECL void IOLoop::register_loop() {
  // What may throw first: a constructor that throws runs no destructor, so nothing may point
  // at this loop by then.
  signals_ = std::make_unique<detail::signal_slots>();
  auto& svc = boost::asio::use_service<detail::ioloop_service>(*context_);
  auto& reg = detail::registry();
  std::lock_guard lock(reg.mutex);
  if (svc.loop) throw std::logic_error("IOLoop is already attached to this io_context");
  reg.loops.push_back(this);  // may throw (allocation): before the service points here
  svc.loop = this;
  ref_ = detail::loop_ref{&svc, ++svc.generation};
}

BOOST_TORNADO_DECL IOLoop::~IOLoop() {
  if (!closed_) close(false);
  {
    auto& reg = detail::registry();
    std::lock_guard lock(reg.mutex);
    reg.loops.erase(std::remove(reg.loops.begin(), reg.loops.end(), this), reg.loops.end());
    ref_.svc->loop = nullptr;
    ++ref_.svc->generation;  // what the loop left queued on context_ now finds no loop
  }
  if (detail::thread_current == this) detail::thread_current = nullptr;
  // Our pending waits check for operation_aborted before touching the loop; on an owned
  // context they are destroyed with it.
  boost::system::error_code ignored;
  if (timer_) timer_->cancel();
  if (fds_) fds_->epoll.close(ignored);
  if (signals_->wake) signals_->wake->close(ignored);
  ::close(signals_->event_fd);
}

BOOST_TORNADO_DECL IOLoop* IOLoop::current(bool instance) {
  if (detail::thread_current) return detail::thread_current;
  auto& reg = detail::registry();
  factory make;
  {
    std::lock_guard lock(reg.mutex);
    for (IOLoop* loop : reg.loops)
      if (loop->context_->get_executor().running_in_this_thread()) return loop;
    if (!instance) return nullptr;
    make = reg.factory;
  }
  std::unique_ptr<IOLoop> loop = make ? make() : std::make_unique<IOLoop>(false);
  IOLoop* p = loop.get();
  detail::thread_owned.push_back(std::move(loop));
  p->make_current();
  return p;
}

BOOST_TORNADO_DECL IOLoop& IOLoop::current() { return *current(true); }

BOOST_TORNADO_DECL IOLoop* IOLoop::from(boost::asio::io_context& context) noexcept {
  if (!boost::asio::has_service<detail::ioloop_service>(context)) return nullptr;
  auto& reg = detail::registry();
  std::lock_guard lock(reg.mutex);
  return boost::asio::use_service<detail::ioloop_service>(context).loop;
}

BOOST_TORNADO_DECL void IOLoop::clear_current() noexcept { detail::thread_current = nullptr; }

BOOST_TORNADO_DECL void IOLoop::make_current() noexcept { detail::thread_current = this; }

BOOST_TORNADO_DECL void IOLoop::configure(factory f) {
  auto& reg = detail::registry();
  std::lock_guard lock(reg.mutex);
  reg.factory = std::move(f);
}

BOOST_TORNADO_DECL void IOLoop::check_startable() const {
  if (closed_) throw std::logic_error("IOLoop is closed");
  // Also inside a handler of the io_context (the application's own run(), under an
  // AsyncIOMainLoop): a nested run would restart a context that is running and stop the
  // application's run when it ends. Tornado raises here too.
  if (running_.load() || context_->get_executor().running_in_this_thread())
    throw std::logic_error("IOLoop is already running");
}

BOOST_TORNADO_DECL void IOLoop::start() {
  check_startable();
  // Before running_ is published: a stop() from another thread that sees the loop running
  // stops the context, and a restart after that would undo it.
  context_->restart();
  if (running_.exchange(true)) throw std::logic_error("IOLoop is already running");
  struct restore {
    IOLoop* self;
    IOLoop* old = detail::thread_current;
    ~restore() {
      detail::thread_current = old;
      if (self->signals_->armed) {
        // The wait ends with this run: the next start() arms a new one (drain first).
        self->signals_->wake->cancel();
        self->signals_->armed = false;
        ++self->signals_->generation;
      }
      // A stop() that saw the loop not yet running but landed during this run ended it; it
      // is not also a stop before the next start().
      self->stop_requested_ = false;
      ++self->pass_;  // a one-pass marker still queued is stale now
      self->running_ = false;
    }
  } guard{this};
  detail::thread_current = this;
  drain_signal_callbacks();
  arm_signal_wait();
  if (stop_requested_.exchange(false)) {
    // stop() before start(): one pass over what is ready, then return (as asyncio's one
    // iteration). A marker posted behind the ready handlers ends the pass; what they add waits
    // for the next start(), so a callback that adds itself again cannot hold the pass open.
    // If the pass ends otherwise (a stop() in it, an exception), the marker stays queued: it
    // belongs to this pass only and does nothing later.
    const std::uint64_t pass = ++pass_;
    boost::asio::post(*context_, [ref = ref_, pass] {
      if (IOLoop* loop = ref.get(); loop && pass == loop->pass_) loop->context_->stop();
    });
    context_->run();
    return;
  }
  auto work = boost::asio::make_work_guard(*context_);
  context_->run();
}

BOOST_TORNADO_DECL void IOLoop::stop() noexcept {
  // Inside start(), or inside the application's own io_context::run() (AsyncIOMainLoop):
  // stop that run. Otherwise it is a stop before start(), which then makes one pass only.
  if (!running_.load() && !context_->get_executor().running_in_this_thread())
    stop_requested_ = true;
  context_->stop();
}

BOOST_TORNADO_DECL void IOLoop::close(bool all_fds) {
  if (closed_.exchange(true)) return;
  for (auto& [fd, entry] : handlers_) {
    ::epoll_ctl(fds_->epoll.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
    if (all_fds) ::close(fd);
  }
  handlers_.clear();
  boost::system::error_code ignored;
  if (fds_) fds_->epoll.cancel(ignored);
  timers_.clear();
  if (timer_) timer_->cancel();
  timer_armed_ = false;
  if (default_pool_) {
    default_pool_->join();
  }
  if (detail::thread_current == this) detail::thread_current = nullptr;
}

// ---- timeouts ----

BOOST_TORNADO_DECL TimeoutHandle IOLoop::schedule(clock::time_point when, detail::callback cb) {
  auto h = timers_.add(when, std::move(cb));
  if (!timer_armed_ || when < armed_at_) arm_timer(when);
  return TimeoutHandle(h);
}

BOOST_TORNADO_DECL void IOLoop::remove_timeout(TimeoutHandle handle) noexcept {
  if (!handle) return;
  timers_.remove(handle.h_);
  if (timers_.size() == 0 && timer_armed_) {
    // Nothing left to wait for: let run() return when the loop has no other work.
    timer_->cancel();
    timer_armed_ = false;
  }
}

BOOST_TORNADO_DECL void IOLoop::arm_timer(clock::time_point when) {
  timer_armed_ = true;
  armed_at_ = when;
  std::uint64_t id = ++arm_id_;
  if (!timer_) timer_.emplace(*context_);
  timer_->expires_at(when);
  timer_->async_wait([ref = ref_, id](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;  // re-armed, closed or destroyed
    // Destroyed after the timer fired, with this handler already queued: nothing to do.
    if (IOLoop* loop = ref.get()) loop->on_timer(ec, id);
  });
}

BOOST_TORNADO_DECL void IOLoop::rearm_timer() {
  clock::time_point when;
  if (timers_.earliest(when)) {
    if (!timer_armed_ || when < armed_at_) arm_timer(when);
  }
}

BOOST_TORNADO_DECL void IOLoop::on_timer(const boost::system::error_code&, std::uint64_t id) {
  if (id != arm_id_) return;
  timer_armed_ = false;
  std::vector<detail::timer_queue::handle> due;
  due.swap(due_);
  due.clear();
  timers_.pop_due(clock::now(), due);
  for (auto h : due) {
    // A timeout removed by an earlier one in this batch is skipped.
    if (detail::callback cb = timers_.take(h)) cb();
  }
  due.clear();
  due_.swap(due);
  rearm_timer();
}

// ---- file descriptor handlers ----

namespace detail {
inline std::uint32_t epoll_mask(int events) {
  std::uint32_t m = 0;
  if (events & IOLoop::READ) m |= EPOLLIN;
  if (events & IOLoop::WRITE) m |= EPOLLOUT;
  return m;  // EPOLLERR and EPOLLHUP are always reported
}
} // namespace detail

BOOST_TORNADO_DECL void IOLoop::add_handler(int fd, fd_handler handler, int events) {
  if (handlers_.count(fd)) throw std::invalid_argument("fd " + std::to_string(fd) + " added twice");
  if (!fds_) fds_ = std::make_unique<detail::fd_watcher>(*context_);
  epoll_event ev{};
  ev.events = detail::epoll_mask(events);
  ev.data.fd = fd;
  if (::epoll_ctl(fds_->epoll.native_handle(), EPOLL_CTL_ADD, fd, &ev) < 0)
    throw boost::system::system_error(errno, boost::system::system_category(), "add_handler");
  handlers_.emplace(fd, std::make_shared<detail::fd_entry>(detail::fd_entry{fd, events, std::move(handler), false}));
  watch_fds();
}

BOOST_TORNADO_DECL void IOLoop::update_handler(int fd, int events) {
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) throw std::invalid_argument("fd " + std::to_string(fd) + " is not registered");
  epoll_event ev{};
  ev.events = detail::epoll_mask(events);
  ev.data.fd = fd;
  if (::epoll_ctl(fds_->epoll.native_handle(), EPOLL_CTL_MOD, fd, &ev) < 0)
    throw boost::system::system_error(errno, boost::system::system_category(), "update_handler");
  it->second->events = events;
  it->second->edge_triggered = false;
  watch_fds();
}

BOOST_TORNADO_DECL void IOLoop::remove_handler(int fd) noexcept {
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) return;
  ::epoll_ctl(fds_->epoll.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(it);
  if (handlers_.empty() && fds_->armed) {
    boost::system::error_code ignored;
    fds_->epoll.cancel(ignored);
    fds_->armed = false;
  }
}

BOOST_TORNADO_DECL void IOLoop::watch_fds() {
  if (fds_->polling || handlers_.empty()) return;
  // Check at once on the next iteration: the descriptor may already be ready.
  fds_->polling = true;
  boost::asio::post(*context_, [ref = ref_] {
    if (IOLoop* loop = ref.get()) loop->poll_fds();
  });
}

BOOST_TORNADO_DECL void IOLoop::poll_fds() {
  fds_->polling = false;
  if (closed_ || handlers_.empty()) return;
  std::array<epoll_event, 64> events;
  int n = ::epoll_wait(fds_->epoll.native_handle(), events.data(), int(events.size()), 0);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    auto it = handlers_.find(fd);
    if (it == handlers_.end()) continue;  // removed by an earlier handler
    std::shared_ptr<detail::fd_entry> entry = it->second;
    std::uint32_t got = events[i].events;
    int requested = entry->events;
    bool failed = got & (EPOLLERR | EPOLLHUP);
    int deliver = 0;
    if ((got & EPOLLIN) || (failed && (requested & READ))) deliver |= READ;
    if ((got & EPOLLOUT) || ((got & EPOLLERR) && (requested & WRITE))) deliver |= WRITE;
    if (failed && (requested & (ERROR | 0x008))) deliver |= ERROR;
    deliver &= requested | ((requested & 0x008) ? ERROR : 0);
    if (!deliver) {
      // epoll reports hang-ups and errors even for events nobody asked for (NONE): watch the
      // fd edge-triggered instead of spinning; update_handler restores level-triggered mode.
      if (entry->edge_triggered) continue;
      entry->edge_triggered = true;
      epoll_event ev{};
      ev.events = detail::epoll_mask(requested) | EPOLLET;
      ev.data.fd = fd;
      ::epoll_ctl(fds_->epoll.native_handle(), EPOLL_CTL_MOD, fd, &ev);
      continue;
    }
    try {
      entry->handler(fd, deliver);
    } catch (...) {
      log_exception(app_log, "Exception in I/O handler for fd " + std::to_string(fd),
                    std::current_exception());
    }
  }
  if (closed_ || handlers_.empty()) return;
  if (n > 0) {
    // Level-triggered: look again next iteration, after other ready work.
    watch_fds();
    return;
  }
  if (!fds_->armed) {
    fds_->armed = true;
    fds_->epoll.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [ref = ref_](const boost::system::error_code& ec) {
                             if (ec == boost::asio::error::operation_aborted) return;
                             IOLoop* loop = ref.get();
                             if (!loop) return;
                             loop->fds_->armed = false;
                             loop->poll_fds();
                           });
  }
}

// ---- callbacks from signal handlers ----

BOOST_TORNADO_DECL bool IOLoop::signal_push(detail::callback&& cb) noexcept {
  auto& s = *signals_;
  std::uint64_t seq = s.next_seq.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < s.capacity; ++i) {
    std::size_t idx = (seq + i) % s.capacity;
    unsigned char expected = detail::signal_slots::free_slot;
    if (s.state[idx].compare_exchange_strong(expected, detail::signal_slots::writing,
                                             std::memory_order_acquire)) {
      s.cbs[idx] = std::move(cb);
      s.seq[idx] = seq;
      s.state[idx].store(detail::signal_slots::ready, std::memory_order_release);
      std::uint64_t one = 1;
      ssize_t r = ::write(s.event_fd, &one, sizeof one);
      (void)r;
      return true;
    }
  }
  return false;  // more than `capacity` callbacks pending: dropped
}

BOOST_TORNADO_DECL void IOLoop::drain_signal_callbacks() {
  auto& s = *signals_;
  std::uint64_t counter;
  ssize_t r = ::read(s.event_fd, &counter, sizeof counter);
  (void)r;
  std::array<std::pair<std::uint64_t, std::size_t>, detail::signal_slots::capacity> ready;
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.capacity; ++i)
    if (s.state[i].load(std::memory_order_acquire) == detail::signal_slots::ready)
      ready[n++] = {s.seq[i], i};
  std::sort(ready.begin(), ready.begin() + n);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t idx = ready[k].second;
    detail::callback cb = std::move(s.cbs[idx]);
    s.state[idx].store(detail::signal_slots::free_slot, std::memory_order_release);
    add_callback(std::move(cb));
  }
}

BOOST_TORNADO_DECL void IOLoop::arm_signal_wait() {
  auto& s = *signals_;
  if (s.armed) return;
  if (!s.wake) s.wake.emplace(*context_, ::dup(s.event_fd));
  s.armed = true;
  s.wake->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [ref = ref_, generation = s.generation](const boost::system::error_code& ec) {
                      // Aborted or no loop: the loop is gone. Stale: start() returned since.
                      if (ec == boost::asio::error::operation_aborted) return;
                      IOLoop* loop = ref.get();
                      if (!loop || generation != loop->signals_->generation) return;
                      loop->signals_->armed = false;
                      loop->drain_signal_callbacks();
                      if (loop->running_) loop->arm_signal_wait();
                    });
}

// ---- executors ----

BOOST_TORNADO_DECL void IOLoop::set_default_executor(boost::asio::any_completion_executor executor) {
  default_executor_ = std::move(executor);
}

BOOST_TORNADO_DECL boost::asio::any_completion_executor IOLoop::default_executor() {
  if (default_executor_) return *default_executor_;
  if (!default_pool_) {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    default_pool_ = std::make_unique<boost::asio::thread_pool>(std::min(32u, n + 4));
  }
  return default_pool_->get_executor();
}

// ---- PeriodicCallback ----

BOOST_TORNADO_DECL void PeriodicCallback::state::schedule_next() {
  // A coroutine run can end after the loop is gone (the application's io_context runs on).
  if (!running || loop_alive.expired()) return;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  double random = schedule.jitter != 0 ? std::uniform_real_distribution<double>(0, 1)(rng) : 0.5;
  schedule.update_next(loop->time(), random);
  std::weak_ptr<state> weak = shared_from_this();
  timeout = loop->add_timeout(Deadline(schedule.next_timeout), [weak] {
    if (auto s = weak.lock()) s->fire();
  });
}

BOOST_TORNADO_DECL void PeriodicCallback::state::fire() {
  timeout = {};
  if (!running) return;
  run(shared_from_this());
}

BOOST_TORNADO_DECL PeriodicCallback::~PeriodicCallback() { stop(); }

BOOST_TORNADO_DECL void PeriodicCallback::start() {
  state_->loop = &IOLoop::current();
  state_->loop_alive = state_->loop->alive_;
  state_->running = true;
  state_->schedule.next_timeout = state_->loop->time();
  state_->schedule_next();
}

BOOST_TORNADO_DECL void PeriodicCallback::stop() {
  state_->running = false;
  if (state_->timeout) {
    // A loop already gone took its timeouts with it.
    if (!state_->loop_alive.expired()) state_->loop->remove_timeout(state_->timeout);
    state_->timeout = {};
  }
}

BOOST_TORNADO_DECL bool PeriodicCallback::is_running() const noexcept { return state_->running; }
BOOST_TORNADO_DECL double PeriodicCallback::callback_time() const noexcept {
  return state_->schedule.callback_time_ms;
}
BOOST_TORNADO_DECL double PeriodicCallback::jitter() const noexcept { return state_->schedule.jitter; }

} // namespace boost::tornado

#endif
