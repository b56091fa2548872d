// semaphore: a fair counting semaphore; the tool for bounding concurrency.
//
// Waiters are served strictly in arrival order (a large request is not overtaken by small ones).
// A permit is an RAII object: it returns to the semaphore when destroyed, including when the task
// holding it is cancelled. A task cancelled while waiting leaks nothing, even if permits were
// already granted to it. close() fails every current and future acquire.
//
//   rt::semaphore in_flight(100);
//   auto permit = co_await in_flight.acquire();   // expected<semaphore_permit, acquire_error>
//   if (!permit) co_return;                        // closed
//   ...                                            // permit released at scope exit
//
// A limit that follows a live setting grows with add_permits(n) and shrinks with
// forget_permits(n): permits that are free now go at once, the rest as their holders give them
// back (none of those reaches a waiter first), so the number of permits out never stays above the
// new limit longer than the holders above it keep theirs.
//
//   in_flight.add_permits(50);      // the limit went from 100 to 150
//   in_flight.forget_permits(120);  // and then down to 30
//
// Cancel safety: a cancelled acquire leaves the queue, or gives back a grant it never took.
#pragma once

#include <coroutine>
#include <cstddef>
#include <utility>

#include "runtime/expected.h"
#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"
#include "runtime/internal/wake_list.h"

namespace shoal::rt {

class semaphore;

enum class acquire_error { closed };
enum class try_acquire_error { closed, no_permits };

class [[nodiscard]] semaphore_permit {
 public:
  semaphore_permit() = default;
  semaphore_permit(semaphore* s, std::size_t n) noexcept : s_(s), n_(n) {}
  semaphore_permit(semaphore_permit&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  semaphore_permit& operator=(semaphore_permit&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::exchange(o.s_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~semaphore_permit() { release(); }

  std::size_t count() const noexcept { return n_; }
  // Keeps the permits out of the semaphore for good.
  void forget() noexcept {
    s_ = nullptr;
    n_ = 0;
  }

 private:
  void release() noexcept;
  semaphore* s_ = nullptr;
  std::size_t n_ = 0;
};

class semaphore {
 public:
  class acquire_awaiter;

  explicit semaphore(std::size_t permits) : permits_(permits) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  detail::coop::budgeted<acquire_awaiter> acquire(std::size_t n = 1) noexcept;
  expected<semaphore_permit, try_acquire_error> try_acquire(std::size_t n = 1);
  // Adds permits (what a dropped permit does), serving waiters in order; permits still owed to
  // forget_permits are paid first.
  void release(std::size_t n);
  void add_permits(std::size_t n) { release(n); }
  // Takes n permits out for good: the free ones now, the rest from the next releases.
  void forget_permits(std::size_t n);
  // Permits forget_permits is still waiting to take back.
  std::size_t forgotten_pending() const;
  void close();
  bool is_closed() const;
  std::size_t available_permits() const;
  // How many tasks are waiting now (diagnostics and tests).
  std::size_t waiters() const;

  class acquire_awaiter : private detail::waiter_link {
   public:
    bool await_ready() noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    expected<semaphore_permit, acquire_error> await_resume() noexcept;
    acquire_awaiter(acquire_awaiter&& o) noexcept : s_(o.s_), needed_(o.needed_) {}
    ~acquire_awaiter();

   private:
    friend class semaphore;
    friend class detail::waiter_list<acquire_awaiter>;
    acquire_awaiter(semaphore* s, std::size_t n) noexcept : s_(s), needed_(n) {}

    enum class outcome { pending, granted, closed };
    semaphore* s_;
    std::size_t needed_;
    detail::task_header* task_ = nullptr;
    outcome outcome_ = outcome::pending;  // guarded by s_->mu_ while linked
    bool resumed_ = false;
  };

 private:
  // Returns n permits (paying forget_permits' debt first) and serves the waiters.
  void give_back(std::size_t n, detail::wake_list& wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grants permits to waiters at the front while enough are available.
  void serve_waiters(detail::wake_list& wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable detail::spin_lock mu_;
  std::size_t permits_ ABSL_GUARDED_BY(mu_);
  std::size_t debt_ ABSL_GUARDED_BY(mu_) = 0;  // owed to forget_permits, paid from releases
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  detail::waiter_list<acquire_awaiter> waiters_ ABSL_GUARDED_BY(mu_);
};

inline void semaphore_permit::release() noexcept {
  if (s_ != nullptr && n_ > 0) s_->release(n_);
  s_ = nullptr;
  n_ = 0;
}

}  // namespace shoal::rt
