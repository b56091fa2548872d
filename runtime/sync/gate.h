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
// The gate may be destroyed as soon as close() completes: its state lives until the last holder
// has finished leaving. Cancel safety: a cancelled close() leaves the gate closed (closing happens
// when close() is called, not when it completes) and leaves no waiter behind. One allocation per
// gate; one atomic word for the count and the flags, so entering and leaving are one
// read-modify-write each.
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
  struct state;

 public:
  // One admitted piece of work; leaves the gate when destroyed.
  class [[nodiscard]] holder {
   public:
    holder(holder&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    holder& operator=(holder&& o) noexcept {
      if (this != &o) {
        leave();
        s_ = std::exchange(o.s_, nullptr);
      }
      return *this;
    }
    ~holder() { leave(); }

   private:
    friend class gate;
    explicit holder(state* s) noexcept : s_(s) {}
    void leave() noexcept {
      if (s_ != nullptr) std::exchange(s_, nullptr)->leave();
    }
    state* s_;
  };

  gate() : s_(new state()) {}
  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;
  // The gate may go while holders remain (after close() completed, the last one may still be
  // leaving): its state lives until the last of them is gone.
  ~gate() { s_->drop_owner(); }

  // A holder, or nullopt once the gate is closed.
  std::optional<holder> try_enter() noexcept {
    uint64_t w = s_->word.load(std::memory_order_relaxed);
    do {
      if (w & k_closed) return std::nullopt;
    } while (!s_->word.compare_exchange_weak(w, w + k_one, std::memory_order_acquire,
                                             std::memory_order_relaxed));
    return holder(s_);
  }

  class closed_awaiter {
   public:
    bool await_ready() { return s_->holders() == 0 || empty_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
      return s_->holders() != 0 && empty_.await_suspend(h);
    }
    void await_resume() { empty_.await_resume(); }
    closed_awaiter(closed_awaiter&& o) noexcept : s_(o.s_), empty_(std::move(o.empty_)) {}

   private:
    friend class gate;
    // The waiter is made before the flag is set: the last holder's notification afterwards finds
    // it (its epoch is older); a holder that left before found the gate open, and left the count
    // at zero.
    explicit closed_awaiter(state* s) : s_(s), empty_(std::move(s->empty.notified().inner())) {
      s_->word.fetch_or(k_closed, std::memory_order_acq_rel);
    }
    state* s_;
    notify::notified_awaiter empty_;
  };

  // Closes the gate now; `co_await` completes once no holder is left.
  detail::coop::budgeted<closed_awaiter> close() {
    return detail::coop::budgeted<closed_awaiter>(closed_awaiter(s_));
  }

  bool is_closed() const noexcept { return s_->word.load(std::memory_order_acquire) & k_closed; }
  uint64_t holders() const noexcept { return s_->holders(); }

 private:
  static constexpr uint64_t k_closed = 1;  // no new holders
  static constexpr uint64_t k_owner = 2;   // the gate object still exists
  static constexpr uint64_t k_waking = 4;  // the last holder is waking the closers
  static constexpr uint64_t k_one = 8;     // one holder

  // What holders and closers share. Freed by whichever goes last: the gate object, or the last
  // holder to leave.
  struct state {
    std::atomic<uint64_t> word{k_owner};
    notify empty;

    uint64_t holders() const noexcept { return word.load(std::memory_order_acquire) / k_one; }

    void leave() noexcept {
      uint64_t w = word.load(std::memory_order_acquire);
      for (;;) {
        if ((w & k_closed) && w / k_one == 1) {
          // The last holder of a closed gate: it leaves at once (a closer that completes reads
          // no holder), marked as waking, which keeps the state alive while it wakes the closers
          // (a closer that wakes, or that finds the count at zero, may destroy the gate at once).
          if (!word.compare_exchange_weak(w, w - k_one + k_waking, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
            continue;
          }
          empty.notify_waiters();
          release(word.fetch_sub(k_waking, std::memory_order_acq_rel) - k_waking);
          return;
        }
        if (word.compare_exchange_weak(w, w - k_one, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
          return;  // not the last of a closed gate (closing later re-reads the count)
        }
      }
    }
    void drop_owner() noexcept {
      release(word.fetch_and(~k_owner, std::memory_order_acq_rel) & ~k_owner);
    }
    // `now`: the word after the caller's change.
    void release(uint64_t now) noexcept {
      if (!(now & (k_owner | k_waking)) && now / k_one == 0) delete this;
    }
  };

  state* s_;
};

}  // namespace shoal::rt
