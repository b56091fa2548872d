// inject_queue: the runtime's shared FIFO of tasks scheduled from outside a worker (and of a
// worker's overflow). Intrusive through task_header::next, so pushing never allocates.
#pragma once

#include <atomic>
#include <cstddef>

#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"

namespace shoal::rt::detail {

class inject_queue {
 public:
  void push(task_header* t) noexcept { push_batch(t, t, 1); }

  // Pushes the chain first..last (linked through next), n tasks.
  void push_batch(task_header* first, task_header* last, std::size_t n) noexcept {
    last->next = nullptr;
    spin_guard lock(mu_);
    if (tail_) {
      tail_->next = first;
    } else {
      head_ = first;
    }
    tail_ = last;
    len_.store(len_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }

  task_header* pop() noexcept {
    if (empty()) return nullptr;
    spin_guard lock(mu_);
    task_header* t = head_;
    if (!t) return nullptr;
    head_ = t->next;
    if (!head_) tail_ = nullptr;
    t->next = nullptr;
    len_.store(len_.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    return t;
  }

  // Takes up to `max` tasks in one lock; returns the first, linked through next (null-terminated).
  task_header* pop_batch(std::size_t max, std::size_t* taken) noexcept {
    *taken = 0;
    if (empty()) return nullptr;
    spin_guard lock(mu_);
    task_header* first = head_;
    task_header* last = nullptr;
    std::size_t n = 0;
    for (task_header* t = head_; t != nullptr && n < max; t = t->next) {
      last = t;
      ++n;
    }
    if (n == 0) return nullptr;
    head_ = last->next;
    if (!head_) tail_ = nullptr;
    last->next = nullptr;
    len_.store(len_.load(std::memory_order_relaxed) - n, std::memory_order_release);
    *taken = n;
    return first;
  }

  bool empty() const noexcept { return len_.load(std::memory_order_acquire) == 0; }
  std::size_t size() const noexcept { return len_.load(std::memory_order_acquire); }

 private:
  spin_lock mu_;
  task_header* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  task_header* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<std::size_t> len_{0};
};

}  // namespace shoal::rt::detail
