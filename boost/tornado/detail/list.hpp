// Intrusive doubly linked list for waiters: O(1) unlink when a waiter is cancelled or times
// out, no allocation to enqueue.
#ifndef BOOST_TORNADO_DETAIL_LIST_HPP
#define BOOST_TORNADO_DETAIL_LIST_HPP

namespace boost::tornado::detail {

struct list_node {
  list_node* next_ = nullptr;
  list_node* prev_ = nullptr;
  bool linked() const noexcept { return next_ != nullptr; }
};

class intrusive_list {
public:
  intrusive_list() noexcept { head_.next_ = head_.prev_ = &head_; }
  intrusive_list(const intrusive_list&) = delete;
  intrusive_list& operator=(const intrusive_list&) = delete;

  bool empty() const noexcept { return head_.next_ == &head_; }
  list_node* front() const noexcept { return empty() ? nullptr : head_.next_; }

  void push_back(list_node* n) noexcept {
    n->prev_ = head_.prev_;
    n->next_ = &head_;
    head_.prev_->next_ = n;
    head_.prev_ = n;
  }

  static void unlink(list_node* n) noexcept {
    n->prev_->next_ = n->next_;
    n->next_->prev_ = n->prev_;
    n->next_ = n->prev_ = nullptr;
  }

  list_node* pop_front() noexcept {
    list_node* n = front();
    if (n) unlink(n);
    return n;
  }

  // Moves every node of `other` to the end of this list.
  void splice_back(intrusive_list& other) noexcept {
    while (list_node* n = other.pop_front()) push_back(n);
  }

private:
  list_node head_;
};

} // namespace boost::tornado::detail

#endif
