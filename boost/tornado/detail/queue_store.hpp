// How a queue keeps its items: a ring buffer (FIFO), a binary heap (smallest first) or a
// stack (LIFO). Storage grows geometrically and is reused: no allocation per item.
#ifndef BOOST_TORNADO_DETAIL_QUEUE_STORE_HPP
#define BOOST_TORNADO_DETAIL_QUEUE_STORE_HPP

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace boost::tornado::detail {

template <class T>
class fifo_store {
public:
  fifo_store() = default;
  fifo_store(const fifo_store&) = delete;
  fifo_store& operator=(const fifo_store&) = delete;
  ~fifo_store() {
    while (size_) pop();
    std::allocator<T>().deallocate(data_, capacity_);
  }

  std::size_t size() const noexcept { return size_; }
  void push(T&& item) {
    if (size_ == capacity_) grow();
    ::new (static_cast<void*>(data_ + (head_ + size_) % capacity_)) T(std::move(item));
    ++size_;
  }
  T pop() {
    T* p = data_ + head_;
    T item(std::move(*p));
    p->~T();
    head_ = (head_ + 1) % capacity_;
    --size_;
    return item;
  }

private:
  void grow() {
    std::size_t cap = capacity_ ? capacity_ * 2 : 16;
    T* fresh = std::allocator<T>().allocate(cap);
    for (std::size_t i = 0; i < size_; ++i) {
      T* p = data_ + (head_ + i) % capacity_;
      ::new (static_cast<void*>(fresh + i)) T(std::move(*p));
      p->~T();
    }
    std::allocator<T>().deallocate(data_, capacity_);
    data_ = fresh;
    capacity_ = cap;
    head_ = 0;
  }

  T* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

template <class T, class Compare>
class priority_store {
public:
  std::size_t size() const noexcept { return items_.size(); }
  void push(T&& item) {
    items_.push_back(std::move(item));
    std::push_heap(items_.begin(), items_.end(), later{});
  }
  T pop() {
    std::pop_heap(items_.begin(), items_.end(), later{});
    T item(std::move(items_.back()));
    items_.pop_back();
    return item;
  }

private:
  struct later {  // the heap's top is the smallest item
    bool operator()(const T& a, const T& b) const { return Compare()(b, a); }
  };
  std::vector<T> items_;
};

template <class T>
class lifo_store {
public:
  std::size_t size() const noexcept { return items_.size(); }
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item(std::move(items_.back()));
    items_.pop_back();
    return item;
  }

private:
  std::vector<T> items_;
};

} // namespace boost::tornado::detail

#endif
