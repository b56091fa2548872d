// wake_list: tasks to wake once a primitive's lock is released.
//
// A primitive pops waiters under its lock and must not call into the scheduler while holding it.
// Each collected task gets a reference under the lock (the waiter's registration kept it alive
// until then), so waking after the unlock is safe even if the task is cancelled in between.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "runtime/internal/task_header.h"

namespace shoal::rt::detail {

class wake_list {
 public:
  // Batch size: loops that may collect very many waiters stop at full() and wake in batches,
  // so that their lock is not held for all of them. Beyond it the list still grows.
  static constexpr std::size_t k_capacity = 32;

  wake_list() = default;
  wake_list(const wake_list&) = delete;
  wake_list& operator=(const wake_list&) = delete;
  ~wake_list() { wake_all(); }

  bool full() const noexcept { return n_ >= k_capacity; }
  bool empty() const noexcept { return n_ == 0 && overflow_.empty(); }

  // Call under the lock that keeps `t` registered.
  void push(task_header* t) noexcept {
    t->add_ref();
    if (n_ < k_capacity) {
      tasks_[n_++] = t;
    } else {
      overflow_.push_back(t);
    }
  }

  // Call after releasing the lock.
  void wake_all() noexcept {
    for (std::size_t i = 0; i < n_; ++i) {
      wake(tasks_[i]);
      tasks_[i]->release();
    }
    n_ = 0;
    for (task_header* t : overflow_) {
      wake(t);
      t->release();
    }
    overflow_.clear();
  }

 private:
  std::array<task_header*, k_capacity> tasks_;
  std::size_t n_ = 0;
  std::vector<task_header*> overflow_;
};

}  // namespace shoal::rt::detail
