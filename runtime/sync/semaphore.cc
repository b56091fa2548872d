#include "runtime/sync/semaphore.h"

#include <algorithm>

#include "runtime/internal/wake_list.h"

namespace shoal::rt {

detail::coop::budgeted<semaphore::acquire_awaiter> semaphore::acquire(std::size_t n) noexcept {
  return detail::coop::budgeted<acquire_awaiter>(acquire_awaiter(this, n));
}

expected<semaphore_permit, try_acquire_error> semaphore::try_acquire(std::size_t n) {
  detail::spin_guard lock(mu_);
  if (closed_) return unexpected(try_acquire_error::closed);
  if (!waiters_.empty() || permits_ < n) return unexpected(try_acquire_error::no_permits);
  permits_ -= n;
  return semaphore_permit(this, n);
}

void semaphore::release(std::size_t n) {
  detail::wake_list wakes;
  detail::spin_guard lock(mu_);
  give_back(n, wakes);
}

void semaphore::give_back(std::size_t n, detail::wake_list& wakes) {
  const std::size_t paid = std::min(n, debt_);
  debt_ -= paid;
  permits_ += n - paid;
  serve_waiters(wakes);
}

void semaphore::forget_permits(std::size_t n) {
  detail::spin_guard lock(mu_);
  const std::size_t now = std::min(n, permits_);
  permits_ -= now;
  debt_ += n - now;
}

std::size_t semaphore::forgotten_pending() const {
  detail::spin_guard lock(mu_);
  return debt_;
}

void semaphore::serve_waiters(detail::wake_list& wakes) {
  while (!waiters_.empty() && waiters_.front()->needed_ <= permits_) {
    acquire_awaiter* w = waiters_.pop_front();
    permits_ -= w->needed_;
    w->outcome_ = acquire_awaiter::outcome::granted;
    wakes.push(w->task_);
  }
}

void semaphore::close() {
  for (;;) {
    detail::wake_list wakes;
    detail::spin_guard lock(mu_);
    closed_ = true;
    while (!waiters_.empty() && !wakes.full()) {
      acquire_awaiter* w = waiters_.pop_front();
      w->outcome_ = acquire_awaiter::outcome::closed;
      wakes.push(w->task_);
    }
    if (waiters_.empty()) return;
  }
}

bool semaphore::is_closed() const {
  detail::spin_guard lock(mu_);
  return closed_;
}

std::size_t semaphore::waiters() const {
  detail::spin_guard lock(mu_);
  return waiters_.size();
}

std::size_t semaphore::available_permits() const {
  detail::spin_guard lock(mu_);
  return permits_;
}

bool semaphore::acquire_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  detail::spin_guard lock(s_->mu_);
  if (s_->closed_) {
    outcome_ = outcome::closed;
    return false;
  }
  if (s_->waiters_.empty() && s_->permits_ >= needed_) {
    s_->permits_ -= needed_;
    outcome_ = outcome::granted;
    return false;
  }
  task_ = detail::suspend_current(h);
  s_->waiters_.push_back(this);
  return true;
}

expected<semaphore_permit, acquire_error> semaphore::acquire_awaiter::await_resume() noexcept {
  resumed_ = true;
  // Once woken (or never suspended), outcome_ is ours alone.
  if (outcome_ == outcome::closed) return unexpected(acquire_error::closed);
  return semaphore_permit(s_, needed_);
}

semaphore::acquire_awaiter::~acquire_awaiter() {
  if (task_ == nullptr || resumed_) return;
  // Cancelled while suspended: leave the queue, or give back permits granted but never taken.
  detail::wake_list wakes;
  detail::spin_guard lock(s_->mu_);
  if (linked) {
    bool was_front = s_->waiters_.front() == this;
    s_->waiters_.remove(this);
    if (was_front) s_->serve_waiters(wakes);  // we may have been blocking smaller requests
  } else if (outcome_ == outcome::granted) {
    s_->give_back(needed_, wakes);
  }
}

}  // namespace shoal::rt
