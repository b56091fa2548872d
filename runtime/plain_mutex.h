// plain_mutex: a blocking mutex for short, synchronous critical sections.
//
// A thin wrapper over std::mutex that carries clang's thread-safety annotations, so that
// `-Wthread-safety` checks every ABSL_GUARDED_BY field, and ThreadSanitizer (which understands
// std::mutex but not Debian's uninstrumented absl::Mutex) sees every acquire and release. It
// tries the lock for a moment before it sleeps.
//
// Use it in plain (non-coroutine) functions only: never hold it across `co_await`. The async
// `rt::mutex` exists for the rare case where a lock must span a suspension point.
//
//   class counter {
//    public:
//     void add(int n) { plain_lock lock(mu_); total_ += n; }
//    private:
//     rt::plain_mutex mu_;
//     int total_ ABSL_GUARDED_BY(mu_) = 0;
//   };
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace shoal::rt {

class ABSL_LOCKABLE plain_mutex {
 public:
  plain_mutex() = default;
  plain_mutex(const plain_mutex&) = delete;
  plain_mutex& operator=(const plain_mutex&) = delete;

  // Spins briefly before it sleeps: the sections it guards last well under a microsecond, and a
  // futex sleep and wake-up cost several.
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    for (int i = 0; i < k_spins; ++i) {
      if (mu_.try_lock()) return;
      pause();
    }
    mu_.lock();
  }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

  // Tells the static analysis the caller holds the lock, where it cannot see it taken (a set of
  // locks taken in a loop).
  void assert_held() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
  // For std::condition_variable; the caller must hold the lock.
  std::mutex& native() ABSL_ASSERT_EXCLUSIVE_LOCK() { return mu_; }

 private:
  static constexpr int k_spins = 64;
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  std::mutex mu_;
};

// Scoped lock for plain_mutex (std::lock_guard carries no annotations).
class ABSL_SCOPED_LOCKABLE plain_lock {
 public:
  explicit plain_lock(plain_mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.lock(); }
  ~plain_lock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  plain_lock(const plain_lock&) = delete;
  plain_lock& operator=(const plain_lock&) = delete;

 private:
  plain_mutex& mu_;
};

}  // namespace shoal::rt
