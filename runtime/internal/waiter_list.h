// waiter_list: an intrusive FIFO of waiters, each living in a suspended coroutine's frame.
//
// Every primitive keeps its waiters in one of these, under its own lock. A waiter removes itself
// in its destructor if it is still linked: that is what makes cancellation (destroying a suspended
// frame) leave no dangling waiter behind.
#pragma once

#include <cassert>
#include <cstddef>

namespace shoal::rt::detail {

struct waiter_link {
  waiter_link* prev = nullptr;
  waiter_link* next = nullptr;
  bool linked = false;
};

template <class Node>  // Node derives from waiter_link
class waiter_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  Node* front() const noexcept { return static_cast<Node*>(head_); }

  void push_back(Node* n) noexcept {
    assert(!n->linked);
    n->prev = tail_;
    n->next = nullptr;
    if (tail_) {
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
    n->linked = true;
    ++size_;
  }

  Node* pop_front() noexcept {
    waiter_link* n = head_;
    if (n) remove(static_cast<Node*>(n));
    return static_cast<Node*>(n);
  }

  void remove(Node* n) noexcept {
    assert(n->linked);
    if (n->prev) {
      n->prev->next = n->next;
    } else {
      head_ = n->next;
    }
    if (n->next) {
      n->next->prev = n->prev;
    } else {
      tail_ = n->prev;
    }
    n->prev = n->next = nullptr;
    n->linked = false;
    --size_;
  }

 private:
  waiter_link* head_ = nullptr;
  waiter_link* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shoal::rt::detail
