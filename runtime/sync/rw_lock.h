// rw_lock<T>: an async reader-writer lock whose guards may be held across co_await. Shoal's
// tokio::sync::RwLock.
//
// Many readers or one writer, fair: requests are served in arrival order, so a writer waiting
// behind readers stops later readers from overtaking it (writers are never starved). Like mutex<T>
// it is for state that must stay locked while the holder awaits; a plain_mutex in a synchronous
// function, or sharding, is cheaper when it need not.
//
//   rt::rw_lock<routing_table> table(load());
//   { auto r = co_await table.read();  found = lookup(*r, key); }  // shared
//   { auto w = co_await table.write(); co_await refresh(*w); }     // exclusive, across an await
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// Built on the fair semaphore: a reader takes one permit, a writer all of them. Cancel safety: a
// cancelled read() or write() leaves the queue, or gives back what it was granted.
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <utility>

#include "runtime/sync/semaphore.h"

namespace shoal::rt {

template <class T>
class rw_lock {
 public:
  // More concurrent readers than this wait (far beyond any real count).
  static constexpr std::size_t k_max_readers = std::size_t{1} << 30;

  class read_guard {
   public:
    const T& operator*() const noexcept { return l_->value_; }
    const T* operator->() const noexcept { return &l_->value_; }

   private:
    friend class rw_lock;
    read_guard(const rw_lock* l, semaphore_permit p) : l_(l), permit_(std::move(p)) {}
    const rw_lock* l_;
    semaphore_permit permit_;
  };

  class write_guard {
   public:
    T& operator*() const noexcept { return l_->value_; }
    T* operator->() const noexcept { return &l_->value_; }

   private:
    friend class rw_lock;
    write_guard(rw_lock* l, semaphore_permit p) : l_(l), permit_(std::move(p)) {}
    rw_lock* l_;
    semaphore_permit permit_;
  };

  explicit rw_lock(T value = T{}) : value_(std::move(value)) {}
  rw_lock(const rw_lock&) = delete;
  rw_lock& operator=(const rw_lock&) = delete;

  template <class Guard>
  class lock_awaiter {
   public:
    bool await_ready() noexcept { return a_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) noexcept { return a_.await_suspend(h); }
    Guard await_resume() noexcept { return Guard(l_, std::move(*a_.await_resume())); }

   private:
    friend class rw_lock;
    lock_awaiter(rw_lock* l, std::size_t permits) : l_(l), a_(l->sem_.acquire(permits)) {}
    rw_lock* l_;
    detail::coop::budgeted<semaphore::acquire_awaiter> a_;
  };

  lock_awaiter<read_guard> read() noexcept { return lock_awaiter<read_guard>(this, 1); }
  lock_awaiter<write_guard> write() noexcept {
    return lock_awaiter<write_guard>(this, k_max_readers);
  }

  std::optional<read_guard> try_read() {
    auto p = sem_.try_acquire(1);
    if (!p) return std::nullopt;
    return read_guard(this, std::move(*p));
  }
  std::optional<write_guard> try_write() {
    auto p = sem_.try_acquire(k_max_readers);
    if (!p) return std::nullopt;
    return write_guard(this, std::move(*p));
  }

 private:
  semaphore sem_{k_max_readers};
  T value_;
};

}  // namespace shoal::rt
