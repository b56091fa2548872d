// coop: the cooperative budget, Shoal's counterpart of Tokio's `coop` module.
//
// A task that loops on awaits which all complete at once (its own channel, a free semaphore, a
// stream whose data is always there) never suspends, so without a budget it would keep its worker
// forever and every task queued behind it would wait. Each time a worker resumes a task it gives
// it k_budget units; an await that completes without suspending spends one; when none is left, the
// next await that would complete at once suspends instead, the task goes to the back of the run
// queue, and the operation is attempted afresh (with a new budget) when the task runs again.
//
// Every primitive's awaiter is wrapped in `budgeted<>`, so channels, semaphores, notify, mutex,
// timers and join handles all take part. gRPC operations always suspend (their completion comes
// through the queue), so they never spend and never need to yield.
//
// Cancel safety is the wrapped awaiter's own: when the budget is out, the operation is not
// attempted until the task runs again, so a yield never takes a message, a permit or a value that
// a cancellation could then lose. Cost: a thread-local decrement per ready await, and one small
// allocation (the retry frame) per forced yield, at most once every k_budget awaits.
//
// Internal: primitives use budgeted<>; tests read remaining().
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>

#include "runtime/internal/task_header.h"

namespace shoal::rt::detail::coop {

// Tokio's figure: awaits a task may complete without suspending before it must yield.
inline constexpr uint32_t k_budget = 128;

inline uint32_t remaining() noexcept { return tls.budget; }
inline void refill() noexcept { tls.budget = k_budget; }
inline bool has_budget() noexcept { return tls.budget != 0; }
inline void spend() noexcept {
  if (tls.budget != 0) --tls.budget;
}

// Gives the running task a full budget for a scope, and restores what it had after: for an awaiter
// that polls others (select), so that none of them yields the task in its place.
class full_budget {
 public:
  full_budget() noexcept : saved_(tls.budget) { tls.budget = k_budget; }
  ~full_budget() { tls.budget = saved_; }
  full_budget(const full_budget&) = delete;
  full_budget& operator=(const full_budget&) = delete;

 private:
  uint32_t saved_;
};

// Calls an awaiter's await_suspend and reports whether the task stays suspended, whatever the
// awaiter's return type (void or bool; symmetric transfer is not used by the runtime's awaiters).
template <class A>
bool suspend(A& a, std::coroutine_handle<> h) {
  using result = decltype(a.await_suspend(h));
  if constexpr (std::is_void_v<result>) {
    a.await_suspend(h);
    return true;
  } else {
    static_assert(std::is_same_v<result, bool>, "await_suspend must return void or bool");
    return a.await_suspend(h);
  }
}

// A frame that runs in a task's place: set as the task's resume point, it runs when the task is
// resumed, on the task's behalf, and frees itself when it finishes (which, to continue the task's
// own coroutine, sets tls.next). The budget's retry and select's driver are such frames.
struct stand_in_frame {
  struct promise_type {
    stand_in_frame get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

// Wraps a primitive's awaiter so that it takes part in the budget.
template <class Inner>
class [[nodiscard]] budgeted {
 public:
  explicit budgeted(Inner&& inner) noexcept(std::is_nothrow_move_constructible_v<Inner>)
      : inner_(std::move(inner)) {}
  template <class... Args>
  explicit budgeted(std::in_place_t, Args&&... args) : inner_(std::forward<Args>(args)...) {}
  budgeted(budgeted&& o) noexcept(std::is_nothrow_move_constructible_v<Inner>)
      : inner_(std::move(o.inner_)) {}
  budgeted(const budgeted&) = delete;
  budgeted& operator=(const budgeted&) = delete;
  ~budgeted() {
    // Destroyed while waiting for its retry: only a cancellation does that, on the worker that owns
    // the task, whose resume point is then the retry frame.
    if (retry_pending_) tls.current_task->resume_point.destroy();
  }

  bool await_ready() {
    if (!has_budget() || !inner_.await_ready()) return false;
    spend();
    return true;
  }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!has_budget()) {
      task_header* t = current_task_or_die();  // the task itself, even inside a select
      t->resume_point = retry(this, h).handle;
      retry_pending_ = true;
      tls.yielded = true;  // to the back of the run queue
      return true;
    }
    if (suspend(inner_, h)) return true;
    spend();
    return false;
  }
  decltype(auto) await_resume() { return inner_.await_resume(); }

  // For awaiters composed of others (select): the wrapped awaiter itself.
  Inner& inner() noexcept { return inner_; }

 private:
  // Runs when the task that yielded is resumed: makes the attempt the awaiter gave up, then either
  // hands control back to the awaiting coroutine or leaves the task suspended on the primitive.
  static stand_in_frame retry(budgeted* self, std::coroutine_handle<> h) {
    self->retry_pending_ = false;  // this frame is running now and frees itself
    if (self->inner_.await_ready() || !suspend(self->inner_, h)) {
      spend();
      tls.next = h;
    }
    co_return;
  }

  Inner inner_;
  bool retry_pending_ = false;
};

}  // namespace shoal::rt::detail::coop
