#include "runtime/sync/notify.h"

#include "runtime/internal/wake_list.h"

namespace shoal::rt {

std::size_t notify::waiters() {
  detail::spin_guard lock(mu_);
  return waiters_.size();
}

detail::coop::budgeted<notify::notified_awaiter> notify::notified() noexcept {
  return detail::coop::budgeted<notified_awaiter>(
      notified_awaiter(this, epoch_.load(std::memory_order_acquire)));
}

void notify::notify_one() {
  detail::wake_list wakes;
  detail::spin_guard lock(mu_);
  if (notified_awaiter* w = waiters_.pop_front()) {
    w->by_one_ = true;
    wakes.push(w->task_);
  } else {
    permit_.store(true, std::memory_order_release);
  }
}

void notify::notify_waiters() {
  uint64_t epoch;
  {
    detail::spin_guard lock(mu_);
    epoch = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  // Waiters that registered before this call carry an older epoch; they sit at the front.
  // Wake them in batches so the lock is never held for a million wake-ups.
  for (;;) {
    detail::wake_list wakes;
    detail::spin_guard lock(mu_);
    while (!waiters_.empty() && waiters_.front()->epoch_ < epoch && !wakes.full()) {
      wakes.push(waiters_.pop_front()->task_);
    }
    if (!wakes.full()) return;  // lock released, then wakes.~wake_list() wakes the batch
  }
}

bool notify::notified_awaiter::await_ready() noexcept {
  return n_->epoch_.load(std::memory_order_acquire) != epoch_ || n_->take_permit();
}

bool notify::notified_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  detail::spin_guard lock(n_->mu_);
  if (n_->epoch_.load(std::memory_order_acquire) != epoch_ || n_->take_permit()) return false;
  task_ = detail::suspend_current(h);
  n_->waiters_.push_back(this);
  return true;
}

notify::notified_awaiter::~notified_awaiter() {
  if (task_ == nullptr || resumed_) return;
  // Destroyed while suspended (the task was cancelled).
  detail::wake_list wakes;  // declared before the lock: it wakes after the unlock
  detail::spin_guard lock(n_->mu_);
  if (linked) {
    n_->waiters_.remove(this);
  } else if (by_one_) {
    // A notify_one was addressed to us but we never ran: pass it on, so it is not lost.
    if (notified_awaiter* w = n_->waiters_.pop_front()) {
      w->by_one_ = true;
      wakes.push(w->task_);
    } else {
      n_->permit_.store(true, std::memory_order_release);
    }
  }
}

}  // namespace shoal::rt
