// mutex<T>: an async, fair mutex whose guard may be held across co_await. Shoal's
// tokio::sync::Mutex.
//
// Reach for it rarely: a plain_mutex in a synchronous function (never held across co_await) is
// cheaper and is the right tool for short critical sections; a manager task fed by an mpsc channel
// is the right tool for an I/O resource. This one is for state that must stay locked while the
// holder awaits something. Waiters get the lock in arrival order.
//
//   rt::mutex<connection> conn(open());
//   auto guard = co_await conn.lock();
//   co_await guard->write(request);                   // still locked
#pragma once

#include <coroutine>
#include <optional>
#include <utility>

#include "runtime/sync/semaphore.h"

namespace shoal::rt {

template <class T>
class mutex {
 public:
  class guard {
   public:
    T& operator*() const noexcept { return m_->value_; }
    T* operator->() const noexcept { return &m_->value_; }

   private:
    friend class mutex;
    guard(mutex* m, semaphore_permit p) : m_(m), permit_(std::move(p)) {}
    mutex* m_;
    semaphore_permit permit_;
  };

  explicit mutex(T value = T{}) : value_(std::move(value)) {}
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  class lock_awaiter {
   public:
    bool await_ready() noexcept { return a_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return a_.await_suspend(h); }
    guard await_resume() noexcept { return guard(m_, std::move(*a_.await_resume())); }

   private:
    friend class mutex;
    explicit lock_awaiter(mutex* m) : m_(m), a_(m->sem_.acquire(1)) {}
    mutex* m_;
    detail::coop::budgeted<semaphore::acquire_awaiter> a_;
  };

  lock_awaiter lock() noexcept { return lock_awaiter(this); }
  std::optional<guard> try_lock() {
    auto p = sem_.try_acquire(1);
    if (!p) return std::nullopt;
    return guard(this, std::move(*p));
  }

 private:
  semaphore sem_{1};
  T value_;
};

}  // namespace shoal::rt
