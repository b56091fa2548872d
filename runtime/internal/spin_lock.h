// spin_lock and rw_spin_lock: the runtime's internal locks, for critical sections of a few
// instructions (linking a waiter into a list, swapping a value).
//
// One atomic exchange to lock and a plain release store to unlock: half the atomic operations of
// std::mutex. More important, under contention glibc's mutex puts the waiter to sleep in the
// kernel at once, which costs two context switches for a wait of nanoseconds (measured: with 16
// watch receivers on two workers, most of the time went to futex sleeps). The holder never blocks,
// so waiting spins briefly, then yields. Annotated for -Wthread-safety; ThreadSanitizer
// understands them since they are made of std::atomic. Code outside the runtime uses plain_mutex.
#pragma once

#include <atomic>
#include <cstdint>
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

inline void spin_backoff(int& spins) {
  if (++spins > 100) std::this_thread::yield();
}

// Many readers or one writer; a waiting writer stops new readers, so it is not starved.
class ABSL_LOCKABLE rw_spin_lock {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    for (int spins = 0;;) {
      uint32_t s = state_.load(std::memory_order_relaxed);
      if ((s & ~k_writer_waiting) == 0) {
        if (state_.compare_exchange_weak(s, k_writer, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if (!(s & k_writer_waiting)) state_.fetch_or(k_writer_waiting, std::memory_order_relaxed);
      spin_backoff(spins);
    }
  }
  void unlock() ABSL_UNLOCK_FUNCTION() { state_.fetch_and(~k_writer, std::memory_order_release); }
  void lock_shared() ABSL_SHARED_LOCK_FUNCTION() {
    for (int spins = 0;;) {
      uint32_t s = state_.fetch_add(1, std::memory_order_acquire);
      if (!(s & (k_writer | k_writer_waiting))) return;
      state_.fetch_sub(1, std::memory_order_relaxed);
      while (state_.load(std::memory_order_relaxed) & (k_writer | k_writer_waiting)) {
        spin_backoff(spins);
      }
    }
  }
  void unlock_shared() ABSL_UNLOCK_FUNCTION() { state_.fetch_sub(1, std::memory_order_release); }

 private:
  static constexpr uint32_t k_writer = 1u << 31;
  static constexpr uint32_t k_writer_waiting = 1u << 30;
  std::atomic<uint32_t> state_{0};
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

class ABSL_SCOPED_LOCKABLE write_guard {
 public:
  explicit write_guard(rw_spin_lock& l) ABSL_EXCLUSIVE_LOCK_FUNCTION(l) : l_(l) { l_.lock(); }
  ~write_guard() ABSL_UNLOCK_FUNCTION() { l_.unlock(); }
  write_guard(const write_guard&) = delete;
  write_guard& operator=(const write_guard&) = delete;

 private:
  rw_spin_lock& l_;
};

// Movable, so that a borrow can be returned to the caller while holding the read lock.
class ABSL_SCOPED_LOCKABLE read_guard {
 public:
  explicit read_guard(rw_spin_lock& l) ABSL_SHARED_LOCK_FUNCTION(l) : l_(&l) { l_->lock_shared(); }
  read_guard(read_guard&& o) noexcept : l_(o.l_) { o.l_ = nullptr; }
  ~read_guard() ABSL_UNLOCK_FUNCTION() {
    if (l_) l_->unlock_shared();
  }
  read_guard(const read_guard&) = delete;
  read_guard& operator=(const read_guard&) = delete;

 private:
  rw_spin_lock* l_;
};

}  // namespace shoal::rt::detail
