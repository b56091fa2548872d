// gate: admits work until it is closed, then lets the work already in finish. Seastar's gate.
//
// Use it for a drain: every call (or stream, or background job) holds the gate while it runs;
// shutdown closes the gate, which refuses new holders at once, and awaits the moment the last
// holder leaves. Nothing polls: the last holder to leave a closed gate wakes the closers.
//
//   rt::gate calls;
//   // per call:
//   std::optional<rt::gate::holder> in = calls.try_enter();
//   if (!in) co_return unavailable("shutting down");  // closed: admit nothing new
//   co_return co_await handle(request);               // `in` leaves when it goes out of scope
//   // at shutdown:
//   co_await calls.close();  // no new holders; wait for the rest
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// Any number of tasks may await close(); a close() that finds the gate empty completes at once.
// Cancel safety: a cancelled close() leaves the gate closed (closing happens when close() is
// called, not when it completes) and leaves no waiter behind. One atomic word for the count and
// the flag, so entering and leaving are one read-modify-write each.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <utility>

#include "runtime/internal/coop.h"
#include "runtime/sync/notify.h"

namespace shoal::rt {

class gate {
 public:
  // One admitted piece of work; leaves the gate when destroyed.
  class [[nodiscard]] holder {
   public:
    holder(holder&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
    holder& operator=(holder&& o) noexcept {
      if (this != &o) {
        leave();
        g_ = std::exchange(o.g_, nullptr);
      }
      return *this;
    }
    ~holder() { leave(); }

   private:
    friend class gate;
    explicit holder(gate* g) noexcept : g_(g) {}
    void leave() noexcept {
      if (g_ != nullptr) std::exchange(g_, nullptr)->leave();
    }
    gate* g_;
  };

  gate() = default;
  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;

  // A holder, or nullopt once the gate is closed.
  std::optional<holder> try_enter() noexcept {
    uint64_t s = state_.load(std::memory_order_relaxed);
    do {
      if (s & k_closed) return std::nullopt;
    } while (!state_.compare_exchange_weak(s, s + k_one, std::memory_order_acquire,
                                           std::memory_order_relaxed));
    return holder(this);
  }

  class closed_awaiter {
   public:
    bool await_ready() { return g_->holders() == 0 || empty_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
      return g_->holders() != 0 && empty_.await_suspend(h);
    }
    void await_resume() { empty_.await_resume(); }
    closed_awaiter(closed_awaiter&& o) noexcept : g_(o.g_), empty_(std::move(o.empty_)) {}

   private:
    friend class gate;
    // The waiter is made before the flag is set: a leave that empties the gate afterwards
    // notifies it (its epoch is older), and one before leaves the count at zero.
    explicit closed_awaiter(gate* g) : g_(g), empty_(std::move(g->empty_.notified().inner())) {
      g_->state_.fetch_or(k_closed, std::memory_order_acq_rel);
    }
    gate* g_;
    notify::notified_awaiter empty_;
  };

  // Closes the gate now; `co_await` completes once no holder is left.
  detail::coop::budgeted<closed_awaiter> close() {
    return detail::coop::budgeted<closed_awaiter>(closed_awaiter(this));
  }

  bool is_closed() const noexcept { return state_.load(std::memory_order_acquire) & k_closed; }
  uint64_t holders() const noexcept { return state_.load(std::memory_order_acquire) / k_one; }

 private:
  static constexpr uint64_t k_closed = 1;
  static constexpr uint64_t k_one = 2;

  void leave() noexcept {
    // The last holder out of a closed gate wakes whoever awaits close().
    if (state_.fetch_sub(k_one, std::memory_order_acq_rel) == (k_one | k_closed)) {
      empty_.notify_waiters();
    }
  }

  std::atomic<uint64_t> state_{0};
  notify empty_;
};

}  // namespace shoal::rt
