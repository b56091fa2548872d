// spin_lock: a lock for critical sections of a few instructions (linking a task into a list).
//
// One atomic exchange to lock and a plain release store to unlock: half the atomic operations of
// std::mutex, which matters on the spawn path. Contention is rare (16 shards by address) and the
// holder never blocks, so waiting spins briefly, then yields. Annotated for -Wthread-safety;
// ThreadSanitizer understands it since it is made of std::atomic.
#pragma once

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"

namespace shoal::rt::detail {

class ABSL_LOCKABLE spin_lock {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 100) std::this_thread::yield();
      }
    }
  }
  void unlock() ABSL_UNLOCK_FUNCTION() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

class ABSL_SCOPED_LOCKABLE spin_guard {
 public:
  explicit spin_guard(spin_lock& l) ABSL_EXCLUSIVE_LOCK_FUNCTION(l) : l_(l) { l_.lock(); }
  ~spin_guard() ABSL_UNLOCK_FUNCTION() { l_.unlock(); }
  spin_guard(const spin_guard&) = delete;
  spin_guard& operator=(const spin_guard&) = delete;

 private:
  spin_lock& l_;
};

}  // namespace shoal::rt::detail
