// The loop's timeouts: a binary heap over a slab of slots. Removing a timeout frees its slot
// at once and leaves a stale heap entry that is skipped (and compacted away when stale entries
// outnumber live ones), so add and remove cost no allocation once the slab has grown.
#ifndef BOOST_TORNADO_DETAIL_TIMER_QUEUE_HPP
#define BOOST_TORNADO_DETAIL_TIMER_QUEUE_HPP

#include <boost/tornado/detail/callback.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace boost::tornado::detail {

class timer_queue {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  struct handle {
    std::uint32_t index = UINT32_MAX;
    std::uint32_t generation = 0;
  };

  handle add(time_point when, callback cb) {
    std::uint32_t index;
    if (free_.empty()) {
      index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    slot& s = slots_[index];
    s.cb = std::move(cb);
    s.live = true;
    heap_.push_back(entry{when, next_seq_++, index, s.generation});
    std::push_heap(heap_.begin(), heap_.end(), later);
    return {index, s.generation};
  }

  // True when the timeout was still pending; false when it ran, was removed, or is unknown.
  bool remove(handle h) noexcept {
    if (!is_pending(h)) return false;
    release(h.index);
    ++stale_;
    if (stale_ > 512 && stale_ > heap_.size() / 2) compact();
    return true;
  }

  bool is_pending(handle h) const noexcept {
    return h.index < slots_.size() && slots_[h.index].live &&
           slots_[h.index].generation == h.generation;
  }

  // Earliest live deadline, dropping stale entries from the top of the heap.
  bool earliest(time_point& when) noexcept {
    drop_stale_top();
    if (heap_.empty()) return false;
    when = heap_.front().when;
    return true;
  }

  // Appends the handles of every timeout due at `now`, in deadline then insertion order.
  void pop_due(time_point now, std::vector<handle>& out) {
    for (int popped = 0;; ++popped) {
      drop_stale_top();
      if (heap_.empty() || heap_.front().when > now) return;
      if (popped == 64) return bulk_pop_due(now, out);
      std::pop_heap(heap_.begin(), heap_.end(), later);
      out.push_back({heap_.back().index, heap_.back().generation});
      heap_.pop_back();
    }
  }

  // Takes the callback of a due timeout out of its slot (empty if it was removed meanwhile).
  callback take(handle h) noexcept {
    if (!is_pending(h)) return {};
    callback cb = std::move(slots_[h.index].cb);
    release(h.index);
    return cb;
  }

  void clear() noexcept {
    heap_.clear();
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].live) release(i);
    stale_ = 0;
  }

  std::size_t size() const noexcept { return slots_.size() - free_.size(); }

private:
  struct slot {
    callback cb;
    std::uint32_t generation = 0;
    bool live = false;
  };
  struct entry {
    time_point when;
    std::uint64_t seq;
    std::uint32_t index;
    std::uint32_t generation;
  };
  static bool later(const entry& a, const entry& b) noexcept {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
  }

  void release(std::uint32_t index) noexcept {
    slot& s = slots_[index];
    s.cb.reset();
    s.live = false;
    ++s.generation;
    free_.push_back(index);
  }

  bool stale(const entry& e) const noexcept {
    const slot& s = slots_[e.index];
    return !s.live || s.generation != e.generation;
  }

  void drop_stale_top() noexcept {
    while (!heap_.empty() && stale(heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      heap_.pop_back();
      if (stale_) --stale_;
    }
  }

  // Many timeouts due at once (a loop that fell behind): one linear pass splits off the due
  // entries, which are sorted among themselves, instead of a heap pop with its cache misses
  // for each.
  void bulk_pop_due(time_point now, std::vector<handle>& out) {
    auto due_begin = std::partition(heap_.begin(), heap_.end(),
                                    [now](const entry& e) { return e.when > now; });
    scratch_.clear();
    for (auto it = due_begin; it != heap_.end(); ++it) {
      if (stale(*it)) {
        if (stale_) --stale_;
      } else {
        scratch_.push_back(*it);
      }
    }
    heap_.erase(due_begin, heap_.end());
    std::make_heap(heap_.begin(), heap_.end(), later);
    std::sort(scratch_.begin(), scratch_.end(),
              [](const entry& a, const entry& b) { return later(b, a); });
    for (const entry& e : scratch_) out.push_back({e.index, e.generation});
  }

  void compact() {
    heap_.erase(std::remove_if(heap_.begin(), heap_.end(),
                               [this](const entry& e) { return stale(e); }),
                heap_.end());
    std::make_heap(heap_.begin(), heap_.end(), later);
    stale_ = 0;
  }

  std::vector<slot> slots_;
  std::vector<std::uint32_t> free_;
  std::vector<entry> heap_;
  std::vector<entry> scratch_;
  std::uint64_t next_seq_ = 0;
  std::size_t stale_ = 0;
};

} // namespace boost::tornado::detail

#endif
