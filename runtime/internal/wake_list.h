// wake_list: tasks to wake once a primitive's lock is released.
//
// A primitive pops waiters under its lock and must not call into the scheduler while holding it.
// Each collected task gets a reference under the lock (the waiter's registration kept it alive until
// then), so waking after the unlock is safe even if the task is cancelled in between.
#pragma once

#include <array>
#include <cstddef>

#include "runtime/internal/task_header.h"

namespace shoal::rt::detail {

class wake_list {
 public:
  static constexpr std::size_t k_capacity = 32;

  wake_list() = default;
  wake_list(const wake_list&) = delete;
  wake_list& operator=(const wake_list&) = delete;
  ~wake_list() { wake_all(); }

  bool full() const noexcept { return n_ == k_capacity; }
  bool empty() const noexcept { return n_ == 0; }

  // Call under the lock that keeps `t` registered.
  void push(task_header* t) noexcept {
    t->add_ref();
    tasks_[n_++] = t;
  }

  // Call after releasing the lock.
  void wake_all() noexcept {
    for (std::size_t i = 0; i < n_; ++i) {
      wake(tasks_[i]);
      tasks_[i]->release();
    }
    n_ = 0;
  }

 private:
  std::array<task_header*, k_capacity> tasks_;
  std::size_t n_ = 0;
};

}  // namespace shoal::rt::detail
