// sleep, sleep_until and interval: waiting on the runtime's clock.
//
//   co_await rt::sleep(std::chrono::milliseconds(50));
//   rt::interval tick(std::chrono::seconds(1));
//   for (;;) { co_await tick.tick(); publish_progress(); }
//
// The timer entry lives in the awaiting frame: no allocation per sleep, and a cancelled sleep
// removes its entry. Under a paused test clock, time moves only by advance() (or auto-advance).
#pragma once

#include <coroutine>

#include "runtime/executor/runtime_core.h"
#include "runtime/internal/coop.h"
#include "runtime/internal/task_header.h"
#include "runtime/time/clock.h"
#include "runtime/time/timer_queue.h"

namespace shoal::rt {

class [[nodiscard]] sleep_awaiter {
 public:
  explicit sleep_awaiter(clock::time_point deadline) : deadline_(deadline) {}
  sleep_awaiter(sleep_awaiter&& o) noexcept : deadline_(o.deadline_) {}
  ~sleep_awaiter() {
    if (entry_.task != nullptr && !resumed_) core_->timers().remove(&entry_);
  }

  bool await_ready() {
    core_ = &detail::current_core();
    return core_->time().now() >= deadline_;
  }
  void await_suspend(std::coroutine_handle<> h) {
    entry_.task = detail::suspend_current(h);
    entry_.deadline = deadline_;
    if (core_->timers().insert(&entry_)) core_->timer_inserted(deadline_);
  }
  void await_resume() noexcept { resumed_ = true; }

 private:
  clock::time_point deadline_;
  runtime_core* core_ = nullptr;
  detail::timer_entry entry_;
  bool resumed_ = false;
};

// The current time on the calling task's runtime clock.
inline clock::time_point now() { return detail::current_core().time().now(); }

using sleep_op = detail::coop::budgeted<sleep_awaiter>;
inline sleep_op sleep_until(clock::time_point deadline) {
  return sleep_op(sleep_awaiter(deadline));
}
inline sleep_op sleep(clock::duration d) { return sleep_op(sleep_awaiter(now() + d)); }

// What an interval does when ticks were missed (the task was busy past one or more deadlines).
enum class missed_tick_behavior {
  burst,  // fire the missed ticks back to back until caught up (Tokio's default)
  delay,  // next tick one period after the late one
  skip,   // next tick at the next multiple of the period on the original schedule
};

class interval {
 public:
  explicit interval(clock::duration period,
                    missed_tick_behavior behavior = missed_tick_behavior::burst)
      : period_(period), behavior_(behavior), next_(now()) {}

  // The first tick completes at once. `co_await` yields the scheduled instant of the tick.
  auto tick() {
    struct awaiter {
      interval* iv;
      sleep_op sleeping;
      bool await_ready() { return sleeping.await_ready(); }
      void await_suspend(std::coroutine_handle<> h) { sleeping.await_suspend(h); }
      clock::time_point await_resume() {
        sleeping.await_resume();
        return iv->advance();
      }
    };
    return awaiter{this, sleep_until(next_)};
  }
  clock::duration period() const { return period_; }
  void reset() { next_ = now() + period_; }

 private:
  clock::time_point advance() {
    const clock::time_point scheduled = next_;
    const clock::time_point t = now();
    next_ += period_;
    if (next_ <= t) {
      switch (behavior_) {
        case missed_tick_behavior::burst:
          break;
        case missed_tick_behavior::delay:
          next_ = t + period_;
          break;
        case missed_tick_behavior::skip:
          next_ += ((t - next_) / period_ + 1) * period_;
          break;
      }
    }
    return scheduled;
  }

  clock::duration period_;
  missed_tick_behavior behavior_;
  clock::time_point next_;
};

}  // namespace shoal::rt
