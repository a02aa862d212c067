// A small lock for state that is settled from any thread but almost never contended (a
// Future): one atomic exchange to lock, one store to unlock.
#ifndef BOOST_TORNADO_DETAIL_SPINLOCK_HPP
#define BOOST_TORNADO_DETAIL_SPINLOCK_HPP

#include <atomic>
#include <thread>

namespace boost::tornado::detail {

class spinlock {
public:
  void lock() noexcept {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

private:
  std::atomic<bool> flag_{false};
};

} // namespace boost::tornado::detail

#endif
