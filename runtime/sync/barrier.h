// barrier: n tasks wait until all n have arrived, then all go on. Shoal's tokio::sync::Barrier.
//
// For phases: every participant finishes step k before any starts step k+1. The barrier is
// reusable: once n have arrived they are released together, and the next n arrivals form the next
// generation. Exactly one arrival of each generation is told it is the leader (the last to
// arrive), for the work that must happen once per phase.
//
//   rt::barrier phase(workers);  // shared by `workers` tasks, each running:
//   for (int n = 0; n < rounds; ++n) {
//     co_await load_shard(i);
//     rt::barrier_wait_result r = co_await phase.wait();
//     if (r.is_leader) publish_progress();
//   }
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// Cancel safety: a task cancelled while waiting withdraws its arrival, so the barrier still
// waits for n live participants.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"
#include "runtime/internal/wake_list.h"

namespace shoal::rt {

struct barrier_wait_result {
  bool is_leader;
};

class barrier {
 public:
  explicit barrier(std::size_t n) : n_(n == 0 ? 1 : n) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  class wait_awaiter : private detail::waiter_link {
   public:
    bool await_ready() noexcept { return false; }  // arriving is the await_suspend's job
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      detail::wake_list wakes;  // declared before the lock: wakes after the unlock
      detail::spin_guard lock(b_->mu_);
      if (b_->arrived_ + 1 == b_->n_) {
        // The last arrival: release this generation and lead it.
        b_->arrived_ = 0;
        while (wait_awaiter* w = b_->waiters_.pop_front()) wakes.push(w->task_);
        leader_ = true;
        return false;
      }
      ++b_->arrived_;
      task_ = detail::suspend_current(h);
      b_->waiters_.push_back(this);
      return true;
    }
    barrier_wait_result await_resume() noexcept {
      resumed_ = true;
      return {leader_};
    }
    wait_awaiter(wait_awaiter&& o) noexcept : b_(o.b_) {}
    ~wait_awaiter() {
      if (task_ == nullptr || resumed_) return;
      detail::spin_guard lock(b_->mu_);
      if (linked) {  // cancelled before the generation was released: take the arrival back
        b_->waiters_.remove(this);
        --b_->arrived_;
      }
    }

   private:
    friend class barrier;
    friend class detail::waiter_list<wait_awaiter>;
    explicit wait_awaiter(barrier* b) noexcept : b_(b) {}
    barrier* b_;
    detail::task_header* task_ = nullptr;
    bool leader_ = false;
    bool resumed_ = false;
  };

  detail::coop::budgeted<wait_awaiter> wait() noexcept {
    return detail::coop::budgeted<wait_awaiter>(wait_awaiter(this));
  }

 private:
  const std::size_t n_;
  detail::spin_lock mu_;
  std::size_t arrived_ ABSL_GUARDED_BY(mu_) = 0;
  detail::waiter_list<wait_awaiter> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::rt
