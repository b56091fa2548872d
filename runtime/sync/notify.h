// notify: wakes tasks without passing data. Shoal's tokio::sync::Notify.
//
// notify_one() wakes the oldest waiter, or stores a single permit that the next notified() takes
// at once. notify_waiters() wakes every task waiting now, including a notified() that was created
// but not yet awaited; it stores no permit.
//
//   rt::notify ready;
//   // consumer:  co_await ready.notified();
//   // producer:  ready.notify_one();
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"

namespace shoal::rt {

class notify {
 public:
  class notified_awaiter;

  notify() = default;
  notify(const notify&) = delete;
  notify& operator=(const notify&) = delete;

  void notify_one();
  void notify_waiters();
  // Awaitable; the notify_waiters() epoch is captured here, at creation.
  detail::coop::budgeted<notified_awaiter> notified() noexcept;
  // How many tasks are waiting now (diagnostics and tests).
  std::size_t waiters();

  class notified_awaiter : private detail::waiter_link {
   public:
    bool await_ready() noexcept;
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() noexcept { resumed_ = true; }
    notified_awaiter(notified_awaiter&& o) noexcept : n_(o.n_), epoch_(o.epoch_) {}
    ~notified_awaiter();

   private:
    friend class notify;
    friend class detail::waiter_list<notified_awaiter>;
    notified_awaiter(notify* n, uint64_t epoch) noexcept : n_(n), epoch_(epoch) {}

    // The flags come first so that they fill the waiter_link's tail padding (a smaller frame).
    bool by_one_ = false;  // woken by notify_one (guarded by n_->mu_)
    bool resumed_ = false;
    notify* n_;
    uint64_t epoch_;
    detail::task_header* task_ = nullptr;
  };

 private:
  bool take_permit() noexcept {
    bool expected = true;
    return permit_.compare_exchange_strong(expected, false, std::memory_order_acq_rel);
  }

  detail::spin_lock mu_;
  detail::waiter_list<notified_awaiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> permit_{false};
  std::atomic<uint64_t> epoch_{0};  // notify_waiters() calls so far
};

}  // namespace shoal::rt
